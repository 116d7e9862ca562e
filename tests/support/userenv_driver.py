"""What a hub user does, run as that user with the image's Python (tests/e2e/test_userenv_users.py starts it).

``first``: ``%uvextra cpu --project ~/moo --user-env`` in a kernel of the image, then a kernel of the new kernelspec.
``second TARGETS``: the image's kernel as another user; what of the first user's env this user can reach.
``click``: the card's refusal on the image, its "Make my own environment" button clicked (a comm message, as a
browser sends it), then the new kernel.
``server``: a Jupyter server as this user, a notebook session on the image's kernel, ``--user-env`` in it, and the
session afterwards. Prints one JSON line last.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

MOO = str(Path.home() / "moo")
OUTCOME = (
    "import json as _j; from uvextra.magic import last_outcome as _lo; _o = _lo(); _r = _o.report\n"
    "print(_j.dumps({'error': _o.error, 'extras': _r and _r.extras, 'environment': _r and _r.environment,\n"
    "  'drift': [d.to_dict() for d in (_r.errors if _r else [])],\n"
    "  'verdict': _r and _r.probe and _r.probe.verdict}))"
)


def start(name: str | None = None, connection_file: str | None = None) -> Any:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.manager import KernelManager

    if connection_file is not None:
        client = BlockingKernelClient(connection_file=connection_file)
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        return None, client
    manager = KernelManager(kernel_name=name or "python3")
    manager.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    return manager, client


def stop(manager: Any, client: Any) -> None:
    client.stop_channels()
    if manager is not None:
        manager.shutdown_kernel(now=True)


def run(client: Any, code: str, timeout: float = 900) -> str:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            out.append(f"{content['ename']}: {content['evalue']}\n")

    client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(out)


def last_json(text: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return result


def uvextra_specs() -> dict[str, dict[str, Any]]:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().get_all_specs()
    return {k: v for k, v in specs.items() if k.startswith("uvextra-")}


def said(text: str) -> str:
    return next((line for line in reversed(text.splitlines()) if line.startswith("uvextra: ")), text)


def first() -> dict[str, Any]:
    manager, client = start()
    try:
        text = run(client, f"%uvextra cpu --project {MOO} --user-env")
        outcome = last_json(run(client, OUTCOME))
    finally:
        stop(manager, client)
    specs = uvextra_specs()
    name = next(iter(specs), "")
    result: dict[str, Any] = {
        "said": said(text),
        "switch_error": outcome["error"],
        "extras": outcome["extras"],
        "environment": outcome["environment"],
        "drift": outcome["drift"],
        "verdict": outcome["verdict"],
        "kernelspecs": sorted(specs),
        "kernelspec": name,
        "display_name": specs.get(name, {}).get("spec", {}).get("display_name"),
    }
    result["new_kernel"] = new_kernel(name)
    return result


def click() -> dict[str, Any]:
    """The card's refusal on the read-only image, then its button "Make my own environment", clicked."""
    manager, client = start()
    try:
        opened: dict[str, dict[str, Any]] = {}
        values: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "comm_open":
                opened[content["comm_id"]] = content["data"].get("state", {})
            elif msg["msg_type"] == "comm_msg":  # add_class() comes as an update after the comm is opened
                state = content["data"].get("state", {})
                opened.setdefault(content["comm_id"], {}).update(state)
                if "value" in state:
                    values.append(str(state["value"]))

        client.execute_interactive(f"%uvextra cpu --project {MOO} --no-probe", output_hook=hook, timeout=300)
        refused = last_json(run(client, OUTCOME))["error"]
        button = next(cid for cid, state in opened.items() if "uvextra-user-env" in state.get("_dom_classes", []))
        msg = client.session.msg(
            "comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
        )
        client.shell_channel.send(msg)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            reply = client.get_iopub_msg(timeout=deadline - time.monotonic())
            if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            hook(reply)
            if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                break
        outcome = last_json(run(client, OUTCOME))
    finally:
        stop(manager, client)
    specs = uvextra_specs()
    name = next(iter(specs), "")
    return {
        "refused": refused,
        "card": values[-1] if values else "",
        "switch_error": outcome["error"],
        "extras": outcome["extras"],
        "environment": outcome["environment"],
        "drift": outcome["drift"],
        "kernelspec": name,
        "new_kernel": new_kernel(name),
    }


