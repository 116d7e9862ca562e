"""The notebooks in notebooks/: valid nbformat, stored without outputs, and the quickstart run top to bottom.

The quickstart switches the environment of the kernel that runs it, so it runs in a throwaway kernel venv (the
uvextra wheel of this checkout installed into a fresh venv; see support/kernels.py) under nbclient, the way
nbconvert --execute would. Where a user would click, the test does what the browser does: it sends the button's
comm message (``{"method": "custom", "content": {"event": "click"}}``) over the kernel's shell channel.
"""

from __future__ import annotations

import copy
import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import tomllib

from support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing
from support.kernels import ROOT, kernel_env, make_kernel_venv, write_kernelspec

NOTEBOOKS = ROOT / "notebooks"
QUICKSTART = NOTEBOOKS / "quickstart.ipynb"
BACKENDS = NOTEBOOKS / "pytorch-backends"
PYTORCH_INDEXES = {
    "pytorch-cpu": "https://download.pytorch.org/whl/cpu",
    "pytorch-cu128": "https://download.pytorch.org/whl/cu128",
}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# ---------------------------------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.rglob("*.ipynb")), ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_is_valid_and_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: stored with outputs"
    assert "widgets" not in nb.metadata, f"{path.name}: stored with widget state"
    text = path.read_text(encoding="utf-8")
    # Only the real PyTorch indexes may be named, and only in the real-world example.
    urls = set(re.findall(r"https?://[^\s\"'`)<>\]]+", text))
    allowed = {"https://github.com/astral-sh/uv/issues/16368"} | set(PYTORCH_INDEXES.values())
    assert urls <= allowed, urls - allowed


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.rglob("*.ipynb")), ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_names_the_kernel_its_setup_installs(path: Path) -> None:
    """``jupyter nbconvert --execute`` starts the kernel the notebook names: after the setup the notebook (or its
    folder's README) gives, that kernel must exist — not ``python3``, which lacks uvextra."""
    nb = nbformat.read(path, as_version=4)
    setup = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    readme = path.parent / "README.md"
    if readme.exists():
        setup += "\n" + readme.read_text(encoding="utf-8")
    installed = re.findall(r"ipykernel install --user --name ([\w.-]+)", setup)
    assert installed, f"{path.name}: no `ipykernel install --user --name …` in its setup"
    assert nb.metadata["kernelspec"]["name"] in installed, (nb.metadata["kernelspec"], installed)


