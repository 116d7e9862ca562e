"""``%uvextra`` in real kernels driven through jupyter_client, seen the way a frontend sees it.

Each kernel runs from a throwaway venv (``support.kernels``: the uvextra wheel of this checkout installed, ipykernel
and the rest linked from the test interpreter by a ``.pth`` file), so the magic switches *that* venv against the
local indexes — never the interpreter running the tests. The test talks to the kernel only through messages:
it executes cells, follows the widgets' comm messages to know what the card shows, and clicks buttons with the
``comm_msg`` a browser would send.

Autoloading is issue 4's (the wheel's startup file); here it is switched off (``UVEXTRA_NO_AUTOLOAD=1``) and the
extension is loaded by ``%load_ext`` or, for the restart test, by IPython's own
``--InteractiveShellApp.extensions=uvextra`` on the kernel's command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.frontend import TIMEOUT, Frontend
from support.kernels import kernel_env, stop_process, write_kernelspec
from support.venvs import MakeProject, dist_infos

RECORD = "application/vnd.uvextra.record+json"  # uvextra.notebook.MIME: what `uvextra check --notebook` reads


def _kernel(
    tmp_path: Path,
    python: Path,
    uv_env: dict[str, str],
    *,
    argv: tuple[str, ...] = (),
    kernels_dir: Path | None = None,
    **env: str,
) -> tuple[Path, str]:
    kernels = kernels_dir or tmp_path / "kernels"
    folder = write_kernelspec(
        kernels, "uvx", python, kernel_env(python, uv_env, tmp_path, UVEXTRA_NO_AUTOLOAD="1", **env)
    )
    spec = json.loads((folder / "kernel.json").read_text())
    spec["argv"] += list(argv)
    (folder / "kernel.json").write_text(json.dumps(spec))
    return kernels, "uvx"


def test_switch_drift_reinstall_and_stale_module(
    tmp_path: Path, make_project: MakeProject, kernel_python: Path, uv_old: str, uv_env: dict[str, str]
) -> None:
    project = make_project()
    kernels, name = _kernel(tmp_path, kernel_python, uv_env)
    venv = kernel_python.parents[1]

    async def scenario() -> None:
        fe = await Frontend(kernels, name, tmp_path).start()
        try:
            await fe.run("%load_ext uvextra")
            # A bad input: the card gives way to one line (and the cell raised nothing, see run()).
            cell = await fe.run(f"%uvextra --project {project} cuda")
            assert fe.card_text(cell) == "uvextra: unknown extra 'cuda'; this project's extras are: cpu, cu128, pypi"
            assert 'class="uvextra-error"' in fe.output(cell)["text/html"]
            # uv 0.9.4 has astral-sh/uv#16368: cpu -> pypi keeps torch 2.9.0+cpu.
            await fe.run(f"import os; os.environ['UVEXTRA_UV'] = {uv_old!r}")
            card = fe.card_text(await fe.run(f"%uvextra --project {project} cpu --no-probe"))
            assert "extras       cpu — given" in card and "drift        none" in card, card
            assert (await fe.stdout("import torch; print(torch.__version__)")).strip() == "2.9.0+cpu"

            cell = await fe.run(f"%uvextra --project {project} pypi")
            card = fe.card_text(cell)
            assert "torch  local-version  2.9.0+cpu → 2.9.0" in card, card
            assert "uv#16368" in card  # the warning about this uv
            assert "kernel       no imported module is stale" in card  # uv left torch's files alone
            assert fe.visible("uvextra-reinstall") and not fe.visible("uvextra-restart")
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]

            # Click Reinstall: exactly the drifted package comes back from the lock; the card updates in place.
            await fe.send_comm(fe.widget("uvextra-reinstall"), {"method": "custom", "content": {"event": "click"}})
            card = fe.card()
            assert dist_infos(venv, "torch") == ["torch-2.9.0.dist-info"]
            assert "repaired torch for pypi — ✓ matches the lock" in card, card
            assert "drift ✓ none — installed packages match the lock" in card
            assert "torch: imported as 2.9.0+cpu, the disk now has 2.9.0" in card
            # No server, no restarter (like nbclient): an instruction instead of a Restart button.
            assert "⟳ restart needed — no Jupyter server owns this kernel and nothing would start it again" in card
            assert not fe.visible("uvextra-reinstall") and not fe.visible("uvextra-restart")
            # The output a notebook saves is rewritten once the click's work is done: its text and its record
            # name the repair, not the drift the cell itself found.
            saved = fe.output(cell)
            assert "drift        none" in saved["text/plain"] and "uv#16368" in saved["text/plain"], saved["text/plain"]
            assert (saved[RECORD]["command"], saved[RECORD]["extras"], saved[RECORD]["clean"]) == (
                "repair",
                ["pypi"],
                True,
            )

            # The backend toggle: pick cu128 as a browser would; same progress, same card.
            toggle = fe.widget("uvextra-toggle")
            assert fe.models[toggle]["_options_labels"] == ["cpu", "cu128", "pypi"]
            await fe.send_comm(toggle, {"method": "update", "state": {"index": 1}, "buffer_paths": []})
            card = fe.card()
            assert "switched to cu128 — ✓ matches the lock" in card, card
            assert "torch 2.9.0 → 2.9.0+cu128" in card
            assert fe.models[toggle]["index"] == 1
            assert "torch: imported as 2.9.0+cpu, the disk now has 2.9.0+cu128" in card
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cu128.dist-info"]
            saved = fe.output(cell)
            assert (saved[RECORD]["command"], saved[RECORD]["extras"]) == ("switch", ["cu128"]), saved[RECORD]
            assert "extras       cu128 — given" in saved["text/plain"], saved["text/plain"]

            report = json.loads(
                await fe.stdout(
                    "from uvextra.magic import last_outcome; import json; o = last_outcome()\n"
                    "print(json.dumps({'extras': [str(e) for e in o.report.extras], 'stale': [s.module for s in o.kernel.stale], "
                    "'how': o.kernel.restart.how}))"
                )
            )
            assert report == {"extras": ["cu128"], "stale": ["torch"], "how": "manual"}
        finally:
            await fe.stop()

    asyncio.run(scenario())


def test_restart_button_restarts_the_kernel_under_its_restarter(
    tmp_path: Path, make_project: MakeProject, kernel_python: Path, uv_env: dict[str, str]
) -> None:
    project = make_project()
    kernels, name = _kernel(
        tmp_path,
        kernel_python,
        uv_env,
        argv=("--InteractiveShellApp.extensions=uvextra",),
        UVEXTRA_KERNEL_RESTARTER="1",
    )

    async def scenario() -> None:
        fe = await Frontend(kernels, name, tmp_path, time_to_dead=0.5).start()
        try:
            await fe.run(f"%uvextra --project {project} cpu --no-probe")
            await fe.run("import torch")
            pid = int(await fe.stdout("import os; print(os.getpid())"))
            cell = await fe.run(f"%uvextra --project {project} cu128 --no-probe")
            card = fe.card_text(cell)
            assert "torch: imported as 2.9.0+cpu, the disk now has 2.9.0+cu128" in card, card
            assert fe.visible("uvextra-restart")

            await fe.send_comm(fe.widget("uvextra-restart"), {"method": "custom", "content": {"event": "click"}})
            assert "the kernel is exiting; its restarter starts it again" in fe.card()
            # jupyter_client's restarter notices the exit and starts the kernel again, on the same ports.
            for _ in range(int(TIMEOUT / 0.2)):
                await asyncio.sleep(0.2)
                if (
                    fe.km.provisioner is not None
                    and fe.km.provisioner.pid not in (None, pid)
                    and await fe.km.is_alive()
                ):
                    break
            await fe.kc.wait_for_ready(timeout=TIMEOUT)
            assert int(await fe.stdout("import os; print(os.getpid())")) != pid
            # Loaded again at start-up: %uvextra works in the new kernel, and it sees the new build.
            card = fe.card_text(await fe.run(f"%uvextra --project {project} --no-probe"))
            assert "extras       cu128" in card and "drift        none" in card, card
            assert "kernel       no imported module is stale" in card
            assert "2.9.0+cu128" in await fe.stdout("import torch; print(torch.__version__)")
        finally:
            await fe.stop()

    asyncio.run(scenario())


def test_interrupt_stops_uv_and_the_card_says_where_the_environment_is(
    tmp_path: Path, make_project: MakeProject, kernel_python: Path, uv_new: str, uv_env: dict[str, str]
) -> None:
    project = make_project()
    # A uv whose `sync` hangs after its first line, like a slow download: the kernel's stop button must end it.
    slow = tmp_path / "slow-uv"
    pid_file = tmp_path / "slow-uv.pid"
    # (uvextra puts global flags such as `--color never` before the command: look for `sync` among the arguments)
    slow.write_text(
        f'#!/bin/sh\ncase " $* " in *" sync "*) echo $$ > {pid_file}; echo "Downloading torch (pretend)"; '
        f'exec sleep 120;; esac\nexec {uv_new} "$@"\n'
    )
    slow.chmod(0o755)
    kernels, name = _kernel(tmp_path, kernel_python, uv_env)

    async def scenario() -> None:
        fe = await Frontend(kernels, name, tmp_path).start()
        try:
            await fe.run("%load_ext uvextra")
            await fe.run(f"%uvextra --project {project} cpu --no-probe")
            await fe.run(f"import os; os.environ['UVEXTRA_UV'] = {str(slow)!r}")
            msg_id = fe.kc.execute(f"%uvextra --project {project} cu128 --no-probe")
            progress: list[str] = []
            early = []
            while len(progress) < 3:  # the card redraws its progress in place while uv is quiet
                msg = await fe.kc.get_iopub_msg(timeout=TIMEOUT)
                fe._track(msg)
                if msg["parent_header"].get("msg_id") == msg_id:
                    early.append(msg)
                state = msg["content"].get("data", {}).get("state", {}) if msg["msg_type"] == "comm_msg" else {}
                if "Downloading torch (pretend)" in str(state.get("value", "")):
                    progress.append(state["value"])
            assert "switching to cu128" in progress[-1] and "uv output (1 line)" in progress[-1]
            await fe.km.interrupt_kernel()
            cell = early + await fe._until_idle(msg_id)
            assert not [m for m in cell if m["msg_type"] == "error"]
            card = fe.card_text(cell)
            assert "interrupted: uv was stopped before it finished; the environment was checked again" in card
            assert re.search(r"^  torch +local-version +2\.9\.0\+cpu → 2\.9\.0\+cu128$", card, re.M), card  # still cpu
            assert "next         the switch was interrupted; run it again to finish" in card
            with pytest.raises(ProcessLookupError):  # uv (here: its stand-in) is gone
                os.kill(int(pid_file.read_text()), 0)
        finally:
            await fe.stop()

    asyncio.run(scenario())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_restart_button_goes_through_the_owning_jupyter_server(
    tmp_path: Path, make_project: MakeProject, kernel_python: Path, uv_env: dict[str, str]
) -> None:
    pytest.importorskip("jupyter_server")
    project = make_project()
    share, runtime = tmp_path / "share", tmp_path / "runtime"
    _kernel(tmp_path, kernel_python, uv_env, kernels_dir=share / "kernels")
    token, port = "uvx-" + secrets.token_hex(16), _free_port()
    env = dict(
        uv_env,
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_PATH=str(share),
        JUPYTER_DATA_DIR=str(share),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    # A bare server: the extensions installed beside it (JupyterLab, LSP, terminals) only slow its start.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {
                        name: False
                        for name in (
                            "jupyterlab",
                            "jupyter_lsp",
                            "jupyter_server_terminals",
                            "notebook_shim",
                            "nbclassic",
                            "notebook",
                        )
                    }
                }
            }
        )
    )
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def api(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token}"},
        )
        with opener.open(req, timeout=30) as response:
            return json.loads(response.read() or b"null")

    kernel_id = ""

    async def scenario() -> None:
        nonlocal kernel_id
        # The server writes jpserver-{pid}.json before its loop runs the callback that binds the port
        # (jupyter_server 2.21), so the file alone is no sign that it listens: ask it until it answers.
        for _ in range(int(TIMEOUT / 0.1)):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                api("GET", "/api/status")
                break
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, ConnectionError):  # not listening yet
                await asyncio.sleep(0.1)
        else:
            pytest.fail(
                f"the Jupyter server did not answer within {TIMEOUT} s:\n{(tmp_path / 'server.log').read_text()}"
            )
        kernel_id = api("POST", "/api/kernels", {"name": "uvx"})["id"]
        fe = await Frontend.connect(runtime / f"kernel-{kernel_id}.json")
        try:
            await fe.run("%load_ext uvextra")
            await fe.run(f"%uvextra --project {project} cpu --no-probe")
            await fe.run("import torch")
            pid = int(await fe.stdout("import os; print(os.getpid())"))
            await fe.run(f"%uvextra --project {project} cu128 --no-probe")
            assert fe.visible("uvextra-restart")
            plan = json.loads(
                await fe.stdout(
                    "from uvextra.magic import last_outcome; import json\n"
                    "print(json.dumps(last_outcome().kernel.restart.to_dict()))"
                )
            )
            assert plan["how"] == "server"
            assert plan["url"] == f"http://127.0.0.1:{port}/api/kernels/{kernel_id}/restart"

            await fe.send_comm(fe.widget("uvextra-restart"), {"method": "custom", "content": {"event": "click"}})
            assert "restarting through the Jupyter server" in fe.card()
            for _ in range(int(TIMEOUT / 0.1)):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.1)
            fe.kc.stop_channels()  # a fresh connection, as the browser's after "Kernel restarted"
            fe = await Frontend.connect(runtime / f"kernel-{kernel_id}.json")
            assert int(await fe.stdout("import os; print(os.getpid())")) != pid
            assert [k["id"] for k in api("GET", "/api/kernels")] == [kernel_id]  # the same kernel, restarted
            assert "2.9.0+cu128" in await fe.stdout("import torch; print(torch.__version__)")
        finally:
            fe.kc.stop_channels()

    try:
        asyncio.run(scenario())
    finally:
        stop_process(server, timeout=15)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert f"Kernel restarted: {kernel_id}" in text, text  # the REST restart, as the toolbar does it…
    assert "restarting kernel" not in text, text  # …not the auto-restarter reviving an exited kernel
    assert token not in text.replace(f"token={token}", "")  # the server prints its own URL; nothing else has it
