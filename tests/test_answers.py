"""Issue 9: every answer describes the end state, and every failure is named as what it is.

The real CLI (``python -m uvextra``), the real uv, real local indexes on 127.0.0.1, kernel venvs made the way users
make them (``python -m venv``: pip and setuptools present), ``FORCE_COLOR=1 CLICOLOR_FORCE=1`` as ipykernel sets them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _localindex import IndexServer, write_project
from conftest import dist_infos, run_uv
from test_hardening import Setup, error_line, project_on, report_of


@pytest.fixture
def pyvenv(tmp_path, uv_new, uv_env, index_server) -> Path:
    """A kernel venv as users make one: ``python -m venv`` (pip, setuptools), then the stand-in ipykernel."""
    venv = tmp_path / "kernel-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    run_uv(uv_new, "pip", "install", "--python", venv / "bin" / "python", "--index-url",
           index_server.simple_url("kernelish"), "--extra-index-url", index_server.simple_url("pypi"), "ipykernel",
           env=uv_env)
    return venv


@pytest.fixture
def own_server(index_root):
    server = IndexServer(index_root).start()
    yield server
    server.stop()


def pip_works(venv: Path) -> bool:
    return subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True,
                          timeout=60).returncode == 0


def test_switch_names_every_removal_and_keeps_what_is_not_the_projects(make_project, pyvenv, uv_env, uv_new):
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cu128", "--no-probe").returncode == 0
    nvidia = {d.split("-")[0] for d in dist_infos(pyvenv) if d.startswith("nvidia")}
    assert nvidia, "the cu128 stand-in brings nvidia-* packages"
    proc = s.run("switch", "cpu", "--no-probe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split("  ", 1)[0]: line for line in proc.stdout.splitlines() if line and not line.startswith(" ")}
    assert all(name.replace("_", "-") in rows["removed"] for name in nvidia), proc.stdout  # named, not counted
    assert "not from this project, kept" in rows["kept"] and "pip" in rows["kept"] and "setuptools" in rows["kept"]
    assert "\x1b" not in proc.stdout + proc.stderr
    assert pip_works(pyvenv) and dist_infos(pyvenv, "setuptools")
    assert not [d for d in dist_infos(pyvenv) if d.startswith("nvidia")]
    report = report_of(s.run("check", "--json"))
    assert report["exit_code"] == 0 and not [d for d in report["drift"] if d["package"] in ("pip", "setuptools")]


def test_exact_is_uvs_exact_sync_but_keeps_the_kernel(make_project, pyvenv, uv_env, uv_new):
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    report = report_of(s.run("switch", "cpu", "--no-probe", "--exact", "--json"))
    assert report["exit_code"] == 0
    removed = {c["name"] for c in report["changes"]["removed"]}
    assert {"pip", "setuptools"} <= removed and report["changes"]["kept_foreign"] == []
    assert dist_infos(pyvenv, "ipykernel")


def test_switch_with_repair_probes_the_repaired_build(make_project, pyvenv, uv_env, uv_new):
    """The probe runs after the repair: its verdict is the mirror's CPU build, not the pypi CUDA build before it."""
    s = Setup(make_project({"pypi": "pypi", "mirror": "mirror"}), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    before = report_of(s.run("switch", "pypi", "--json"))
    assert before["probe"]["cuda_version"] == "12.8", before["probe"]
    report = report_of(s.run("switch", "mirror", "--repair", "--json"))
    assert (report["exit_code"], report["repaired"]) == (0, ["torch"])
    assert report["probe"]["cuda_version"] is None and "CPU build" in report["probe"]["verdict"], report["probe"]


def test_failed_first_switch_then_repair_aims_at_what_was_asked(own_server, pyvenv, tmp_path, uv_new, uv_env):
    """Index down during the first switch: check and repair aim at the extra the user asked for, never a third."""
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
    s = Setup(project_on(own_server, tmp_path / "project", uv_new, env), pyvenv, env)
    own_server.stop()
    report = report_of(s.run("switch", "cu128", "--no-probe", "--json"))
    assert (report["exit_code"], report["failure_kind"]) == (1, "network")
    assert f"127.0.0.1:{own_server.port}" in report["uv_error"]  # uv's own words
    proc = s.run("switch", "cu128", "--no-probe")
    step = next(ln for ln in proc.stdout.splitlines() if ln.startswith("next"))
    assert "nothing changed; retry when the index is reachable" in step and "repair" not in step
    report = report_of(s.run("check", "--json"))
    assert report["extras"] == ["cu128"] and "asked for by the last switch, which did not finish" in \
        report["extras_source"]
    report = report_of(s.run("repair", "--json"))
    assert (report["extras"], report["exit_code"], report["failure_kind"]) == (["cu128"], 1, "network")
    assert dist_infos(pyvenv, "torch") == []  # no backend nobody chose
    assert pip_works(pyvenv)


def test_failed_switch_that_changed_nothing_keeps_checking_the_last_good_one(
        own_server, pyvenv, tmp_path, uv_new, uv_env):
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
    s = Setup(project_on(own_server, tmp_path / "project", uv_new, env), pyvenv, env)
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    own_server.stop()
    assert s.run("switch", "cu128", "--no-probe").returncode == 1
    report = report_of(s.run("repair", "--json"))
    assert (report["extras"], report["exit_code"], report["changes"]["installed"]) == (["cpu"], 0, [])
    assert "the switch to cu128 after it did not finish and changed nothing" in report["extras_source"]
    assert dist_infos(pyvenv, "torch") == ["torch-2.9.0+cpu.dist-info"]


def test_nothing_of_the_project_installed_is_no_match(make_project, pyvenv, uv_env, uv_new):
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    proc = s.run("check", "--json")
    report = report_of(proc)
    assert (proc.returncode, report["extras"], report["extras_unknown"]) == (1, [], "none")
    assert "matches" not in report["extras_source"] and "none of cpu, cu128, pypi is installed" in \
        report["extras_source"]
    text = s.run("check").stdout
    assert "run `uvextra switch cpu | cu128 | pypi`" in text
    message = error_line(s.run("repair"))
    assert message.startswith("cannot tell which extras to repair") and "uvextra switch" in message
    assert dist_infos(pyvenv, "torch") == []


def test_two_extras_that_match_equally_are_a_tie(make_project, make_venv, tmp_path, uv_env, uv_new):
    # torch 2.9.0 from pypi by hand: the mirror's build has the same version string and requirements
    venv = make_venv(tmp_path / "venv", packages=["torch==2.9.0", "numpy"])
    s = Setup(make_project({"pypi": "pypi", "mirror": "mirror"}), venv, dict(uv_env, UVEXTRA_UV=uv_new))
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras_unknown"]) == (1, "tie")
    assert "a tie: pypi and mirror" in report["extras_source"]
    assert error_line(s.run("repair")).startswith("cannot tell which extras to repair")


@pytest.mark.parametrize("requirement, uv_says", [
    ("torch==99.0.0", "No solution found"),  # unresolvable
])
def test_sync_failing_before_a_lock_exists_shows_uvs_words(
        index_server, pyvenv, tmp_path, uv_env, uv_new, requirement, uv_says):
    project = write_project(tmp_path / "project", {"cpu": index_server.simple_url("cpu"),
                                                   "pypi": index_server.simple_url("pypi")},
                            extras=("cpu", "pypi"), torch_requirement=requirement)
    s = Setup(project, pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    proc = s.run("switch", "cpu", "--json")
    report = report_of(proc)
    assert (proc.returncode, report["failure_kind"]) == (1, "uv"), proc.stderr
    assert uv_says in report["uv_error"] and uv_says in report["failure"]
    assert "--frozen" not in proc.stdout + proc.stderr
    assert not (project / "uv.lock").exists()
    text = s.run("switch", "cpu").stdout
    assert "fix what uv reported above" in text and "\x1b" not in text


def test_python_mismatch_before_a_lock_exists_shows_uvs_words(index_server, pyvenv, tmp_path, uv_env, uv_new):
    project = write_project(tmp_path / "project", {"cpu": index_server.simple_url("cpu")}, extras=("cpu",),
                            requires_python=">=3.99", default_index=index_server.simple_url("pypi"))
    s = Setup(project, pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    report = report_of(s.run("switch", "cpu", "--json"))
    assert (report["exit_code"], report["failure_kind"]) == (1, "uv")
    assert ">=3.99" in report["uv_error"] and "--frozen" not in report["failure"]


@pytest.mark.parametrize("command", ["check", "status", "repair"])
def test_no_lock_says_how_to_make_one(make_project, pyvenv, uv_env, uv_new, command):
    s = Setup(make_project(lock=False), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    message = error_line(s.run(command))
    assert message.endswith("run `uvextra switch cpu` (it locks) or `uv lock`"), message
    assert "--frozen" not in message
