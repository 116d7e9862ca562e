"""Issue 11: uv's ``--no-default-groups``, offered by ``switch``, ``check`` and ``repair`` and passed to uv (the sync and
the pylock export alike), kept in the venv's state so that a later ``check`` / ``repair`` aims at what was synced.

The real CLI, the real uv, the stand-in wheels of the local indexes: a project whose default group ``dev`` holds a
package (``nvidia-cublas-cu12``), which is the project's own (its lock locks it), so a switch without ``dev`` removes it.
"""

from __future__ import annotations

import json

import pytest

from support.cli import Setup, report_of
from support.run import run_uv
from support.venvs import dist_infos

BACKENDS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}
DEV = "nvidia_cublas_cu12"


def test_no_default_groups_leaves_dev_out_and_check_and_repair_remember(
    make_project, make_venv, tmp_path, uv_env, uv_new
):
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


# ---------------------------------------------------------------------------------------------------- issue 17
# A backend persisted in `[tool.uv] default-groups` (uv has no `default-extras`): groups `cpu`, `cu128`, `pypi` in one
# conflict set and `default-groups = ["dev", "pypi"]` — the shape of talmolab/sleap-nn (PR #662), which routes torch
# through a default group.

PERSISTED = ['default-groups = ["dev", "pypi"]']


def uv_plan(s: Setup, uv: str, *flags: str) -> dict[str, str]:
    """What `uv sync --dry-run --frozen --inexact` would install into the venv (name -> version), as uv says it."""
    proc = run_uv(
        uv,
        "sync",
        "--color",
        "never",
        "--dry-run",
        "--frozen",
        "--inexact",
        "--project",
        s.project,
        *flags,
        env=dict(s.env, UV_PROJECT_ENVIRONMENT=str(s.venv)),
    )
    plan = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith(" + ") and "==" in line:
            name, _, version = line[3:].strip().partition("==")
            plan[name] = version
    return plan


@pytest.fixture
def persisted(make_project, make_venv, tmp_path, uv_env, uv_new) -> Setup:
    project = make_project(BACKENDS, groups=True, more_groups={"dev": ["nvidia-cublas-cu12"]}, uv_settings=PERSISTED)
    return Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))


def test_default_group_backend_is_offered_and_a_plain_check_answers_what_uv_sync_would(persisted, uv_new):
    s = persisted
    report = report_of(s.run("check", "--json"))
    # not exit 2 with uv's conflict text about a `cpu` nobody asked for: the fresh venv lacks the default selection
    assert report["exit_code"] == 1, report
    assert report["available_groups"] == ["cpu", "cu128", "pypi"], "the default-group backend is a backend"
    assert report["extras"] == ["pypi"] and "default-groups" in report["extras_source"], report
    missing = {d["package"]: d["wanted"] for d in report["drift"] if d["kind"] == "missing"}
    assert missing == uv_plan(s, uv_new), "uvextra's drift is what `uv sync --dry-run --frozen` would install"
    assert "nvidia-cublas-cu12" in missing, "`dev`, the other default group, is wanted too"


def test_switching_away_from_the_default_backend_drops_it_and_keeps_dev(persisted, uv_new):
    s = persisted
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))  # no flag: uvextra knows what uv needs
    assert report["exit_code"] == 0, report
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    assert dist_infos(s.venv, DEV), "the other default group `dev` stays synced"
    assert uv_plan(s, uv_new, "--group", "cpu", "--no-group", "pypi") == {}, "uv sees nothing left to do"
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text())
    assert state["extras"] == ["cpu"] and state["no_default_groups"] is False

    report = report_of(s.run("check", "--group", "cpu", "--json"))  # was: uv's "enabled by default" conflict
    assert (report["exit_code"], report["drift"]) == (0, []), report
    # check and repair (no extra given) aim at the same selection: cpu, dev, not pypi
    for verb in ("check", "repair"):
        report = report_of(s.run(verb, "--json"))
        assert (report["exit_code"], report["drift"]) == (0, []), report
        assert report["extras"] == ["cpu"], report
    (s.venv / ".uvextra" / "state.json").unlink()  # no record: inference reads every backend, the default's too
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"], report["drift"]) == (0, ["cpu"], []), report

    report = report_of(s.run("switch", "pypi", "--no-probe", "--json"))  # back to the default
    assert report["exit_code"] == 0, report
    assert s.torch() == ["torch-2.9.0.dist-info"] and dist_infos(s.venv, DEV)
    assert uv_plan(s, uv_new) == {}
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"], report["drift"]) == (0, ["pypi"], []), report
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))  # away again: pypi's own packages go, dev stays
    removed = sorted(c["name"] for c in report["changes"]["removed"])
    assert (report["exit_code"], removed) == (0, ["nvidia-cuda-runtime-cu12", "triton"]), report
    assert dist_infos(s.venv, DEV) and uv_plan(s, uv_new, "--group", "cpu", "--no-group", "pypi") == {}

    # --no-default-groups still knows pypi as a backend: asked for by name, without dev, and remembered
    report = report_of(s.run("switch", "pypi", "--no-default-groups", "--no-probe", "--json"))
    assert (report["exit_code"], report["extras"]) == (0, ["pypi"]), report
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text())
    assert (state["extras"], state["no_default_groups"]) == (["pypi"], True)
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"], report["drift"]) == (0, ["pypi"], []), report
    s.assert_nothing_lost()


def test_a_lock_that_could_not_be_read_is_never_drift_none():
    from uvextra.core.report import Report
    from uvextra.render.text import render_text

    report = Report(
        command="switch",
        extras=["cpu"],
        failure="uv sync failed (exit 2): error: …",
        failure_kind="uv",
        lock_unread="uv could not export the lock for extras ['cpu']: error: …",
    )
    text = render_text(report)
    assert "none found" not in text and "drift  not checked: the lock could not be read" in text.replace("   ", " ")
    assert report.to_dict()["lock_unread"] and report.exit_code == 1


def test_uvs_default_group_conflict_points_to_no_default_groups():
    from uvextra.core.report import Report

    report = Report(
        command="switch",
        extras=["cu128"],
        failure="uv sync failed (exit 2): …",
        failure_kind="uv",
        uv_error="error: Groups `cu128` and `gpu` (enabled by default) are incompatible with the conflicts",
    )
    assert report.next_step() == (
        "a group uv syncs by default conflicts with what was asked: run `uvextra switch cu128 --no-default-groups`"
    )


def test_the_default_backend_stays_a_backend_under_no_default_groups(tmp_path):
    from dataclasses import replace

    from uvextra.core.project import load_project

    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "persisted"
version = "0"
[dependency-groups]
dev = ["pytest"]
pypi = ["torch"]
cpu = ["torch"]
[tool.uv]
default-groups = ["dev", "pypi"]
conflicts = [[{ group = "pypi" }, { group = "cpu" }]]
[tool.uv.sources]
torch = [{ index = "pytorch-cpu", group = "cpu" }]
""")
    project = load_project(tmp_path)
    assert (project.offered, project.features) == (("pypi", "cpu"), ("dev",))
    assert project.selection_args(["cpu"]) == ["--group", "cpu", "--no-group", "pypi"]
    assert project.selection_args(["pypi"]) == ["--group", "pypi"]
    off = replace(project, no_default_groups=True)
    assert off.offered == ("pypi", "cpu")
    assert off.selection_args(["cpu"]) == ["--group", "cpu", "--no-default-groups"]
