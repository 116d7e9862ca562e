"""A read-only image on a real JupyterHub: a real user clicks "Make my own environment" and lands in their own kernel.

The hub (``DummyAuthenticator``, ``LocalProcessSpawner``: the single-user server runs as a real user made with
``useradd``, as on The Littlest JupyterHub) spawns JupyterLab from a root-owned image venv: ``python -m venv`` of a
Python every user may run, with the uvextra wheel, the rest of the stack (jupyterhub, JupyterLab, ipykernel, …)
linked from the test environment's site-packages (no network). Chromium logs in, opens a notebook on the image's
kernel and runs ``%uvextra cpu --project ~/moo``: the card refuses (the image is read-only for this user) and offers
**Make my own environment**; the click makes the user's env (layered on the image), its kernel, and moves the
notebook there through the single-user server's sessions API with the hub's token (``JUPYTERHUB_API_TOKEN``). The page
follows to the new kernel, which runs in the user's env with the project's torch; the image is byte-for-byte the same.

Needs root (``useradd``, a hub that spawns as users), what tests/e2e/test_hub_restart.py needs (Chromium, playwright,
jupyterhub, configurable-http-proxy) and a test environment whose site-packages other users may read; skips with
the reason otherwise. ``UVEXTRA_SCREENSHOTS=1`` writes the card before and after the click to
``docs/user-env-refused.png`` and ``docs/user-env.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.browser import CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS, free_port
from support.hub import hub_config, hub_missing, proxy_binary
from support.kernels import LINK_PTH, ROOT, _linked_paths, install_wheel, stop_process
from support.venvs import tree_digest

NOTEBOOK = "moo.ipynb"
HUB_START_S = 120
FOLLOW_WITHIN_S = 60.0


def _missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: a hub that spawns single-user servers as real users (useradd)"
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return hub_missing()


pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


PANEL = f"""() => {{
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {{
    if (w.context && w.context.path === '{NOTEBOOK}') return w;
  }}
  return null;
}}"""
_ON = f"""(name) => {{
  const panel = ({PANEL})();
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && (!name || kernel.name === name) && kernel.connectionStatus === 'connected'
    && kernel.status === 'idle';
}}"""
_RUN = f"""async (code) => {{
  const kernel = ({PANEL})().sessionContext.session.kernel;
  const out = [];
  const future = kernel.requestExecute({{code}});
  future.onIOPub = (msg) => {{ if (msg.header.msg_type === 'stream') out.push(msg.content.text); }};
  await future.done;
  return out.join('');
}}"""


def _runnable_by(user: str, python: str) -> bool:
    done = subprocess.run(
        ["runuser", "-u", user, "--", python, "-c", "import venv"],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def hub(
    uvextra_wheel: Path,
    uv_new: str,
    uv_env: dict[str, str],
    index_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    from support.localindex import write_project
    from support.run import run_uv

    base = Path(tempfile.mkdtemp(prefix="uvextra-hubenv-", dir="/tmp"))  # pytest's tmp is root's alone (0700)
    base.chmod(0o755)
    user = f"uvx{secrets.token_hex(3)}h"
    home = base / "home" / user
    (base / "home").mkdir(mode=0o755)
    made = False
    proc = None
    log = None
    try:
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--user-group", user],
            check=True,
            capture_output=True,
            timeout=60,
        )
        made = True
        linked = _linked_paths()
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        python = next(
            (
                p
                for p in dict.fromkeys(
                    [
                        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                        f"/usr/bin/python{version}",
                        f"/usr/local/bin/python{version}",
                    ]
                )
                if Path(p).exists() and _runnable_by(user, p)
            ),
            None,
        )
        if python is None:
            pytest.skip(f"no Python {version} with venv that another user may run")
        probe = subprocess.run(
            [
                "runuser",
                "-u",
                user,
                "--",
                python,
                "-c",
                "import os, sys; sys.exit(not all(os.access(p, os.R_OK | os.X_OK) for p in sys.argv[1:]))",
                *linked,
            ],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode != 0:
            pytest.skip(f"the test environment's site-packages ({', '.join(linked)}) are not readable by other users")
        image = base / "image"
        subprocess.run(
            [python, "-m", "venv", "--without-pip", str(image)], check=True, capture_output=True, timeout=300
        )
        site = next(image.glob("lib/python3*/site-packages"))
        (site / LINK_PTH).write_text(
            f"import sys; i = sys.path.index({str(site)!r}); sys.path[i:i] = {linked!r}\n", encoding="utf-8"
        )
        install_wheel(image / "bin" / "python", uvextra_wheel, uv_new, uv_env)
        shutil.copy2(uv_new, image / "bin" / "uv")

        # The user's project (stand-in torch builds on the local index server) and a notebook on the image's kernel.
        indexes = {e: index_server.simple_url(e) for e in ("cpu", "cu128", "pypi")}
        project = write_project(
            home / "moo", indexes, extras=tuple(indexes), default_index=index_server.simple_url("pypi")
        )
        run_uv(uv_new, "lock", env=uv_env, cwd=project)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%uvextra cpu --project ~/moo --no-probe")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nbformat.write(nb, home / NOTEBOOK)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(home)], check=True, timeout=60)

        share = Path(sys.prefix) / "share" / "jupyter"  # JupyterLab's built app and the widgets' labextension
        env = {
            "JUPYTER_PATH": str(share),
            "JUPYTERLAB_DIR": str(share / "lab"),
            "JUPYTER_CONFIG_PATH": str(Path(sys.prefix) / "etc" / "jupyter"),  # JupyterLab's server extension
            "UVEXTRA_UV": str(image / "bin" / "uv"),
            "UV_NO_PROGRESS": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "PATH": f"{image / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        }
        labconfig = home / ".jupyter" / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(
            '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}', encoding="utf-8"
        )
        subprocess.run(["chown", "-R", f"{user}:{user}", str(home / ".jupyter")], check=True, timeout=60)
        port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
        hubdir = base / "hub"  # the hub's own files: root's alone
        hubdir.mkdir(mode=0o700)
        job = {
            "port": port,
            "hub_port": hub_port,
            "proxy_api_port": proxy_api_port,
            "base": str(hubdir),
            "user": user,
            "proxy": proxy_binary(),
            "python": str(image / "bin" / "python"),
            "env": env,
            "timeout": HUB_START_S,
            "args": [
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
            ],
        }
        (hubdir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        config = hubdir / "jupyterhub_config.py"
        config.write_text(hub_config(hubdir / "job.json", "localprocess"), encoding="utf-8")
        hub_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_", "UV_"))}
        hub_env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(16)
        log = open(hubdir / "jupyterhub.log", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=hubdir,
            env=hub_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/"
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
        yield {"url": url, "user": user, "home": home, "image": image, "log": log, "hubdir": hubdir}
    finally:
        if proc is not None:
            stop_process(proc, timeout=30)
            try:
                os.kill(int((base / "hub" / "proxy.pid").read_text().strip()), 15)
            except (OSError, ValueError):
                pass
        if log is not None:
            log.close()
        if made:
            subprocess.run(["userdel", "--remove", user], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_a_real_user_on_a_read_only_image_gets_their_own_kernel_from_the_card(
    hub: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    before = tree_digest(hub["image"])
    user = hub["user"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        try:
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(f"{hub['url']}hub/login")
            page.locator("#username_input").fill(user)
            page.locator("#password_input").fill("anything")
            page.locator("#login_submit").click()
            page.wait_for_url(f"**/user/{user}/lab**", timeout=HUB_START_S * 1000)
            page.goto(f"{hub['url']}user/{user}/lab/tree/{NOTEBOOK}")
            page.wait_for_function(_ON, arg="", polling=250)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            card = page.locator(".jp-CodeCell").first.locator(".uvextra-card")
            expect(card).to_contain_text(f"the environment {hub['image']} is read-only")
            button = card.locator("button.uvextra-user-env")
            expect(button).to_be_visible()
            page.screenshot(path=str(tmp_path / "01-refused.png"))
            if os.environ.get("UVEXTRA_SCREENSHOTS") == "1":
                card.screenshot(path=str(ROOT / "docs" / "user-env-refused.png"))
            button.click()
            expect(card).to_contain_text("moving this notebook to the kernel “moo (cpu, your env)”")
            expect(card).to_contain_text("switched to cpu")
            page.screenshot(path=str(tmp_path / "02-own-env.png"))
            if os.environ.get("UVEXTRA_SCREENSHOTS") == "1":  # the docs' picture of the card after the click
                card.scroll_into_view_if_needed()
                card.screenshot(path=str(ROOT / "docs" / "user-env.png"))
            envs = hub["home"] / ".local" / "share" / "uvextra" / "envs"
            names = [p.name for p in envs.iterdir() if not p.name.startswith(".")]
            assert len(names) == 1, names
            page.wait_for_function(_ON, arg=f"uvextra-{names[0]}", polling=250, timeout=FOLLOW_WITHIN_S * 1000)
            seen = page.evaluate(_RUN, "import sys, torch; print(sys.prefix, torch.__version__, torch.version.cuda)")
            assert seen.split() == [str(envs / names[0]), "2.9.0+cpu", "None"], seen
        except BaseException:
            page.screenshot(path=str(tmp_path / "99-failure.png"))
            hub["log"].flush()
            print(
                f"screenshots: {tmp_path}\nhub log (tail):\n"
                f"{(hub['hubdir'] / 'jupyterhub.log').read_text(errors='replace')[-5000:]}"
            )
            raise
        finally:
            browser.close()
    assert tree_digest(hub["image"]) == before, "the image changed"
