"""What a restart does: how this kernel restarts, and asking for it.

Like the toolbar's restart where possible: ``POST /api/kernels/{id}/restart`` on the Jupyter server
that owns the kernel (found from ``JPY_PARENT_PID`` → ``{runtime dir}/jpserver-{pid}.json``, which holds the
server's URL and token; on JupyterHub the token there is empty and ``JUPYTERHUB_API_TOKEN`` serves). Where no
server file is found but something will bring the kernel back (a server's restarter, or whoever launched the
kernel set ``UVEXTRA_KERNEL_RESTARTER=1``), the kernel exits and is restarted. Otherwise (nbclient, papermill,
a script): an instruction, no button. Tokens never leave :class:`RestartPlan` — not in its repr, not in messages.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.errors import UvextraError
from ..core.redact import redact
from ..core.vocabulary import EXITING, RESTARTING, KernelState, RestartPlan

__all__ = ["RESTARTER_ENV_VAR", "KernelState", "RestartPlan", "find_restart", "request_restart"]

# Set by whoever launches a kernel under an auto-restarter that is not a Jupyter server (a custom
# jupyter_client KernelManager with autorestart, a test): exiting the kernel is then a restart.
RESTARTER_ENV_VAR = "UVEXTRA_KERNEL_RESTARTER"
# jupyter_server writes jpserver-{pid}.json; the classic notebook (< 7) wrote nbserver-{pid}.json.
_SERVER_FILES = ("jpserver-{pid}.json", "nbserver-{pid}.json")
# jupyter_client / jupyter_server name a kernel's connection file kernel-{kernel id}.json.
_CONNECTION_FILE = re.compile(r"^kernel-(?P<id>[0-9A-Za-z-]+)\.json$")
RESTART_TIMEOUT_S = 60.0  # the server answers once the new kernel is up
REST_DELAY_S = 0.3  # lets the clicking handler return before the server shuts this kernel down


def _runtime_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(environ["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir  # present wherever ipykernel is

        return Path(jupyter_runtime_dir())
    except ImportError:
        data = environ.get("JUPYTER_DATA_DIR") or os.path.join(
            environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter"
        )
        return Path(data) / "runtime"


def _local_url(info: Mapping[str, object]) -> str | None:
    url = str(info.get("url") or "")
    if not url:
        host, port = info.get("hostname") or "127.0.0.1", info.get("port")
        if not port:
            return None
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://{host}:{port}{info.get('base_url') or '/'}"
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: this machine is one of them
        host = "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def find_restart(
    connection_file: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> RestartPlan:
    """Work out how this kernel can be restarted; ``connection_file`` is ``ipykernel.get_connection_file()``."""
    env = os.environ if environ is None else environ
    restarter = env.get(RESTARTER_ENV_VAR, "").strip().lower() in ("1", "true", "yes")
    parent = env.get("JPY_PARENT_PID", "").strip()
    info: dict[str, object] | None = None
    if parent.isdigit():
        folder = Path(runtime_dir) if runtime_dir is not None else _runtime_dir(env)
        for pattern in _SERVER_FILES:
            try:
                info = json.loads((folder / pattern.format(pid=parent)).read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                continue
    exit_plan = RestartPlan(
        "exit", "the kernel exits and its restarter starts it again (as after a crash: the page may say so)"
    )
    if info is None:
        if restarter:
            return exit_plan
        return RestartPlan(
            "manual",
            "no Jupyter server owns this kernel and nothing would start it again (nbclient, papermill, a script): "
            "restart it yourself (Kernel → Restart, or run the notebook again)",
        )
    kernel_id = None
    if connection_file is not None:
        match = _CONNECTION_FILE.match(Path(connection_file).name)
        kernel_id = match.group("id") if match else None
    base = _local_url(info)
    if kernel_id is None or base is None or info.get("sock"):
        why = "the kernel id is unknown" if kernel_id is None else "the server's address is not a TCP URL"
        return RestartPlan("exit", f"{why}; the server's restarter brings the kernel back after it exits")
    token = str(info.get("token") or "") or env.get("JUPYTERHUB_API_TOKEN", "")
    endpoint = f"{base}api/kernels/{kernel_id}/restart"
    where = "JupyterHub's" if not info.get("token") and env.get("JUPYTERHUB_API_TOKEN") else "the"
    return RestartPlan(
        "server",
        f"restart through {where} Jupyter server at {redact(base)}, as the toolbar does",
        url=endpoint,
        fallback_exit=True,
        _token=token,
    )


def _post(plan: RestartPlan, timeout: float) -> None:
    import urllib.request

    assert plan.url is not None
    headers = {"Content-Type": "application/json"}
    if plan._token:
        headers["Authorization"] = f"token {plan._token}"
    req = urllib.request.Request(plan.url, data=b"{}", headers=headers, method="POST")
    # The server is on this machine: a proxy from the environment must not see the request (or the token).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as response:
        response.read()


def _describe_http_error(plan: RestartPlan, exc: BaseException) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        what = {401: "refused the credentials", 403: "refused the request", 404: "does not know this kernel"}
        text = what.get(exc.code, f"answered HTTP {exc.code}")
    elif isinstance(exc, urllib.error.URLError):
        text = f"could not be reached ({exc.reason})"
    else:
        text = f"could not be reached ({type(exc).__name__}: {exc})"
    message = f"the Jupyter server at {plan.url} {text}"
    return redact(message.replace(plan._token, "***") if plan._token else message)


def request_restart(
    plan: RestartPlan,
    shutdown: Callable[[], None] | None = None,
    *,
    timeout: float = RESTART_TIMEOUT_S,
    on_error: Callable[[str], None] | None = None,
    wait: bool = False,
    connection_file: str | None = None,
    after: Mapping[str, Any] | None = None,
) -> str:
    """Start a restart as ``plan`` says; returns one line saying what happens now.

    ``shutdown`` makes this kernel exit (``get_ipython().kernel.do_shutdown(True)``). A REST restart runs in a
    background thread (``wait=False``), a moment later: the server shuts this kernel down before it answers, and
    the caller — a button's handler on the kernel's main thread — must first return and its last messages (the
    card saying "restarting") reach the frontend. ``on_error`` hears a failure of that request (then, where a
    restarter exists, the kernel exits instead).

    With ``connection_file`` the request is made by a process of its own (:mod:`uvextra.kernel.restart_helper`), which
    outlives this kernel and then nudges the new one, so that JupyterLab's status comes back to Idle, and has it
    redraw the card (``after``: its widget ids, project, extras; see :mod:`uvextra.after_restart`).
    """
    if plan.how == "manual" or (plan.how == "exit" and shutdown is None):
        raise UvextraError(f"cannot restart this kernel from inside: {plan.why}")
    if plan.how == "exit":
        assert shutdown is not None
        shutdown()
        return EXITING

    def failed(message: str) -> None:
        if plan.fallback_exit and shutdown is not None:
            message += "; exiting the kernel instead (the server's restarter brings it back)"
        if on_error is not None:
            on_error(message)
        if plan.fallback_exit and shutdown is not None:
            shutdown()

    def attempt() -> None:
        try:
            if not wait:
                time.sleep(REST_DELAY_S)
            _post(plan, timeout)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the card
            failed(_describe_http_error(plan, exc))

    if wait:
        attempt()
    elif connection_file is None or not _restart_from_outside(plan, timeout, connection_file, after, failed):
        threading.Thread(target=attempt, name="uvextra-restart", daemon=True).start()
    return RESTARTING


def _restart_from_outside(
    plan: RestartPlan,
    timeout: float,
    connection_file: str,
    after: Mapping[str, Any] | None,
    failed: Callable[[str], None],
) -> bool:
    """Start :mod:`uvextra.kernel.restart_helper`; False when it cannot start (the caller then posts from a thread)."""
    import subprocess

    job = {
        "url": plan.url,
        "token": plan._token,
        "delay": REST_DELAY_S,
        "timeout": timeout,
        "connection_file": connection_file,
        "after": dict(after or {}),
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvextra.kernel.restart_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            encoding="utf-8",
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job) + "\n")  # the token on stdin: never in a process listing
        proc.stdin.close()
    except (OSError, ValueError):
        return False

    def watch() -> None:  # alive only while this kernel is: hears a refused or unreachable server
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        proc.wait()
        if line.startswith("error: "):
            failed(line.removeprefix("error: "))

    threading.Thread(target=watch, name="uvextra-restart", daemon=True).start()
    return True