def new_kernel(name: str) -> dict[str, Any]:
    """A kernel of the user env's kernelspec: its torch, its prefix, %uvextra there (status, then a switch)."""
    manager, client = start(name)
    try:
        seen = last_json(
            run(
                client,
                "import json, sys, torch\nprint(json.dumps({'torch': torch.__version__, "
                "'torch_file': torch.__file__, 'prefix': sys.prefix, "
                "'magic': get_ipython().find_line_magic('uvextra') is not None}))",
                timeout=300,
            )
        )
        run(client, "%uvextra --no-probe")  # no --project: the env's own project
        after = last_json(run(client, OUTCOME))
        seen.update(error=after["error"], drift=after["drift"], status_environment=after["environment"])
        run(client, "%uvextra cpu --no-probe")  # a switch from inside: the same env, switched as it was made
        again = last_json(run(client, OUTCOME))
        seen["switch_again"] = {k: again[k] for k in ("error", "extras", "drift", "environment")}
    finally:
        stop(manager, client)
    return seen


def second(targets_file: str) -> dict[str, Any]:
    targets = json.loads(Path(targets_file).read_text())
    manager, client = start()
    try:
        image_torch = run(client, "import torch").strip()
        run(client, f"%uvextra cpu --project {MOO} --no-probe")
        refusal = last_json(run(client, OUTCOME))["error"]
    finally:
        stop(manager, client)
    try:
        listed = f"listed {len(os.listdir(targets['env']))} entries"
    except OSError as exc:
        listed = f"{type(exc).__name__}: {exc.strerror}"
    writable, opened = [], []
    for path in targets["files"]:
        if os.access(path, os.W_OK):
            writable.append(path)
        try:
            with open(path, "ab"):
                opened.append(path)
        except OSError:
            pass
    return {
        "image_torch": image_torch,
        "refusal": refusal,
        "list_env": listed,
        "writable": writable,
        "opened_for_writing": opened,
        "checked": len(targets["files"]),
        "kernelspecs": sorted(uvextra_specs()),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server() -> dict[str, Any]:
    from jupyter_core.paths import jupyter_runtime_dir

    token, port = secrets.token_hex(16), _free_port()
    base = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--root_dir={Path.home()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )

    def call(method: str, path: str, body: object | None = None) -> Any:
        req = urllib.request.Request(
            base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=120) as response:
            return json.loads(response.read() or b"null")

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                call("GET", "api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        session = call(
            "POST",
            "api/sessions",
            {"path": "moo.ipynb", "type": "notebook", "name": "moo.ipynb", "kernel": {"name": "python3"}},
        )
        old = session["kernel"]["id"]
        connection = str(Path(jupyter_runtime_dir()) / f"kernel-{old}.json")
        _, client = start(connection_file=connection)
        try:
            text = run(client, f"%uvextra cpu --project {MOO} --user-env --no-probe")
        finally:
            client.stop_channels()
        after, deadline = session, time.monotonic() + 180
        while time.monotonic() < deadline:
            after = next(s for s in call("GET", "api/sessions") if s["id"] == session["id"])
            if after["kernel"]["id"] != old:
                break
            time.sleep(0.5)
        deadline = time.monotonic() + 120  # the server points the session at the new kernel, then shuts the old down
        while True:
            kernels = {k["id"] for k in call("GET", "api/kernels")}
            if old not in kernels or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        new = after["kernel"]["id"]
        _, client = start(connection_file=str(Path(jupyter_runtime_dir()) / f"kernel-{new}.json"))
        try:
            seen = last_json(
                run(
                    client,
                    "import json, sys\nprint(json.dumps({'prefix': sys.prefix, "
                    "'magic': get_ipython().find_line_magic('uvextra') is not None}))",
                )
            )
        finally:
            client.stop_channels()
        return {
            "said": said(text),
            "before": session["kernel"]["name"],
            "after": after["kernel"]["name"],
            "old_kernel_gone": old not in kernels,
            "new_prefix": seen["prefix"],
            "magic": seen["magic"],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    mode = sys.argv[1]
    modes = {"first": first, "click": click, "server": server}
    result = second(sys.argv[2]) if mode == "second" else modes[mode]()
    print(json.dumps(result))
