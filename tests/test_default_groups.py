"""Issue 11: uv's ``--no-default-groups``, offered by ``switch``, ``check`` and ``repair`` and passed to uv (the sync and
the pylock export alike), kept in the venv's state so that a later ``check`` / ``repair`` aims at what was synced.

The real CLI, the real uv, the stand-in wheels of the local indexes: a project whose default group ``dev`` holds a
package (``nvidia-cublas-cu12``), which is the project's own (its lock locks it), so a switch without ``dev`` removes it.
"""

from __future__ import annotations

import json

from conftest import dist_infos
from test_hardening import Setup, report_of

BACKENDS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}
DEV = "nvidia_cublas_cu12"


def test_no_default_groups_leaves_dev_out_and_check_and_repair_remember(make_project, make_venv, tmp_path, uv_env,
                                                                        uv_new):
    project = make_project(BACKENDS, more_groups={"dev": ["nvidia-cublas-cu12"]})
    s = Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))

    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert report["exit_code"] == 0, report
    assert dist_infos(s.venv, DEV), "the default group `dev` is synced, as `uv sync --extra cpu` does"

    report = report_of(s.run("switch", "cpu", "--no-default-groups", "--no-probe", "--json"))
    assert report["exit_code"] == 0, report
    assert not dist_infos(s.venv, DEV), "--no-default-groups: `dev` is not wanted, and its package is the project's"
    assert "nvidia-cublas-cu12" in [c["name"] for c in report["changes"]["removed"]], report["changes"]
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text())
    assert state["no_default_groups"] is True

    # check and repair aim at what was synced: no `dev`, so its absence is no drift
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["drift"]) == (0, []), report
    report = report_of(s.run("repair", "--json"))
    assert (report["exit_code"], report["drift"]) == (0, []), report
    assert not dist_infos(s.venv, DEV)

    # A plain switch brings `dev` back, and the record says so
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert report["exit_code"] == 0 and dist_infos(s.venv, DEV), report
    assert json.loads((s.venv / ".uvextra" / "state.json").read_text())["no_default_groups"] is False
    report = report_of(s.run("check", "--no-default-groups", "--json"))  # asked now: dev is extraneous, not missing
    assert report["exit_code"] == 0 and not [d for d in report["drift"] if d["kind"] != "extraneous"], report
    s.assert_nothing_lost()
