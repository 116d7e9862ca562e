"""The card's Restart on a real JupyterHub: a hub on 127.0.0.1, logged into through Chromium, the user's JupyterLab.

What the issue reported on a hub: the card's Restart restarted the kernel through the single-user server's API, but
JupyterLab's status bar then stayed at "Starting" for 45 s. Here a JupyterHub (``DummyAuthenticator``,
``SimpleLocalProcessSpawner``, ``configurable-http-proxy``) runs on free ports of 127.0.0.1. Chromium logs in, opens
a notebook in ``/user/NAME/lab``, runs ``%load_ext uvextra``, switches to ``cpu``, imports torch and switches to
``cu128`` (torch is stale now: the card offers **Restart kernel**), and clicks it. Then, as after the toolbar's
restart: a new kernel process, JupyterLab's status back at Idle on its own within :data:`IDLE_WITHIN_S` seconds (no
cell is run), and the card says it restarted, with the new torch build.

Needs what tests/e2e/test_browser_quickstart.py needs (Chromium, playwright, JupyterLab), plus the ``jupyterhub`` Python package and
``configurable-http-proxy`` (npm: ``npm install -g configurable-http-proxy``; found on ``PATH`` or named by
``$UVEXTRA_CHP``); skips with the reason otherwise. Screenshots go to a temporary folder (or
``$UVEXTRA_HUB_ARTIFACTS``); the test prints it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.browser import (
    ALL_RUN,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE_AFTER_RESTART,
    KERNEL_IDLE,
    PANEL,
    STEP_TIMEOUT_MS,
    alive,
    free_port,
    kernel_pid,
    page_statuses,
)
from support.hub import hub_config, hub_missing, proxy_binary
from support.kernels import ROOT, kernel_env, make_kernel_venv, stop_process, write_kernelspec

USER = "alice"
NOTEBOOK = "hub.ipynb"
KERNEL_NAME = "uvextra-hub"
IDLE_WITHIN_S = 8.0  # the toolbar's restart is back at Idle in a few seconds; the issue saw 45 s at "Starting"
HUB_START_S = 120  # the hub, its proxy, and a single-user server on a busy 2-core CI machine


pytestmark = [pytest.mark.browser, pytest.mark.skipif(hub_missing() is not None, reason=str(hub_missing()))]


def _js(code: str) -> str:
    """test_browser_quickstart's page helpers, pointed at this test's notebook."""
    return code.replace("'quickstart.ipynb'", repr(NOTEBOOK))


def _notebook() -> nbformat.NotebookNode:
    quickstart = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    demo_cell = next(c.source for c in quickstart.cells if "create_demo(demo)" in c.source)  # the quickstart's setup
    sources = [
        demo_cell,
        "import os\n%load_ext uvextra\nprint('kernel process', os.getpid())",
        "%uvextra cpu --project {project}",
        "import torch\nprint(torch.__version__, torch._build)",
        "%uvextra cu128 --project {project}",  # torch, imported above, is stale now: the card offers a restart
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "uvextra hub", "language": "python"}
    return nb


# The restart test's hub: the simple spawner, each user's home under the test's folder, notebooks from its root
_HUB_EXTRA = """c.SimpleLocalProcessSpawner.home_dir_template = job["base"] + "/home/{username}"
c.Spawner.notebook_dir = job["root"]
"""


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """A JupyterHub on 127.0.0.1 whose user's single-user server has a kernelspec for a throwaway kernel venv."""
    base = tmp_path_factory.mktemp("hub")
    python = make_kernel_venv(base / "venv", uvextra_wheel, uv_new, uv_env)
    jupyter_path = base / "share-jupyter"
    write_kernelspec(
        jupyter_path / "kernels",
        KERNEL_NAME,
        python,
        {"UVEXTRA_QUICKSTART_DIR": str(base / "demo")},
        display_name="uvextra hub",
    )
    root = base / "root"
    root.mkdir()
    nbformat.write(_notebook(), root / NOTEBOOK)
    labconfig = base / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}', encoding="utf-8"
    )

    # The single-user server's environment is every kernel's too (as in test_browser_quickstart's JupyterLab).
    env = kernel_env(
        python,
        uv_env,
        base,
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    env["PATH"] = os.environ.get("PATH", "")
    env = {k: v for k, v in env.items() if not k.startswith("JUPYTERHUB_") and k not in ("HOME", "USER", "SHELL")}
    port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    job = {
        "port": port,
        "hub_port": hub_port,
        "proxy_api_port": proxy_api_port,
        "base": str(base),
        "user": USER,
        "proxy": proxy_binary(),
        "python": sys.executable,
        "root": str(root),
        "env": env,
        "timeout": HUB_START_S,
        "args": [
            "--ServerApp.allow_root=True",  # CI runs as root
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
    }
    (base / "job.json").write_text(json.dumps(job), encoding="utf-8")
    config = base / "jupyterhub_config.py"
    config.write_text(hub_config(base / "job.json", "simple", _HUB_EXTRA), encoding="utf-8")

    hub_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    hub_env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
    log = open(base / "jupyterhub.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        cwd=base,
        env=hub_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + HUB_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}hub/api/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"JupyterHub did not start (exit {proc.poll()}):\n{log.read()[-4000:]}")
            time.sleep(0.25)
        yield {"url": url, "root": root, "log": log, "base": base}
    finally:
        stop_process(proc, timeout=30)  # stops the user's server and the proxy it started (cleanup_servers)
        for pid_file in ("proxy.pid",):  # a proxy left behind by a hub that had to be killed
            try:
                os.kill(int((base / pid_file).read_text().strip()), 15)
            except (OSError, ValueError):
                pass
        log.close()


def _hub_log(hub: dict[str, Any]) -> str:
    hub["log"].flush()
    return (hub["base"] / "jupyterhub.log").read_text(encoding="utf-8", errors="replace")[-6000:]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("UVEXTRA_HUB_ARTIFACTS") or tmp_path_factory.mktemp("hub-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nhub screenshots: {folder}")
    return folder


def test_card_restart_through_jupyterhub(hub: dict[str, Any], artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    panel, kernel_idle, all_run, idle_after_restart = map(_js, (PANEL, KERNEL_IDLE, ALL_RUN, IDLE_AFTER_RESTART))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        try:
            page.set_default_timeout(STEP_TIMEOUT_MS)
            # Log in through the hub's own page; the hub spawns the user's server and sends the browser to it.
            page.goto(f"{hub['url']}hub/login")
            page.locator("#username_input").fill(USER)
            page.locator("#password_input").fill("anything")  # DummyAuthenticator: no password set, any is fine
            page.locator("#login_submit").click()
            page.wait_for_url(f"**/user/{USER}/lab**", timeout=HUB_START_S * 1000)
            page.goto(f"{hub['url']}user/{USER}/lab/tree/{NOTEBOOK}")
            page.wait_for_function(kernel_idle, polling=250)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

            # Run the notebook: the demo project, %load_ext, cpu, import torch, cu128 (the card offers a restart).
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_timeout(1000)
            page.wait_for_function(all_run, polling=500)
            cells = page.locator(".jp-CodeCell")
            old_pid = kernel_pid(cells.nth(1).inner_text())
            card = cells.last.locator(".uvextra-card")
            expect(card).to_contain_text("switched to cu128")
            restart = card.locator("button.uvextra-restart")
            expect(restart).to_be_visible()
            card.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "01-before-restart.png"))

            page.evaluate(f"""() => {{
              const kernel = ({panel})().sessionContext.session.kernel;
              window.__uvextraStatuses = [];
              window.__uvextraStatusTimes = [];
              kernel.statusChanged.connect((_, status) => {{
                window.__uvextraStatuses.push(status);
                window.__uvextraStatusTimes.push(Math.round(performance.now() - window.__uvextraClicked));
              }});
            }}""")
            clicked_at = len(page_statuses(page))
            page.evaluate("() => { window.__uvextraClicked = performance.now(); }")
            clicked = time.monotonic()
            restart.click()
            expect(card).to_contain_text("restarting through", timeout=10_000)
            deadline = time.monotonic() + 60
            while alive(old_pid):  # the single-user server shuts the old kernel down, then starts a new one
                assert time.monotonic() < deadline, f"kernel process {old_pid} did not end: {_timeline(page)}"
                time.sleep(0.1)
            ended = time.monotonic() - clicked
            # The card says what happened, written by the new kernel: restarted, its process, the new torch build.
            try:
                expect(card).to_contain_text("restarted at", timeout=30_000)
            except AssertionError:
                raise AssertionError(
                    f"30 s after the click on Restart the card still does not say 'restarted at' and the status bar "
                    f"says {page.locator('#jp-main-statusbar').inner_text()!r}: the new kernel was not nudged (old "
                    f"kernel gone after {ended:.1f} s; statuses, ms after the click: {_timeline(page)}; restart "
                    f"helpers still running: {_helpers()})"
                ) from None
            redrawn = time.monotonic() - clicked
            # Back at Idle on its own, as after the toolbar's restart: no cell is run. (Waited for after the redraw:
            # until the new kernel speaks, the page may still show the old kernel's last "idle".)
            page.wait_for_function(idle_after_restart, arg=clicked_at, polling=100, timeout=30_000)
            idle_after = time.monotonic() - clicked
            statusbar = page.locator("#jp-main-statusbar")
            expect(statusbar).to_contain_text("Idle", timeout=2_000)
            assert idle_after <= IDLE_WITHIN_S, (
                f"JupyterLab was back at Idle only {idle_after:.1f} s after the click on Restart (wanted "
                f"{IDLE_WITHIN_S} s; old kernel gone after {ended:.1f} s, card redrawn after {redrawn:.1f} s); "
                f"statuses (ms after the click): {_timeline(page)}"
            )
            page.wait_for_timeout(1000)
            expect(statusbar).to_contain_text("Idle")  # and it stays there
            expect(statusbar).not_to_contain_text("Starting")
            text = card.inner_text()
            new_pid = int(text.split("a new kernel process (", 1)[1].split(")", 1)[0])
            assert new_pid != old_pid and alive(new_pid), (old_pid, new_pid, text[:1000])
            expect(card).to_contain_text("torch 2.9.0+cu128 (cu128 build)")
            expect(card.locator(".uvextra-status-ok")).to_contain_text("matches the lock")
            expect(restart).to_be_hidden()
            page.screenshot(path=str(artifacts / "02-restarted.png"))
            statuses = _timeline(page)
        except BaseException:
            page.screenshot(path=str(artifacts / "99-failure.png"))
            print(
                f"failure screenshot: {artifacts / '99-failure.png'}; kernel statuses: {_timeline(page)}\n"
                f"restart helpers: {_helpers()}\n"
                f"hub log (tail):\n{_hub_log(hub)}",
                flush=True,
            )
            raise
        finally:
            browser.close()
    print(
        f"hub flow: {time.monotonic() - started:.1f} s; kernel pid {old_pid} -> {new_pid}; old kernel gone "
        f"{ended:.1f} s, card redrawn {redrawn:.1f} s, Idle {idle_after:.1f} s after the click on Restart; "
        f"kernel statuses (ms after the click): {statuses}"
    )


def _timeline(page: Any) -> list[tuple[str, int]]:
    return page.evaluate(
        "() => (window.__uvextraStatuses || []).map((s, i) => [s, (window.__uvextraStatusTimes || [])[i]])"
    )


def _helpers() -> str:
    """The restart helpers still running (their pids and ages), for a failure's message."""
    out = subprocess.run(["ps", "-eo", "pid,etimes,args"], capture_output=True, text=True, check=False).stdout
    return "; ".join(line.strip() for line in out.splitlines() if "uvextra.kernel.restart_helper" in line) or "none"
