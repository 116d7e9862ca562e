"""Move this notebook to another kernelspec, as JupyterLab's "Change kernel" does: the server's sessions API.

After ``%uvextra X --user-env`` made the user's own environment and its kernelspec, the notebook should run there.
JupyterLab's Kernel › Change Kernel is one ``PATCH /api/sessions/{id}`` with ``{"kernel": {"name": SPEC}}``: the
server starts a kernel from that spec, points the session (the notebook) at it and shuts the old kernel down.
The server that owns this kernel, its address and its token are found as for a restart
(:func:`uvextra.kernel.restart.find_restart`: ``jpserver-{JPY_PARENT_PID}.json``, or ``JUPYTERHUB_API_TOKEN`` on a hub).

The request is made by a process of its own (``python -m uvextra.kernel.handover``, the token on its stdin, never on a
command line): the server shuts this kernel down before it answers, and the cell that asked must first finish and
its output reach the page. Without a server (nbclient, a terminal IPython) nothing is moved; the caller says which
kernel to pick. No IPython here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from ..core.redact import redact

DELAY_S = 0.5  # the cell's last output leaves before the server shuts its kernel down
TIMEOUT_S = 120.0  # starting the new kernel is part of the PATCH


@dataclass(frozen=True)
class Server:
    """The Jupyter server that owns this kernel: its base URL, this kernel's id, and the token (never shown)."""

    base: str
    kernel_id: str
    _token: str = field(default="", repr=False, compare=False)


def find_server(connection_file: str | None, environ: Mapping[str, str] | None = None) -> Server | None:
    """The server this kernel runs under, or None (no server, or not reachable over TCP)."""
    from .restart import find_restart

    plan = find_restart(connection_file, environ)
    if plan.how != "server" or not plan.url or "/api/kernels/" not in plan.url:
        return None
    base, rest = plan.url.rsplit("api/kernels/", 1)
    return Server(base, rest.split("/", 1)[0], plan._token)


def _request(server: Server, method: str, path: str, body: object | None = None) -> object:
    headers = {"Content-Type": "application/json"}
    if server._token:
        headers["Authorization"] = f"token {server._token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.base + path, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is on this machine
    with opener.open(req, timeout=TIMEOUT_S) as response:
        return json.loads(response.read() or b"null")


def move_session(server: Server, kernelspec: str) -> dict[str, object]:
    """``PATCH`` the session whose kernel is this one to ``kernelspec``; the new session model (raises on failure)."""
    sessions = _request(server, "GET", "api/sessions")
    mine = (
        [s for s in sessions if isinstance(s, dict) and (s.get("kernel") or {}).get("id") == server.kernel_id]
        if isinstance(sessions, list)
        else []
    )
    if not mine:
        raise LookupError("no notebook session of the server runs this kernel")
    moved = _request(server, "PATCH", f"api/sessions/{quote(str(mine[0]['id']))}", {"kernel": {"name": kernelspec}})
    if not isinstance(moved, dict):
        raise ValueError("the server's answer is not a session")
    return moved


def start_move(server: Server, kernelspec: str) -> bool:
    """Start the move in a process of its own (it outlives this kernel); False when it cannot start."""
    job = {
        "base": server.base,
        "kernel_id": server.kernel_id,
        "token": server._token,
        "kernelspec": kernelspec,
        "delay": DELAY_S,
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvextra.kernel.handover"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.close()
    except (OSError, ValueError):
        return False
    return True


def hand_over(
    connection_file: str | None, kernelspec: str, display_name: str, environ: Mapping[str, str] | None = None
) -> str:
    """Move the notebook to ``kernelspec`` when a server owns this kernel; one line saying what happens."""
    try:
        server = find_server(connection_file, environ)
    except Exception:  # noqa: BLE001 - no server found: say which kernel to pick
        server = None
    if server is not None and start_move(server, kernelspec):
        return (
            f"moving this notebook to the kernel “{display_name}” (as Kernel › Change Kernel does); "
            "run your cells again there"
        )
    return (
        f"pick the kernel “{display_name}” for this notebook (Kernel › Change Kernel…, or the kernel picker); "
        f"kernelspec {kernelspec}"
    )


def main() -> int:
    job = json.loads(sys.stdin.readline())
    server = Server(job["base"], job["kernel_id"], job.get("token", ""))
    time.sleep(float(job.get("delay", DELAY_S)))
    try:
        move_session(server, job["kernelspec"])
    except Exception as exc:  # noqa: BLE001 - nobody is left to tell but a log on stderr (DEVNULL when started)
        message = f"uvextra: moving the notebook failed: {type(exc).__name__}: {exc}"
        print(redact(message.replace(server._token, "***") if server._token else message), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
