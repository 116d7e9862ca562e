"""The card's buttons on a project whose backends are dependency groups (uvextra.widgets, uvextra.session).

A button's action is a new switch or repair: it must aim at the same kind of backend the card shows (a name may be
both an extra and a dependency group of the project) and keep the ``--no-default-groups`` choice of the switch the
card came from. Real kernels from throwaway venvs (``support.kernels``), driven as a browser drives them (the
``Frontend`` of test_magic_in_kernel), the real uv against the local indexes.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.cli import assert_plain, run_cli
from support.frontend import TIMEOUT, Frontend
from support.kernels import kernel_env, make_kernel_venv, write_kernelspec
from support.notebooks import MIME, saved_with
from support.venvs import MakeProject, dist_infos

GROUPS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}
DEV = "nvidia_cublas_cu12"  # the default group's package; cu128's torch needs it too, cpu's does not
CLICK = {"method": "custom", "content": {"event": "click"}}


def test_toggle_and_notebook_switch_keep_the_backend_kind_and_no_default_groups(
    tmp_path: Path,
    make_project: MakeProject,
    uvextra_wheel: Path,
    uv_new: str,
    uv_env: dict[str, str],
) -> None:
    # Backends as groups; `cu128` is also an extra (outside the conflict set), `dev` a default group.
    project = make_project(
        GROUPS, groups=True, more_extras={"cu128": ["filelock"]}, more_groups={"dev": ["nvidia-cublas-cu12"]}
    )
    python = make_kernel_venv(tmp_path / "venv", uvextra_wheel, uv_new, uv_env)
    venv = python.parents[1]
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    env.pop("VIRTUAL_ENV", None)
    notebook = tmp_path / "analysis.ipynb"  # not there yet: the kernel's notebook hint stays silent
    write_kernelspec(
        tmp_path / "kernels",
        "groups",
        python,
        kernel_env(python, env, tmp_path, UVEXTRA_NO_AUTOLOAD="1", JPY_SESSION_NAME=str(notebook)),
    )

    async def first_kernel() -> None:
        fe = await Frontend(tmp_path / "kernels", "groups", tmp_path).start()
        try:
            await fe.run("%load_ext uvextra")
            cell = await fe.run(f"%uvextra --project {project} --group cu128 --no-default-groups --no-probe")
            text = fe.card_text(cell)
            assert "extras       cu128 (group) — given" in text and "drift        none" in text, text
            assert fe.output(cell)[MIME]["groups"] == ["cu128"]
            saved_with(notebook, [fe.output(cell)])  # saved now: the notebook last ran on the group cu128

            toggle = fe.widget("uvextra-toggle")
            assert fe.models[toggle]["_options_labels"] == ["cpu", "cu128", "pypi"]
            assert fe.models[toggle]["index"] == 1
            await fe.send_comm(toggle, {"method": "update", "state": {"index": 0}, "buffer_paths": []})
            card = fe.card()
            assert "switched to cpu — ✓ matches the lock" in card, card
            assert "extras       cpu (group) — given" in fe.output(cell)["text/plain"]
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
            # --no-default-groups kept: `dev` is not synced back, and cu128's nvidia package goes with its torch
            assert dist_infos(venv, DEV) == [], card
            record = fe.output(cell)[MIME]
            assert (record["extras"], record["groups"]) == (["cpu"], ["cpu"]), record
        finally:
            await fe.stop()

    async def second_kernel() -> dict[str, Any]:
        # A new kernel on the same notebook: its status names the notebook's backend, a group also named as an extra.
        fe = await Frontend(tmp_path / "kernels", "groups", tmp_path).start()
        try:
            await fe.run("%load_ext uvextra")
            cell = await fe.run(f"%uvextra --project {project} --no-probe")
            assert "extras       cpu (group)" in fe.card_text(cell), fe.card_text(cell)
            button = fe.widget("uvextra-notebook-switch")
            assert fe.visible("uvextra-notebook-switch") and fe.models[button]["description"] == "Switch to cu128"

            await fe.send_comm(button, CLICK)
            card = fe.card()
            assert "both an extra and a dependency group" not in card, card
            assert "switched to cu128 — ✓ matches the lock" in card, card
            assert "extras       cu128 (group) — given" in fe.output(cell)["text/plain"]
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cu128.dist-info"]
            assert not fe.visible("uvextra-notebook-switch")
            record = fe.output(cell)[MIME]
            assert (record["command"], record["extras"], record["groups"]) == ("switch", ["cu128"], ["cu128"])
            return fe.output(cell)
        finally:
            await fe.stop()

    asyncio.run(first_kernel())
    output = asyncio.run(second_kernel())
    state = json.loads((venv / ".uvextra" / "state.json").read_text())
    assert state["no_default_groups"] is True, state  # the follow-up switch kept the choice too

    saved_with(notebook, [output])
    nbformat.validate(nbformat.read(notebook, as_version=4))
    checked = assert_plain(
        run_cli("check", "--notebook", notebook, "--project", project, "--python", python, env=env, timeout=300)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1].endswith("; this environment is on cu128 too"), checked.stdout


def _pick(index: int) -> dict[str, Any]:
    """What the page sends when the user clicks the ``index``-th button of the toggle."""
    return {"method": "update", "state": {"index": index}, "buffer_paths": []}


async def _until(fe: Frontend, what: str, timeout: float = 120.0) -> str:
    """Follow the kernel's messages until the newest card says ``what``; the card's text then."""
    deadline = asyncio.get_running_loop().time() + timeout
    while what not in fe.card():
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"the card never said {what!r}: {fe.card()}"
        try:
            fe._track(await fe.kc.get_iopub_msg(timeout=min(left, 5.0)))
        except asyncio.TimeoutError:
            continue
        except Exception as exc:  # jupyter_client raises queue.Empty on a timeout
            if type(exc).__name__ != "Empty":
                raise
    return fe.card()


def test_button_work_runs_on_the_main_shell_as_a_cell_would(
    tmp_path: Path,
    make_project: MakeProject,
    uvextra_wheel: Path,
    uv_new: str,
    uv_env: dict[str, str],
) -> None:
    """JupyterLab 4.6 sends the clicks over a subshell; the switch must still run as cell work: the next cell waits
    for it, interrupt stops uv, and a subshell id the page kept from a kernel before a restart loses no click."""
    project = make_project()
    python = make_kernel_venv(tmp_path / "venv", uvextra_wheel, uv_new, uv_env)
    venv = python.parents[1]
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    env.pop("VIRTUAL_ENV", None)
    write_kernelspec(tmp_path / "kernels", "shells", python, kernel_env(python, env, tmp_path, UVEXTRA_NO_AUTOLOAD="1"))
    # A uv whose sync takes a while (a download, say): long enough for a cell sent after the click to overtake it
    # if the click ran beside the cells; `hang` makes it never end (for the interrupt).
    slow, hang = tmp_path / "slow-uv", tmp_path / "hang"
    slow.write_text(
        f'#!/bin/sh\ncase " $* " in *" sync "*) [ -e {hang} ] && echo $$ > {hang} && exec sleep 300; sleep 3;; esac\n'
        f'exec {uv_new} "$@"\n'
    )
    slow.chmod(0o755)

    async def scenario() -> None:
        fe = await Frontend(tmp_path / "kernels", "shells", tmp_path).start()
        try:
            await fe.run("%load_ext uvextra")
            first = await fe.run(f"%uvextra --project {project} cpu --no-probe")
            toggle = fe.widget("uvextra-toggle")
            assert fe.models[toggle]["_options_labels"] == ["cpu", "cu128", "pypi"]
            subshell = await fe.create_subshell()  # the page's subshell for widget comms
            await fe.run(f"import os; os.environ['UVEXTRA_UV'] = {str(slow)!r}")

            await fe.send_comm(toggle, _pick(2), subshell_id=subshell)
            await _until(fe, "switched to pypi")
            # A click, then at once a cell that looks at the disk: the cell runs after the switch, as after a cell.
            await fe.send_comm(toggle, _pick(1), subshell_id=subshell, wait=False)
            seen = await fe.stdout("import importlib.metadata as m; print(m.version('torch'))")
            assert seen.strip() == "2.9.0+cu128", seen
            await _until(fe, "switched to cu128")

            # After a restart the page still names the old kernel's subshell: a new card's controls keep working.
            await fe.run(f"%uvextra --project {project} --no-probe")
            toggle = fe.widget("uvextra-toggle")
            for index, extra, version in ((0, "cpu", "2.9.0+cpu"), (2, "pypi", "2.9.0"), (1, "cu128", "2.9.0+cu128")):
                replies = await fe.send_comm(toggle, _pick(index), subshell_id="a-subshell-of-the-old-kernel")
                assert not [m for m in replies if m["msg_type"] == "error"], replies
                await _until(fe, f"switched to {extra}")
                assert dist_infos(venv, "torch") == [f"torch-{version}.dist-info"], fe.card()
                assert fe.models[toggle]["index"] == index

            # The first card no longer shows the present: it says so in one line, its controls are gone, and so
            # does its saved output; Check again there shows the present.
            def first_card(css_class: str) -> dict[str, Any]:
                return fe.models[
                    [cid for cid, state in fe.models.items() if css_class in state.get("_dom_classes", ())][0]
                ]

            line = "out of date: a later card switched this kernel"
            assert line in first_card("uvextra-stale")["value"]
            assert first_card("uvextra-toggle")["disabled"] and not first_card("uvextra-refresh")["disabled"]
            assert fe.output(first)["text/plain"].startswith(f"uvextra: {line}"), fe.output(first)["text/plain"]
            refresh = [cid for cid, state in fe.models.items() if "uvextra-refresh" in state.get("_dom_classes", ())][0]
            await fe.send_comm(refresh, CLICK, subshell_id=subshell)
            body = first_card("uvextra-body")["value"]
            assert "status of cu128" in body and "matches the lock" in body, body
            assert not first_card("uvextra-toggle")["disabled"]
            assert "out of date" not in fe.output(first)["text/plain"]

            # A click while a cell runs (an async cell awaiting: ipykernel handles comm messages beside it) is
            # refused in one line: nothing changes beside the user's code.
            cell = fe.kc.execute("import asyncio\nawait asyncio.sleep(8)")
            while True:  # until the cell runs
                msg = await fe.kc.get_iopub_msg(timeout=TIMEOUT)
                fe._track(msg)
                if msg["parent_header"].get("msg_id") == cell and msg["msg_type"] == "execute_input":
                    break
            await asyncio.sleep(1.0)
            await fe.send_comm(toggle, _pick(0), subshell_id=subshell, wait=False)
            await _until(fe, "a cell is running: this card changes nothing beside it")
            await fe._until_idle(cell)
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cu128.dist-info"]
            assert fe.models[toggle]["index"] == 1  # the toggle shows the backend installed

            # Interrupt stops uv started by a click, as it stops a cell's.
            hang.touch()
            await fe.send_comm(toggle, _pick(0), subshell_id=subshell, wait=False)
            for _ in range(1200):  # until the stand-in uv hangs (it writes its pid)
                if hang.read_text().strip():
                    break
                await asyncio.sleep(0.1)
            await fe.km.interrupt_kernel()
            card = await _until(fe, "interrupted")
            assert dist_infos(venv, "torch") == ["torch-2.9.0+cu128.dist-info"], card
            with pytest.raises(ProcessLookupError):  # uv (here: its stand-in) is gone
                os.kill(int(hang.read_text()), 0)
        finally:
            await fe.stop()

    asyncio.run(scenario())
