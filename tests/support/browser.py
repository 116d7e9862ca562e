"""A real browser on a real Jupyter server: Debian's Chromium driven by Playwright, and JavaScript run in the page.

The page helpers reach JupyterLab's (and Notebook 7's) notebook panel of ``quickstart.ipynb`` through the app it
exposes (``window.jupyterapp``); a test on another notebook replaces that name.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


STEP_TIMEOUT_MS = 180_000  # a switch on a 2-core CI machine with a cold uv cache


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install -y --no-install-recommends chromium fonts-dejavu-core)"
    for module, pip_name in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {pip_name} is missing (pip install {pip_name})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(
    proc: subprocess.Popen[bytes], url: str, token: str, log: IO[str], what: str, timeout: float = 90
) -> None:
    """Until the Jupyter server at ``url`` answers ``GET api/status`` (not its jpserver file: jupyter_server 2.21
    writes that before the port is bound); fails the test with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"{what} did not start (exit {proc.poll()}):\n{log.read()[-3000:]}")
        time.sleep(0.25)


# JavaScript run in the page: the notebook panel of the quickstart, through the app JupyterLab exposes.
PANEL = """() => {
  const app = window.jupyterapp;
  if (!app) return null;
  const current = app.shell.currentWidget;  // Notebook 7: the one notebook of the page
  if (current && current.context && current.context.path === 'quickstart.ipynb') return current;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === 'quickstart.ipynb') return w;
  }
  return null;
}"""


KERNEL_IDLE = f"""() => {{
  const panel = ({PANEL})();
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}}"""


# Idle, and the last status since the click came after the new kernel's first words (its "starting" when the
# page heard it; else the busy/idle around the card's redraw, which only the new kernel sends).
IDLE_AFTER_RESTART = f"""(since) => {{
  const seen = (window.__uvextraStatuses || []).slice(since);
  const start = seen.lastIndexOf('starting');
  return ({KERNEL_IDLE})() && seen.length > 0 && seen[seen.length - 1] === 'idle'
    && (start < 0 || seen.slice(start).includes('idle'));
}}"""


ALL_RUN = f"""() => {{
  const panel = ({PANEL})();
  if (!panel) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  return !!kernel && kernel.status === 'idle' && cells.every(c => c.model.executionCount !== null);
}}"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def page_statuses(page: Any) -> list[str]:
    return page.evaluate("() => window.__uvextraStatuses || []")


def kernel_pid(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("kernel process "):
            return int(line.split()[2])
    raise AssertionError(f"no 'kernel process N' line in the cell:\n{text[:2000]}")
