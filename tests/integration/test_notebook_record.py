"""The notebook remembers its backend: every ``%uvextra`` output carries a record (its own MIME type), nbformat
reads it back, and ``uvextra check|status|switch --notebook`` and ``%uvextra`` (status) compare it with an
environment.

Real kernels from throwaway venvs (the uvextra wheel of this checkout, see support/kernels.py) run the notebook under
nbclient, the way CI runs notebooks headless (nbconvert --execute, papermill); the saved ``.ipynb`` is then read by
the real CLI (``python -m uvextra``) with the real uv against the local indexes on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.cli import assert_plain, error_line, run_cli
from support.frontend import Frontend
from support.kernels import kernel_env, make_kernel_venv, write_kernelspec
from support.localindex import write_project
from support.notebooks import MIME, saved_with
from support.run import run_uv

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def cli(*args: str | os.PathLike[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """:func:`~support.cli.run_cli`, whose output must be plain (:func:`~support.cli.assert_plain`)."""
    return assert_plain(run_cli(*args, env=env, timeout=300))


ESC = "\x1b"


def run_notebook(nb: Any, kernels: Path, name: str, cwd: Path) -> Any:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(
        nb, km=km, timeout=300, store_widget_state=True, allow_errors=False, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def _plain(cell: Any) -> str:
    return "\n".join(
        o.get("data", {}).get("text/plain", "")
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result")
    )


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
    uvextra_wheel: Path,
    uv_new: str,
    uv_env: dict[str, str],
    index_server: Any,
) -> dict[str, Any]:
    """A locked project (cpu / cu128 / pypi), and a notebook run headless on cpu in a throwaway kernel venv."""
    base = tmp_path_factory.mktemp("nbrecord")
    project = write_project(
        base / "project",
        {e: index_server.simple_url(e) for e in ("cpu", "cu128", "pypi")},
        default_index=index_server.simple_url("pypi"),
    )
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    env = dict(uv_env, UVEXTRA_UV=uv_new, FORCE_COLOR="1", CLICOLOR_FORCE="1")
    env.pop("VIRTUAL_ENV", None)
    python = make_kernel_venv(base / "kvenv", uvextra_wheel, uv_new, uv_env)
    write_kernelspec(base / "kernels", "nbrecord", python, kernel_env(python, env, base))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"%uvextra --project {project} cpu")])
    run_notebook(nb, base / "kernels", "nbrecord", base)
    saved = base / "analysis.ipynb"
    nbformat.write(nb, saved)  # what the user's Save (or nbconvert --execute --inplace) does
    return {"base": base, "project": project, "env": env, "notebook": saved, "kernel_python": python}


def test_every_output_carries_the_record_and_the_saved_notebook_keeps_it(setup: dict[str, Any]) -> None:
    nb = nbformat.read(setup["notebook"], as_version=4)
    nbformat.validate(nb)
    outputs = [o for o in nb.cells[0].outputs if o.output_type == "display_data"]
    # the live card, and beside it the static one (what viewers without a widget manager show) with the record
    assert len(outputs) == 2 and WIDGET_VIEW in outputs[0].data and MIME not in outputs[0].data, outputs
    assert {"text/html", "text/plain", "text/markdown", MIME} <= set(outputs[1].data) and WIDGET_VIEW not in outputs[
        1
    ].data
    record = outputs[1].data[MIME]
    lock = "sha256:" + hashlib.sha256((setup["project"] / "uv.lock").read_bytes()).hexdigest()
    assert record["project"] == "moo" and record["extras"] == ["cpu"] and record["lock"] == lock
    assert record["torch"] == {"version": "2.9.0+cpu", "build": "cpu"}
    assert record["cuda"]["available"] is False and "CPU build of torch" in record["cuda"]["verdict"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"]) and record["clean"] is True
    assert str(setup["base"]) not in json.dumps(record)  # no paths (user names) in what a notebook carries


def test_check_notebook_says_which_backend_the_notebook_needs(
    setup: dict[str, Any], uv_new: str, tmp_path: Path
) -> None:
    env, project, nb = setup["env"], setup["project"], setup["notebook"]
    day = nbformat.read(nb, as_version=4).cells[0].outputs[-1].data[MIME]["time"][:10]
    agreed = cli("check", "--notebook", nb, "--project", project, "--python", setup["kernel_python"], env=env)
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert agreed.stdout.splitlines()[-1] == (
        f"analysis.ipynb last ran on cpu (torch 2.9.0+cpu, {day}); this environment is on cpu too"
    )

    other = tmp_path / "venv"
    run_uv(uv_new, "venv", "--quiet", "--python", sys.executable, str(other), env=env)
    switched = cli("switch", "pypi", "--no-probe", "--project", project, "--python", other, env=env)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    differs = cli("check", "--notebook", nb, "--project", project, "--python", other, env=env)
    assert differs.returncode == 1, differs.stdout + differs.stderr
    assert differs.stdout.splitlines()[-1] == (
        f"analysis.ipynb last ran on cpu (torch 2.9.0+cpu, {day}); "
        "this environment is on pypi — run `uvextra switch cpu`"
    )
    status = cli("status", "--notebook", nb, "--project", project, "--python", other, "--json", env=env)
    data = json.loads(status.stdout)
    assert status.returncode == 1 and data["exit_code"] == 1 and data["notebook"]["agrees"] is False
    assert data["notebook"]["record"]["extras"] == ["cpu"] and data["probe"]["torch_version"] == "2.9.0"

    follow = cli("switch", "--notebook", nb, "--no-probe", "--project", project, "--python", other, env=env)
    assert follow.returncode == 0, follow.stdout + follow.stderr
    assert re.search(rf"extras\s+cpu — recorded in analysis.ipynb \({day}\)", follow.stdout), follow.stdout
    again = cli("status", "--notebook", nb, "--project", project, "--python", other, env=env)
    assert again.returncode == 0 and again.stdout.splitlines()[-1].endswith("this environment is on cpu too")


def test_bad_notebook_files_are_one_line(setup: dict[str, Any], tmp_path: Path) -> None:
    env, project = setup["env"], setup["project"]
    (tmp_path / "text.ipynb").write_text("not json", encoding="utf-8")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), tmp_path / "bare.ipynb")
    (tmp_path / "odd.ipynb").write_text('{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    common = ("--project", project, "--python", setup["kernel_python"])
    assert error_line(cli("check", "--notebook", tmp_path / "gone.ipynb", *common, env=env)) == (
        f"{tmp_path / 'gone.ipynb'}: no such notebook file"
    )
    assert error_line(cli("status", "--notebook", tmp_path / "text.ipynb", *common, env=env)).startswith(
        "text.ipynb is not a readable Jupyter notebook ("
    )
    assert error_line(cli("check", "--notebook", tmp_path / "odd.ipynb", *common, env=env)).startswith(
        "odd.ipynb is not a readable Jupyter notebook ("
    )
    assert error_line(cli("switch", "--notebook", tmp_path / "bare.ipynb", *common, env=env)) == (
        "bare.ipynb holds no uvextra record: run `%uvextra` in it and save it with its outputs"
    )
    assert error_line(cli("switch", "cpu", "--notebook", setup["notebook"], *common, env=env)) == (
        "name the extras or give --notebook, not both (see `uvextra switch --help`)"
    )


def test_status_in_a_kernel_names_its_notebooks_backend_with_a_button(
    setup: dict[str, Any], uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str], tmp_path: Path
) -> None:
    """A colleague opens the notebook in a kernel whose venv is on pypi: the status card says cpu, one click."""
    env, project = setup["env"], setup["project"]
    python = make_kernel_venv(tmp_path / "kvenv", uvextra_wheel, uv_new, uv_env)
    switched = cli("switch", "pypi", "--no-probe", "--project", project, "--python", python, env=env)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    # What jupyter_server sets for the kernel of a notebook session (here the saved analysis notebook).
    write_kernelspec(
        tmp_path / "kernels",
        "colleague",
        python,
        kernel_env(python, env, tmp_path, JPY_SESSION_NAME=str(setup["notebook"])),
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"%uvextra --project {project} --no-probe")])
    run_notebook(nb, tmp_path / "kernels", "colleague", tmp_path)
    text = _plain(nb.cells[0])
    assert re.search(
        r"notebook  this notebook last ran on cpu \(torch 2\.9\.0\+cpu, [\d-]{10}\); this kernel's "
        r"environment is on pypi — run `%uvextra cpu`",
        text,
    ), text
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    button = next(m["state"] for m in state.values() if "uvextra-notebook-switch" in m["state"].get("_dom_classes", []))
    assert button["description"] == "Switch to cpu" and button["disabled"] is False
    layout = state[button["layout"].removeprefix("IPY_MODEL_")]["state"]
    assert layout.get("display") in (None, "")  # shown

    # Unset, or a file that is not there: nothing is said (a hint, never an error).
    write_kernelspec(
        tmp_path / "kernels",
        "plain",
        python,
        kernel_env(python, env, tmp_path, JPY_SESSION_NAME=str(tmp_path / "elsewhere.ipynb")),
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"%uvextra --project {project} --no-probe")])
    run_notebook(nb, tmp_path / "kernels", "plain", tmp_path)
    assert "last ran on" not in _plain(nb.cells[0]) and "extras       pypi" in _plain(nb.cells[0])


def test_button_clicks_rewrite_the_record_so_the_saved_notebook_names_the_last_action(
    setup: dict[str, Any], uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str], tmp_path: Path
) -> None:
    """ "Switch to cpu" and the toggle change the venv after the cell finished: the output's record follows them."""
    import asyncio

    env, project = setup["env"], setup["project"]
    python = make_kernel_venv(tmp_path / "kvenv", uvextra_wheel, uv_new, uv_env)
    switched = cli("switch", "pypi", "--no-probe", "--project", project, "--python", python, env=env)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    notebook = tmp_path / "colleague.ipynb"
    notebook.write_bytes(setup["notebook"].read_bytes())  # it last ran on cpu
    write_kernelspec(
        tmp_path / "kernels", "clicks", python, kernel_env(python, env, tmp_path, JPY_SESSION_NAME=str(notebook))
    )

    async def scenario() -> dict[str, str]:
        fe = await Frontend(tmp_path / "kernels", "clicks", tmp_path).start()
        try:
            cell = await fe.run(f"%uvextra --project {project}")
            assert fe.output(cell)[MIME]["extras"] == ["pypi"]
            button = fe.widget("uvextra-notebook-switch")
            assert fe.visible("uvextra-notebook-switch") and fe.models[button]["description"] == "Switch to cpu"

            await fe.send_comm(button, {"method": "custom", "content": {"event": "click"}})
            assert "switched to cpu — ✓ matches the lock" in fe.card(), fe.card()
            assert not fe.visible("uvextra-notebook-switch")  # the notebook and the venv agree now
            record = fe.output(cell)[MIME]
            assert (record["command"], record["extras"]) == ("switch", ["cpu"]), record
            assert record["torch"] == {"version": "2.9.0+cpu", "build": "cpu"}
            assert "extras       cpu — given" in fe.output(cell)["text/plain"]

            toggle = fe.widget("uvextra-toggle")
            assert fe.models[toggle]["_options_labels"] == ["cpu", "cu128", "pypi"]
            await fe.send_comm(toggle, {"method": "update", "state": {"index": 1}, "buffer_paths": []})
            assert "switched to cu128 — ✓ matches the lock" in fe.card(), fe.card()
            record = fe.output(cell)[MIME]
            assert (record["command"], record["extras"], record["clean"]) == ("switch", ["cu128"], True), record
            assert record["torch"] == {"version": "2.9.0+cu128", "build": "cu128"}
            return fe.output(cell)
        finally:
            await fe.stop()

    output = asyncio.run(scenario())
    assert {"text/html", "text/plain", MIME} <= set(output) and WIDGET_VIEW not in output  # the static output
    saved_with(notebook, [output])  # the user saves the notebook
    nbformat.validate(nbformat.read(notebook, as_version=4))
    checked = cli("check", "--notebook", notebook, "--project", project, "--python", python, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    line = checked.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"colleague\.ipynb last ran on cu128 \(torch 2\.9\.0\+cu128, [\d-]{10}\); "
        r"this environment is on cu128 too",
        line,
    ), line

    # And on a venv that is still on cpu, the saved notebook says cu128 is what it needs.
    other = tmp_path / "venv-cpu"
    run_uv(uv_new, "venv", "--quiet", "--python", sys.executable, str(other), env=env)
    assert cli("switch", "cpu", "--no-probe", "--project", project, "--python", other, env=env).returncode == 0
    differs = cli("check", "--notebook", notebook, "--project", project, "--python", other, env=env)
    assert differs.returncode == 1, differs.stdout + differs.stderr
    assert differs.stdout.splitlines()[-1].endswith("this environment is on cpu — run `uvextra switch cu128`")