def test_pytorch_backends_project_mirrors_uvs_pytorch_guide() -> None:
    data = tomllib.loads((BACKENDS / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["requires-python"] == ">=3.10"
    assert set(data["project"]["optional-dependencies"]) == {"cpu", "cu128", "pypi"}
    assert data["tool"]["uv"]["conflicts"] == [[{"extra": "cpu"}, {"extra": "cu128"}, {"extra": "pypi"}]]
    indexes = {ix["name"]: ix for ix in data["tool"]["uv"]["index"]}
    assert {name: ix["url"] for name, ix in indexes.items()} == PYTORCH_INDEXES
    assert all(ix["explicit"] for ix in indexes.values())
    for package in ("torch", "torchvision"):
        assert data["tool"]["uv"]["sources"][package] == [
            {"index": "pytorch-cpu", "extra": "cpu"},
            {"index": "pytorch-cu128", "extra": "cu128"},
        ]
    from uvextra.core.project import load_project

    project = load_project(BACKENDS)
    assert set(project.extras) == {"cpu", "cu128", "pypi"}
    assert [set(s) for s in project.conflict_sets] == [{"cpu", "cu128", "pypi"}]
    nb = nbformat.read(BACKENDS / "backends.ipynb", as_version=4)
    assert any("%uvextra" in c.source for c in nb.cells if c.cell_type == "code")


# ---------------------------------------------------------------------------------------------------- the quickstart


def _text(cell: Any) -> str:
    """Everything a reader sees of a code cell's outputs, as text (the card's text/plain included)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "\n".join(parts)


def _by_tag(nb: Any, tag: str) -> Any:
    found = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(found) == 1, f"the quickstart needs exactly one cell tagged {tag!r}"
    return found[0]


def _find_button(widget_state: dict[str, dict[str, Any]], root: str, css: str) -> str:
    """The model id of the widget with CSS class ``css`` under the card ``root`` (ipywidgets' children refs)."""
    todo = [root]
    while todo:
        model_id = todo.pop()
        state = widget_state.get(model_id, {})
        if css in state.get("_dom_classes", []):
            return model_id
        todo += [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]
    raise AssertionError(f"no widget with class {css!r} in the card {root}")


def _card_id(cell: Any) -> str:
    views = [
        o.data[WIDGET_VIEW]["model_id"]
        for o in cell.outputs
        if o.output_type == "display_data" and WIDGET_VIEW in o.get("data", {})
    ]
    assert views, f"no widget card in the cell's outputs: {_text(cell)}"
    return views[-1]


@pytest.fixture(scope="module")
def quickstart_kernel(
    tmp_path_factory: pytest.TempPathFactory, uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]
) -> dict[str, Any]:
    """A kernelspec ``quickstart`` whose kernel runs in a throwaway venv with the uvextra wheel."""
    base = tmp_path_factory.mktemp("quickstart")
    python = make_kernel_venv(base / "venv", uvextra_wheel, uv_new, uv_env)
    env = kernel_env(python, uv_env, base, UVEXTRA_QUICKSTART_DIR=str(base / "demo"))
    write_kernelspec(base / "kernels", "quickstart", python, env)
    return {"base": base, "python": python, "kernels": base / "kernels", "env": env}


def test_quickstart_runs_top_to_bottom(quickstart_kernel: dict[str, Any], tmp_path: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    nb = nbformat.read(QUICKSTART, as_version=4)
    km = AsyncKernelManager(
        kernel_name="quickstart", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(quickstart_kernel["kernels"])])
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=300,
        store_widget_state=True,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    pids: list[int] = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            tags = cell.metadata.get("tags", [])
            if "after-restart" in tags:
                # What Kernel → Restart does; under nbclient the card offers no button (nothing would restart it).
                pids.append(client.km.provisioner.pid)
                run_sync(client.km.restart_kernel)(now=True)
                run_sync(client.kc.wait_for_ready)(timeout=60)
                pids.append(client.km.provisioner.pid)
            client.execute_cell(cell, index)
            if "drift" in tags:
                button = _find_button(client.widget_state, _card_id(cell), "uvextra-reinstall")
                msg = client.kc.session.msg(
                    "comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
                )
                client.kc.shell_channel.send(msg)  # handled before the next cell's execute_request
        client.set_widgets_metadata()
    nbformat.validate(nb)
    executed = tmp_path / "quickstart.executed.ipynb"
    executed.write_text(nbformat.writes(nb), encoding="utf-8")

    setup = _text(_by_tag(nb, "setup"))
    assert "demo project" in setup and str(quickstart_kernel["base"] / "venv") in setup

    auto = _text(_by_tag(nb, "auto"))
    assert "extras       cpu — auto: cpu: no NVIDIA driver found" in auto, auto
    assert "CPU build of torch (2.9.0+cpu); CUDA not expected" in auto, auto

    switched = _text(_by_tag(nb, "switch-pypi"))
    assert "extras       pypi" in switched and "torch 2.9.0+cpu → 2.9.0" in switched, switched
    assert "not available: CUDA 12.8 build but no NVIDIA driver" in switched, switched

    assert _text(_by_tag(nb, "import-torch")).split() == ["2.9.0", "12.8", "pypi-cu128"]

    drift = _text(_by_tag(nb, "drift"))
    assert "changes      no packages changed" in drift, drift  # uv kept the PyPI build…
    assert re.search(r"torch\s+build\s+2\.9\.0 → 2\.9\.0", drift), drift  # …and uvextra caught it

    checked = _text(_by_tag(nb, "check"))
    assert "drift        none" in checked, checked  # clean after the Reinstall click
    assert "CPU build of torch (2.9.0)" in checked, checked  # the mirror's CPU build is on disk now
    assert re.search(r"restart needed.*\n\s+torch: ", checked), checked  # the imported torch is stale

    after = _text(_by_tag(nb, "after-restart"))
    assert pids[0] != pids[1] and f"kernel process {pids[1]} " in after, (pids, after)
    assert "torch 2.9.0 mirror-cpu" in after, after  # a fresh kernel imports what is on disk now
    assert "drift        none" in after, after  # and %uvextra is there without %load_ext
    widgets = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any("uvextra-card" in m["state"].get("_dom_classes", []) for m in widgets.values())
    _every_card_reads_in_html_offline(executed, nb)
    # every cell runs again as it is in a fresh kernel (what a restart leaves), the setup cell not run again: no
    # variable of the old kernel is needed
    rerun = copy.deepcopy(nb)
    rerun.cells = [c for c in rerun.cells if "setup" not in c.metadata.get("tags", [])]
    NotebookClient(
        rerun,
        km=AsyncKernelManager(
            kernel_name="quickstart",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(quickstart_kernel["kernels"])]),
        ),
        timeout=300,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    again = _text(_by_tag(rerun, "after-restart"))
    assert "extras       internal" in again and str(quickstart_kernel["base"] / "demo" / "moo") in again, again
    assert "torch  build  2.9.0 → 2.9.0" in again, again  # nobody clicked Reinstall this time: the drift is back


def _every_card_reads_in_html_offline(executed: Path, nb: Any) -> None:
    """``jupyter nbconvert --to html`` of the executed notebook, opened in Chromium with every request but the file
    refused (no widget manager from a CDN): each ``%uvextra`` cell shows its card's words."""
    done = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(executed)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    page_file = executed.with_suffix(".html")
    headlines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code" and any(line.startswith("%uvextra") for line in cell.source.splitlines())
        for line in [_headline(cell)]
    ]
    assert len(headlines) == 5, headlines
    assert [h.split(" — ")[0].split(" · ")[-1] for h in headlines] == [
        "switched to cpu",
        "switched to pypi",
        "switched to internal",
        "checked against internal",
        "checked against internal",
    ], headlines

    if browser_missing() is not None:
        return  # the words are in the file; the browser check needs Chromium and Playwright (test_browser_quickstart says how)
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            refused: list[str] = []

            def offline(route: Any) -> None:
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto(page_file.as_uri())
            for headline in headlines:
                shown = page.locator(".jp-OutputArea-output", has_text=headline)
                expect(shown).to_have_count(headlines.count(headline))
                for index in range(headlines.count(headline)):
                    expect(shown.nth(index)).to_be_visible()
            assert refused, "the page asked the network for nothing: was the widget manager dropped?"
        finally:
            browser.close()


