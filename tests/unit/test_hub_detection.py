"""The card's hub line: the venv being changed is the one the hub's Jupyter server runs from.

A real process stands for the server (its interpreter in a venv, as ``jupyterhub-singleuser`` runs); the kernel's
side is what jupyter_server and JupyterHub put in a kernel's environment (``JPY_PARENT_PID``, ``JUPYTERHUB_*``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uvextra.kernel.hub import hub_server_line, server_runs_from

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc (Linux)")


SLEEPER = "print('up', flush=True); import time; time.sleep(60)"


def _started(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    # Popen may return before the child's /proc entry shows its command line; a server has been up for a while
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    venv = tmp_path / "hub-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "VIRTUAL_ENV"))}
    env["JUPYTERHUB_SERVICE_PREFIX"] = "/user/alice/"  # what a hub's spawner gives the single-user server
    proc = _started([str(venv / "bin" / "python"), "-c", SLEEPER], env)
    try:
        yield venv, proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:  # the pipe _started reads
            proc.stdout.close()


def test_the_hub_servers_own_venv_gets_one_line(server: tuple[Path, subprocess.Popen[str]], tmp_path: Path) -> None:
    venv, proc = server
    kernel = {"JPY_PARENT_PID": str(proc.pid), "JUPYTERHUB_USER": "alice"}
    assert hub_server_line(venv, kernel) == (
        "this venv is also the one this JupyterHub user server (alice) runs from: a change here changes the server "
        "too, and other users' servers may start from it"
    )
    # The hub is known from the server's own environment too, when the kernel's lacks the variables.
    assert hub_server_line(venv, {"JPY_PARENT_PID": str(proc.pid)}) is not None
    assert server_runs_from(str(proc.pid), venv)


def test_silent_for_another_venv_no_server_or_no_hub(
    server: tuple[Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    venv, proc = server
    other = tmp_path / "kernel-venv"
    other.mkdir()
    assert hub_server_line(other, {"JPY_PARENT_PID": str(proc.pid), "JUPYTERHUB_USER": "alice"}) is None
    assert hub_server_line(venv, {"JUPYTERHUB_USER": "alice"}) is None  # nbclient, a script: no server
    assert hub_server_line(venv, {"JPY_PARENT_PID": "999999999", "JUPYTERHUB_USER": "alice"}) is None
    plain = _started([str(venv / "bin" / "python"), "-c", SLEEPER], {"PATH": os.environ.get("PATH", "")})
    try:  # a plain JupyterLab from the same venv: nothing about a hub
        assert hub_server_line(venv, {"JPY_PARENT_PID": str(plain.pid)}) is None
    finally:
        plain.kill()
        plain.wait()
        if plain.stdout is not None:
            plain.stdout.close()
