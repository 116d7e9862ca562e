"""Is the venv a kernel changes also the one its Jupyter server runs from, on a JupyterHub?

On a hub image the single-user server, its kernels and often every user's server start from one venv: a switch
there changes what the server itself imports, and what other users' servers start with. The card says so in one
line. Found from what the kernel already has: ``JPY_PARENT_PID`` (the server's pid, set by jupyter_server), the
server's command line and environment in ``/proc`` (Linux), and ``JUPYTERHUB_*`` variables, which a hub's
single-user server and therefore its kernels carry. Anything unreadable means: say nothing.

Core-side: no IPython, no network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["hub_server_line", "server_runs_from"]

_HUB_VARS = ("JUPYTERHUB_USER", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_TOKEN")


def _proc_list(pid: str, what: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _under(path: str, prefix: Path) -> bool:
    # abspath, not resolve: a venv's bin/python is a symlink to the base interpreter, its path is the venv's
    try:
        return Path(os.path.abspath(path)).is_relative_to(prefix)
    except ValueError:
        return False


def server_runs_from(pid: str, prefix: str | os.PathLike[str]) -> bool:
    """Whether process ``pid`` (the Jupyter server) runs from the venv at ``prefix``: its interpreter or script
    lies in it, or its ``VIRTUAL_ENV`` / ``CONDA_PREFIX`` names it."""
    root = Path(os.path.abspath(prefix))
    argv = _proc_list(pid, "cmdline")
    if any(os.path.isabs(arg) and _under(arg, root) for arg in argv[:2]):
        return True
    environ = dict(item.partition("=")[::2] for item in _proc_list(pid, "environ"))
    return any(
        environ.get(name) and os.path.abspath(environ[name]) == str(root) for name in ("VIRTUAL_ENV", "CONDA_PREFIX")
    )


def hub_server_line(prefix: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> str | None:
    """One line for the card when ``prefix`` is the venv the kernel's Jupyter server runs from, on a JupyterHub."""
    env = os.environ if environ is None else environ
    pid = env.get("JPY_PARENT_PID", "").strip()
    if prefix is None or not pid.isdigit():
        return None
    hub = any(env.get(name) for name in _HUB_VARS) or any(
        item.startswith(_HUB_VARS) for item in _proc_list(pid, "environ")
    )
    if not hub or not server_runs_from(pid, prefix):
        return None
    user = env.get("JUPYTERHUB_USER", "").strip()
    whose = f"JupyterHub user server ({user})" if user else "JupyterHub user server"
    return (
        f"this venv is also the one this {whose} runs from: a change here changes the server too, "
        "and other users' servers may start from it"
    )
