"""``--user-env`` in a real JupyterLab: the notebook moves to the user's new kernel, and the page follows.

JupyterLab on 127.0.0.1 (as in test_browser_quickstart), Debian's Chromium through Playwright. A notebook on the "image" kernel
(a throwaway kernel venv with the uvextra wheel) runs ``%uvextra cpu --project P --user-env``. Afterwards the page's
own session runs the user's new kernel — the server moved the session (``PATCH /api/sessions``) and JupyterLab
followed without a reload; its toolbar names the kernel **moo (cpu, your env)** once the page knows the new
kernelspec (after a reload, or its next refresh of the list) — and code run there runs in the user's env, with the
project's torch. The env dir and the Jupyter data dir are the test's own. Skips where test_browser_quickstart skips.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.browser import CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS, browser_missing, free_port, wait_for_server
from support.kernels import kernel_env, make_kernel_venv, stop_process, write_kernelspec

pytestmark = [pytest.mark.browser, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

IMAGE_KERNEL = "uvextra-image"
NOTEBOOK = "moo.ipynb"
FOLLOW_WITHIN_S = 60.0  # JupyterLab hears of the session's new kernel when it next refreshes its sessions

PANEL = f"""() => {{
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {{
    if (w.context && w.context.path === '{NOTEBOOK}') return w;
  }}
  return null;
}}"""
_IDLE = f"""() => {{
  const panel = ({PANEL})();
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}}"""
_ON = f"""(name) => {{
  const panel = ({PANEL})();
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.name === name && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}}"""
_RUN = f"""async (code) => {{
  const kernel = ({PANEL})().sessionContext.session.kernel;
  const out = [];
  const future = kernel.requestExecute({{code}});
  future.onIOPub = (msg) => {{ if (msg.header.msg_type === 'stream') out.push(msg.content.text); }};
  await future.done;
  return out.join('');
}}"""


@pytest.fixture
def lab(
    tmp_path: Path,
    uvextra_wheel: Path,
    uv_new: str,
    uv_env: dict[str, str],
    make_project: Any,
) -> Iterator[dict[str, Any]]:
    base = tmp_path
    python = make_kernel_venv(base / "image", uvextra_wheel, uv_new, uv_env)
    jupyter_path = base / "share-jupyter"
    write_kernelspec(jupyter_path / "kernels", IMAGE_KERNEL, python, display_name="the image")
    project = make_project()
    root = base / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(f"%uvextra cpu --project {project} --user-env --no-probe")]
    )
    nb.metadata["kernelspec"] = {"name": IMAGE_KERNEL, "display_name": "the image", "language": "python"}
    nbformat.write(nb, root / NOTEBOOK)
    labconfig = base / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}', encoding="utf-8"
    )
    token, port = secrets.token_hex(16), free_port()
    env = kernel_env(
        python,
        uv_env,
        base,
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        UVEXTRA_ENVS_DIR=str(base / "envs"),
        UVEXTRA_UV=uv_new,
    )
    env["PATH"] = os.environ.get("PATH", "")
    log = open(base / "jupyterlab.log", "w+")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(proc, url, token, log, "JupyterLab")
        yield {"url": url, "token": token, "base": base, "log": log}
    finally:
        stop_process(proc)
        log.close()


def test_the_notebook_moves_to_the_users_own_kernel_in_jupyterlab(lab: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        try:
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(f"{lab['url']}lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_function(_IDLE, polling=250)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            cell = page.locator(".jp-CodeCell").first
            expect(cell).to_contain_text("moving this notebook to the kernel “moo (cpu, your env)”")
            expect(cell.locator(".uvextra-card")).to_contain_text("cpu")
            moved = time.monotonic()
            envs = list((lab["base"] / "envs").iterdir())
            assert len(envs) == 1, envs
            spec = f"uvextra-{envs[0].name}"
            page.wait_for_function(_ON, arg=spec, polling=250, timeout=FOLLOW_WITHIN_S * 1000)
            followed = time.monotonic() - moved
            # The page lists kernelspecs as it loaded them: until it refreshes them (about a minute) or reloads,
            # the toolbar names the new kernel by its spec's name; after a reload, by its display name.
            expect(page.locator(".jp-Toolbar-kernelName").first).to_contain_text(spec)
            page.reload()
            page.wait_for_function(_ON, arg=spec, polling=250)
            expect(page.locator(".jp-Toolbar-kernelName").first).to_contain_text("moo (cpu, your env)")
            seen = page.evaluate(_RUN, "import sys, torch; print(sys.prefix, torch.__version__, torch.version.cuda)")
            assert seen.split() == [str(envs[0]), "2.9.0+cpu", "None"], seen
            magic = page.evaluate(_RUN, "print(get_ipython().find_line_magic('uvextra') is not None)")
            assert magic.strip() == "True", magic
        except BaseException:
            lab["log"].flush()
            print((lab["base"] / "jupyterlab.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()
    print(f"JupyterLab followed the session to the user's kernel {followed:.1f} s after the cell said so")