def _headline(cell: Any) -> str:
    """The title line of the static card the cell saved: ``uvextra · moo · switched to pypi — ✓ matches the lock``."""
    for output in cell.outputs:
        markup = output.get("data", {}).get("text/html", "") if output.output_type == "display_data" else ""
        found = re.search(r'<div class="uvextra-report"[^>]*><div[^>]*>(.*?)</div>', markup)
        if found:
            return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())
    raise AssertionError(f"no card in the cell: {_text(cell)}")


def test_quickstart_runs_headless_as_shipped(quickstart_kernel: dict[str, Any], tmp_path: Path) -> None:
    """``jupyter nbconvert --execute`` on the shipped file, where the README's kernel exists: it finds the kernel
    by the name the notebook carries and runs every cell without an error (nobody clicks Reinstall here)."""
    share = tmp_path / "share"
    write_kernelspec(share / "kernels", "uvextra-quickstart", quickstart_kernel["python"], quickstart_kernel["env"])
    env = dict(
        quickstart_kernel["env"],
        JUPYTER_PATH=str(share),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    env["PATH"] = os.environ.get("PATH", "")
    out = tmp_path / "quickstart.out.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--execute", "--to", "notebook", str(QUICKSTART), "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    assert "extras       internal" in _text(_by_tag(nb, "after-restart"))
