"""A kernel's restart through its Jupyter server, run from a process of its own (``python -m uvextra.kernel.restart_helper``).

Why a process of its own. The server shuts the old kernel down before it answers the restart, so a request made
from inside the kernel cannot see the end of it. And when a restart comes from anyone but the frontend, JupyterLab
is never told: the server sends ``restarting`` over the websocket only for its auto-restarter, the new kernel's
first status is ``starting`` (no parent), and the only other statuses it sends answer the server's own
``kernel_info_request`` — a message type JupyterLab leaves out of its status (``untracked_message_types``, which
the server puts in the page config). So the status bar stays at "Starting" until the user runs a cell. This
helper waits for the restart to finish, then sends the new kernel one silent ``execute_request``: its busy/idle
statuses are tracked, so JupyterLab is back at Idle at once, and the code it runs
(:func:`uvextra.after_restart.announce`) redraws the card in the page with what happened.

Reads one JSON line on stdin (the token travels there, never on the command line); prints ``error: …`` and exits 1
when the server refused or could not be reached (the old kernel is still alive then and says so on its card).
"""

from __future__ import annotations

import json
import sys
import time

SETTLE_S = 0.5  # lets the server's websocket streams reconnect to the new kernel before it is asked anything
READY_TIMEOUT_S = 60.0


def _nudge(connection_file: str, code: str) -> None:
    from jupyter_client.blocking.client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:  # without a KernelManager, wait_for_ready calls a kernel that is still starting "died"
            try:  # (jupyter_client counts the heartbeat as beating for its first second only)
                client.wait_for_ready(timeout=max(1.0, deadline - time.monotonic()))
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(SETTLE_S)
        msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            reply = client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()


def main() -> int:
    from ..core.vocabulary import RestartPlan
    from .restart import _describe_http_error, _post

    job = json.loads(sys.stdin.readline())
    plan = RestartPlan("server", "", url=job["url"], _token=job.get("token", ""))
    time.sleep(float(job.get("delay", 0.3)))  # the clicking handler returns and its last messages leave first
    try:
        _post(plan, float(job.get("timeout", 60)))
    except Exception as exc:  # noqa: BLE001 - the old kernel turns this line into its card's note
        print(f"error: {_describe_http_error(plan, exc)}", flush=True)
        return 1
    connection_file = job.get("connection_file")
    if connection_file:
        after = json.dumps(job.get("after") or {})
        code = f"__import__('uvextra.after_restart', fromlist=['announce']).announce({after!r})"
        try:
            _nudge(connection_file, code)
        except Exception:  # noqa: BLE001 - the restart itself worked; only the status nudge is lost
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
