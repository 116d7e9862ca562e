"""A repeated ``uvextra check`` answered from the last clean one (:mod:`uvextra.cli_quick`): the same words, without
the engine — and never when anything the check reads has changed. Every fault is made real on a real demo project
(real wheels, the real uv): a file of an install removed, an install cut short as ``kill -9`` leaves it, a file
grown in place, the project edited, another extra switched to. Each is caught on the very next check.

Whether a call was answered from the entry is read from ``python -X importtime``: the whole check imports
``uvextra.core.verbs``, an answered one does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.venvs import site_packages
from uvextra._demo_wheels import build_indexes
from uvextra.core.uv import find_uv
from uvextra.demo import _cut_short, create_demo


@pytest.fixture
def demo(tmp_path: Path, uv_env: dict[str, str], uv_new: str) -> tuple[Path, dict[str, str]]:
    """A demo project switched to cpu (the stand-in torch), and the environment its CLI runs with."""
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    build_indexes(tmp_path / "indexes")
    project, _ = create_demo(tmp_path, uv=find_uv())
    switched = run(project, env, "switch", "cpu", "--no-probe")
    assert switched.returncode == 0, switched.stderr
    return project, env


def run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "uvextra", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def answered(proc: subprocess.CompletedProcess[str]) -> bool:
    """Whether the call was answered from the last clean check (the engine was not imported)."""
    assert "| uvextra" in proc.stderr, "importtime is on"
    return "uvextra.core.verbs" not in proc.stderr


def without_elapsed(proc: subprocess.CompletedProcess[str]) -> dict:
    data = json.loads(proc.stdout)
    assert data.pop("elapsed_s") >= 0
    return data


def torch_record(project: Path) -> tuple[Path, list[str]]:
    """site-packages and the files torch's RECORD lists there (bytecode aside)."""
    site = site_packages(project / ".venv")
    (dist,) = site.glob("torch-*.dist-info")
    rows = [r.split(",")[0] for r in (dist / "RECORD").read_text().splitlines()]
    return site, [r for r in rows if r.startswith("torch/") and not r.endswith(".pyc")]


def settled(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Check until the answer comes from the entry (the first writes it; an input younger than the clock's tick
    when it was written makes the writer wait for the next one) and return that answer."""
    for _ in range(5):
        proc = run(project, env, "check", *args)
        if answered(proc):
            return proc
    pytest.fail(f"a repeated clean check was never answered from the last one: {proc.stderr[-2000:]}")


def test_a_repeated_clean_check_says_the_same_without_the_engine(demo):
    project, env = demo
    whole = run(project, env, "check", "--json")
    assert whole.returncode == 0 and not answered(whole), whole.stderr[-2000:]
    again = settled(project, env, "--json")
    assert again.returncode == 0
    assert without_elapsed(again) == without_elapsed(whole)
    assert "uvextra:" not in again.stderr  # nothing said beside the report, as the whole check said nothing

    text = run(project, env, "check")
    assert text.returncode == 0 and "drift        none" in text.stdout
    assert settled(project, env).stdout == text.stdout


def test_a_deleted_file_is_caught_on_the_very_next_check(demo):
    project, env = demo
    settled(project, env, "--json")
    site, listed = torch_record(project)
    (site / listed[0]).unlink()
    caught = run(project, env, "check", "--json")
    assert caught.returncode == 1 and not answered(caught)
    (torch,) = [d for d in json.loads(caught.stdout)["drift"] if d["package"] == "torch"]
    assert torch["kind"] == "files" and torch["detail"].startswith("1 of "), torch
    assert f"files missing — files were removed or overwritten after the install (e.g. {listed[0]})" in torch["detail"]
    again = run(project, env, "check", "--json")  # drift is never answered from an entry: each check is whole
    assert again.returncode == 1 and not answered(again)


def test_a_killed_install_is_caught_on_the_very_next_check(demo):
    project, env = demo
    settled(project, env)
    _cut_short(project / ".venv" / "bin" / "python")  # half of torch's files gone, no INSTALLER: kill -9's leftovers
    caught = run(project, env, "check")
    assert caught.returncode == 1 and not answered(caught)
    assert "an install that did not finish" in caught.stdout, caught.stdout


def test_a_file_grown_in_place_is_caught_on_the_very_next_check(demo):
    project, env = demo
    settled(project, env, "--json")
    site, listed = torch_record(project)
    with open(site / "torch" / "version.py", "a") as f:  # the same inode, another size
        f.write("# appended\n")
    caught = run(project, env, "check", "--json")
    assert caught.returncode == 1 and not answered(caught)
    (torch,) = [d for d in json.loads(caught.stdout)["drift"] if d["package"] == "torch"]
    assert "1 of another size than RECORD says" in torch["detail"], torch


def test_what_a_check_reads_changing_is_always_a_whole_check(demo):
    project, env = demo
    settled(project, env, "--json")
    # another command line: checked against pypi's torch, which is not what is installed
    other = run(project, env, "check", "--json", "--extra", "pypi")
    assert other.returncode == 1 and not answered(other)
    # another environment
    assert not answered(run(project, dict(env, UVEXTRA_SOMETHING="1"), "check", "--json"))
    # --verify reads every byte, always
    verified = run(project, env, "check", "--json", "--verify")
    assert verified.returncode == 0 and not answered(verified) and json.loads(verified.stdout)["verified"]["files"]
    for _ in range(2):  # argparse's abbreviation of it, too: a repeated one still reads every byte
        abbreviated = run(project, env, "check", "--json", "--verif")
        assert not answered(abbreviated) and json.loads(abbreviated.stdout)["verified"]["files"]
    # another extra switched to: the next check says so
    settled(project, env, "--json")
    assert run(project, env, "switch", "cu128", "--no-probe").returncode == 0
    switched = run(project, env, "check", "--json")
    assert not answered(switched) and json.loads(switched.stdout)["extras"] == ["cu128"]
    # the project edited: a dependency the lock does not have is a stale lock, at once
    settled(project, env, "--json")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dependencies = ["numpy"]', 'dependencies = ["numpy", "six"]'))
    stale = run(project, env, "check", "--json")
    assert stale.returncode == 1 and not answered(stale)
    assert json.loads(stale.stdout)["failure_kind"] == "stale-lock"


def test_the_entry_lives_in_the_venv_and_is_bounded(demo):
    project, env = demo
    for n in range(20):
        run(project, dict(env, UVEXTRA_SOMETHING=str(n)), "check", "--json")
    entries = sorted(p.name for p in (project / ".venv" / ".uvextra").glob("quick-*"))
    assert 1 <= len(entries) <= 16, entries
