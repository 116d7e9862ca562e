"""Issue 9: every answer describes the end state, and every failure is named as what it is.

The real CLI (``python -m uvextra``), the real uv, real local indexes on 127.0.0.1, kernel venvs made the way users
make them (``python -m venv``: pip and setuptools present), ``FORCE_COLOR=1 CLICOLOR_FORCE=1`` as ipykernel sets them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from support.cli import Setup, error_line, project_on, report_of
from support.localindex import IndexServer, build_wheel, write_project
from support.run import run_uv
from support.venvs import dist_infos


@pytest.fixture
def own_server(index_root):
    server = IndexServer(index_root).start()
    yield server
    server.stop()


def pip_works(venv: Path) -> bool:
    return (
        subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True, timeout=60).returncode
        == 0
    )


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
    assert (
        report["extras"] == ["cu128"]
        and "asked for by the last switch, which did not finish" in report["extras_source"]
    )
    report = report_of(s.run("repair", "--json"))
    assert (report["extras"], report["exit_code"], report["failure_kind"]) == (["cu128"], 1, "network")
    assert dist_infos(pyvenv, "torch") == []  # no backend nobody chose
    assert pip_works(pyvenv)


def test_failed_switch_that_changed_nothing_keeps_checking_the_last_good_one(
    own_server, pyvenv, tmp_path, uv_new, uv_env
):
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
    assert (
        "matches" not in report["extras_source"] and "none of cpu, cu128, pypi is installed" in report["extras_source"]
    )
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


@pytest.mark.parametrize(
    "requirement, uv_says",
    [
        ("torch==99.0.0", "No solution found"),  # unresolvable
    ],
)
def test_sync_failing_before_a_lock_exists_shows_uvs_words(
    index_server, pyvenv, tmp_path, uv_env, uv_new, requirement, uv_says
):
    project = write_project(
        tmp_path / "project",
        {"cpu": index_server.simple_url("cpu"), "pypi": index_server.simple_url("pypi")},
        extras=("cpu", "pypi"),
        torch_requirement=requirement,
    )
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
    project = write_project(
        tmp_path / "project",
        {"cpu": index_server.simple_url("cpu")},
        extras=("cpu",),
        requires_python=">=3.99",
        default_index=index_server.simple_url("pypi"),
    )
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


# ------------------------------------------------------------------------------------- a follow-up step fails

#: uv itself, except that the first ``uv export`` after a ``uv sync`` that succeeded fails, once (a transient
#: failure of the step uvextra runs after uv's sync: reading what the new lock wants).
_EXPORT_FAILS_AFTER_SYNC = """#!/bin/sh
armed={armed}
sub=""
skip=0
for arg in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$arg" in
    --color) skip=1 ;;
    -*) ;;
    *) sub="$arg"; break ;;
  esac
done
if [ "$sub" = export ] && [ -e "$armed" ]; then
  rm -f "$armed"
  echo "error: injected by the test: export failed after sync" >&2
  exit 2
fi
{uv} "$@"
rc=$?
if [ "$sub" = sync ] && [ "$rc" = 0 ]; then : > "$armed"; fi
exit "$rc"
"""


def test_sync_ran_then_a_follow_up_step_failed(make_project, pyvenv, tmp_path, uv_env, uv_new):
    """uv's sync to cu128 succeeded (relocking an edited pyproject.toml), then uvextra's own export of the new lock
    failed: exit 1, failure_kind "follow-up", the venv re-checked; check and repair aim at cu128, never cpu."""
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    pyproject = s.project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert 'dependencies = ["numpy"]' in text
    pyproject.write_text(
        text.replace('dependencies = ["numpy"]', 'dependencies = ["numpy", "filelock"]'), encoding="utf-8"
    )  # as a user edits it: the next sync relocks, the lock's text changes
    wrapper = tmp_path / "uv-export-fails-after-sync"
    armed = tmp_path / "sync-succeeded"
    wrapper.write_text(
        _EXPORT_FAILS_AFTER_SYNC.format(armed=shlex.quote(str(armed)), uv=shlex.quote(uv_new)), encoding="utf-8"
    )
    wrapper.chmod(0o755)
    lock_before = (s.project / "uv.lock").read_bytes()
    proc = s.run("switch", "cu128", "--no-probe", "--json", env=dict(s.env, UVEXTRA_UV=str(wrapper)))
    report = report_of(proc)
    assert (proc.returncode, report["exit_code"], report["failure_kind"]) == (1, 1, "follow-up"), proc.stderr
    assert report["failure"].startswith("uv's sync ran, but what came after it failed"), report["failure"]
    assert "injected by the test: export failed after sync" in report["failure"]
    assert not armed.exists(), "the wrapper's export failure was never reached"
    assert (s.project / "uv.lock").read_bytes() != lock_before, "uv's sync relocked"
    assert s.torch() == ["torch-2.9.0+cu128.dist-info"]  # uv's sync did its part
    # re-checked after the failure, against cu128: torch's change is named and nothing drifts from cu128's lock
    assert report["extras"] == ["cu128"]
    assert {"name": "torch", "old": "2.9.0+cpu", "new": "2.9.0+cu128"} in report["changes"]["installed"]
    assert report["kernel_protected"] == ["comm", "ipykernel", "tornado"], "the environment was not re-checked"
    assert not [d for d in report["drift"] if d["kind"] != "extraneous"], report["drift"]
    # the records: cu128 was asked for and the venv changed on the way; cpu is only "the last successful switch"
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text(encoding="utf-8"))
    assert (state["requested"], state["requested_changed"], state["extras"]) == (["cu128"], True, ["cpu"]), state
    assert "what came after it failed" in state["requested_failure"]
    check = report_of(s.run("check", "--json"))
    assert (check["extras"], check["exit_code"]) == (["cu128"], 0), check
    assert check["extras_source"].startswith("asked for by the last switch, which did not finish (uv's sync ran"), (
        check["extras_source"]
    )
    assert "the last successful switch was to cpu" in check["extras_source"]
    # repair aims at cu128 (aimed at cpu, it would put +cpu back): at most the unverified cu128 torch is reinstalled
    # as the same build — and since files are checked (issue 16), a reinstall of the same wheel is said, not hidden
    repaired = report_of(s.run("repair", "--json"))
    assert (repaired["extras"], repaired["exit_code"]) == (["cu128"], 0), repaired
    assert all(
        c == {"name": "torch", "old": "2.9.0+cu128", "new": "2.9.0+cu128"} for c in repaired["changes"]["installed"]
    ), repaired["changes"]
    assert s.torch() == ["torch-2.9.0+cu128.dist-info"] and pip_works(pyvenv)
    # …and, the venv being what cu128 wants, the unfinished switch is finished: check no longer says otherwise
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text(encoding="utf-8"))
    assert (state["extras"], state["requested"]) == (["cu128"], []), state
    check = report_of(s.run("check", "--json"))
    assert (check["extras"], check["exit_code"]) == (["cu128"], 0), check
    assert check["extras_source"].startswith("recorded by the last switch"), check["extras_source"]


# ------------------------------------------------------------------------------- what uvextra's records own


def test_a_package_the_lock_dropped_is_removed_because_uvextra_installed_it(
    make_project, pyvenv, tmp_path, uv_env, uv_new
):
    """numpy came with a switch (the lock had it); the user drops it from pyproject.toml and relocks: no lock names
    it any more, but uvextra's records say its switch installed it, so the next switch removes it. A package
    installed by hand with pip (in no lock, never recorded) stays, and so do pip and setuptools."""
    wheels = tmp_path / "hand-wheels"
    build_wheel(wheels, "hand-tool", "1.0", {"hand_tool/__init__.py": '"""Installed by hand."""\n'})
    subprocess.run(
        [
            pyvenv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            wheels,
            "hand-tool",
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    first = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert first["exit_code"] == 0 and "numpy" in {c["name"] for c in first["changes"]["installed"]}
    assert "hand-tool" in first["changes"]["kept_foreign"]
    assert dist_infos(pyvenv, "numpy") == ["numpy-2.3.4.dist-info"]
    pyproject = s.project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert 'dependencies = ["numpy"]' in text
    pyproject.write_text(text.replace('dependencies = ["numpy"]', "dependencies = []"), encoding="utf-8")
    run_uv(uv_new, "lock", env=s.env, cwd=s.project)
    assert 'name = "numpy"' not in (s.project / "uv.lock").read_text(encoding="utf-8"), "the lock still has numpy"
    proc = s.run("switch", "cpu", "--no-probe", "--json")
    report = report_of(proc)
    assert report["exit_code"] == 0, proc.stderr
    assert report["changes"]["removed"] == [{"name": "numpy", "version": "2.3.4"}], report["changes"]
    assert dist_infos(pyvenv, "numpy") == []
    assert {"hand-tool", "pip", "setuptools"} <= set(report["changes"]["kept_foreign"]), report["changes"]
    assert dist_infos(pyvenv, "hand_tool") == ["hand_tool-1.0.dist-info"] and dist_infos(pyvenv, "setuptools")
    assert pip_works(pyvenv) and s.torch() == ["torch-2.9.0+cpu.dist-info"]
    state = json.loads((s.venv / ".uvextra" / "state.json").read_text(encoding="utf-8"))
    assert "numpy" not in state["owned"] and "hand-tool" not in state["owned"], state["owned"]
    check = report_of(s.run("check", "--json"))
    assert check["exit_code"] == 0 and not check["drift"], check["drift"]


# ------------------------------------------------------------------------------ inference needs evidence


@pytest.mark.parametrize(
    "stray", ["triton==3.5.0", "nvidia-cublas-cu12", "nvidia-cublas-cu12 nvidia-cuda-runtime-cu12"]
)
def test_a_stray_package_of_an_extra_is_no_match(make_project, make_venv, tmp_path, uv_env, uv_new, stray):
    """Only cu128's triton or nvidia-* (installed by something else), no torch at all: nothing says the venv is on
    cu128, so inference says none — and repair installs nothing."""
    venv = make_venv(tmp_path / "venv", packages=["ipykernel", *stray.split()])
    s = Setup(make_project({"cpu": "cpu", "cu128": "cu128"}), venv, dict(uv_env, UVEXTRA_UV=uv_new))
    proc = s.run("check", "--json")
    report = report_of(proc)
    assert (proc.returncode, report["extras"], report["extras_unknown"]) == (1, [], "none"), report["extras_source"]
    assert "matches" not in report["extras_source"] and "none of cpu, cu128 is installed" in report["extras_source"]
    assert "without torch" in report["extras_source"], report["extras_source"]
    assert error_line(s.run("repair")).startswith("cannot tell which extras to repair")
    assert s.torch() == []


@pytest.mark.parametrize(
    "packages, evidence",
    [
        ("torch==2.9.0+cu128", "torch alone: what the extra asks for"),
        ("nvidia-cublas-cu12 nvidia-cuda-runtime-cu12 triton==3.5.0", "3 of its 4 own packages"),
    ],
)
def test_torch_or_most_of_an_extras_packages_is_a_match(
    make_project, make_venv, tmp_path, uv_env, uv_new, index_server, packages, evidence
):
    venv = make_venv(tmp_path / "venv", packages=["ipykernel"])
    run_uv(
        uv_new,
        "pip",
        "install",
        "--no-deps",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        index_server.simple_url("cu128"),
        "--extra-index-url",
        index_server.simple_url("pypi"),
        "--index-strategy",
        "unsafe-best-match",
        *packages.split(),
        env=uv_env,
    )
    s = Setup(make_project({"cpu": "cpu", "cu128": "cu128"}), venv, dict(uv_env, UVEXTRA_UV=uv_new))
    report = report_of(s.run("check", "--json"))
    assert (report["extras"], report["extras_unknown"]) == (["cu128"], None), (evidence, report["extras_source"])
    assert report["extras_source"].startswith("inferred: cu128 matches what is installed"), report["extras_source"]
