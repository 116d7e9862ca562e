"""Issue 11: uv's whole project model — dependency groups as backends, workspace members, extras outside every
conflict set, PEP 685 spellings, and the oldest uv that can export a pylock.

The real CLI (``python -m uvextra``), the real uv (old releases installed like conftest's ``uv_old``), real local
indexes, kernel venvs holding the stand-in ipykernel. Every test asserts what a user sees: exit code, JSON, one line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import Setup, error_line, report_of, run_cli
from support.localindex import write_project
from support.run import run_uv
from support.venvs import dist_infos
from uvextra.core.project import load_project

BACKENDS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}


def torch(venv: Path) -> list[str]:
    return dist_infos(venv, "torch")


# ------------------------------------------------------------------------------------------------ names


def test_mixed_case_and_separators_are_normalised_as_uv_does(tmp_path):
    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "My_Project"
version = "0.1.0"
[project.optional-dependencies]
CPU = ["torch"]
"Cu_128" = ["torch"]
plot = ["matplotlib"]
[dependency-groups]
"ROCm.6" = ["torch"]
dev = ["pytest"]
[tool.uv]
conflicts = [[{ extra = "cpu" }, { extra = "cu-128" }, { group = "rocm_6" }]]
""")
    project = load_project(tmp_path)
    assert (project.name, project.extras, project.groups) == (
        "my-project",
        ("cpu", "cu-128", "plot"),
        ("rocm-6", "dev"),
    )
    assert project.conflict_sets == (("cpu", "cu-128", "rocm-6"),)
    assert [(b, b.kind) for b in project.backends] == [
        ("cpu", "extra"),
        ("cu-128", "extra"),
        ("plot", "extra"),
        ("rocm-6", "group"),
    ]  # dev: synced by default
    assert project.selection_args(project.validate_extras(["Cu.128", "Plot"])) == [
        "--extra",
        "cu-128",
        "--extra",
        "plot",
    ]
    assert project.selection_args(project.validate_extras(["ROCM-6"])) == ["--group", "rocm-6"]
    with pytest.raises(Exception, match=r"^extras cpu and rocm-6 conflict \(conflict set: cpu, cu-128, rocm-6\)"):
        project.validate_extras(["CPU", "rocm_6"])
    with pytest.raises(
        Exception,
        match=r"^unknown extra or group 'cuda'; this project's extras are: cpu, cu-128, "
        r"plot; its dependency groups: rocm-6, dev$",
    ):
        project.validate_extras(["cuda"])


# ------------------------------------------------------------------------------------------------ groups


@pytest.fixture
def groups_setup(make_project, make_venv, tmp_path, uv_env, uv_new) -> Setup:
    project = make_project(BACKENDS, groups=True, more_groups={"dev": ["nvidia-cublas-cu12"]})
    return Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))


def test_dependency_groups_are_backends(groups_setup):
    s = groups_setup
    proc = s.run("switch", "cpu", "--no-probe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(groups: cpu, cu128, pypi; features: dev (group))" in proc.stdout
    assert "extras       cpu (group) — given" in proc.stdout
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    assert dist_infos(s.venv, "nvidia_cublas_cu12"), "the default group `dev` is synced, as `uv sync` does"
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"], report["groups"]) == (0, ["cpu"], ["cpu"])
    assert report["available_extras"] == ["cpu", "cu128", "pypi"] == report["available_groups"]
    assert not report["drift"], "the group's torch is the lock's, not extraneous"
    (s.venv / ".uvextra" / "state.json").unlink()
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"], report["groups"]) == (0, ["cpu"], ["cpu"])
    assert report["extras_source"].startswith("inferred: cpu matches what is installed")
    report = report_of(s.run("switch", "cu128", "--no-probe", "--json"))
    assert (report["exit_code"], report["groups"]) == (0, ["cu128"])
    assert s.torch() == ["torch-2.9.0+cu128.dist-info"]
    message = error_line(s.run("switch", "cpu", "cu128"))
    assert message == "groups cpu and cu128 conflict (conflict set: cpu, cu128, pypi); pick one of them"
    s.assert_nothing_lost()


def test_default_groups_off_is_respected(make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project(
        BACKENDS, groups=True, more_groups={"dev": ["nvidia-cublas-cu12"]}, uv_settings=["default-groups = []"]
    )
    s = Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert report["exit_code"] == 0, report
    assert not dist_infos(s.venv, "nvidia_cublas_cu12"), "default-groups = [] syncs no `dev`, as `uv sync` does"
    # not a default group here, yet a feature (issue 17): selectable (`switch cpu dev`), not offered as a backend
    assert (report["available_extras"], report["features"]) == (["cpu", "cu128", "pypi"], ["dev"])


def test_a_name_that_is_both_an_extra_and_a_group_asks_which(make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project(BACKENDS, more_groups={"cpu": ["nvidia-cublas-cu12"]})
    s = Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))
    for args in (("switch", "cpu"), ("check", "--extra", "pypi", "--group", "cpu", "--extra", "cpu")):
        proc = s.run(*args)
        assert proc.returncode == 2
    assert error_line(s.run("switch", "CPU")) == (
        "'CPU' is both an extra and a dependency group of moo; say which: --extra cpu or --group cpu"
    )
    assert s.torch() == []
    report = report_of(s.run("switch", "--extra", "cpu", "--no-probe", "--json"))
    assert (report["exit_code"], report["extras"], report["groups"]) == (0, ["cpu"], [])
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"] and not dist_infos(s.venv, "nvidia_cublas_cu12")
    report = report_of(s.run("switch", "--extra", "cpu", "--group", "cpu", "--no-probe", "--json"))
    assert (report["exit_code"], report["extras"], report["groups"]) == (0, ["cpu", "cpu"], ["cpu"])
    assert dist_infos(s.venv, "nvidia_cublas_cu12")
    assert report_of(s.run("check", "--json"))["groups"] == ["cpu"]  # the record keeps which is which
    s.assert_nothing_lost()


# ------------------------------------------------------------------------------------------------ inference


def test_an_extra_outside_every_conflict_set_is_inferred(make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project(BACKENDS, more_extras={"plot": ["nvidia-cublas-cu12"]})
    s = Setup(project, make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "plot", "--no-probe").returncode == 0
    (s.venv / ".uvextra" / "state.json").unlink()
    report = report_of(s.run("check", "--json"))
    assert (report["exit_code"], report["extras"]) == (0, ["cpu", "plot"]), report
    assert "plot (outside every conflict set) is installed" in report["extras_source"]
    assert not report["drift"]
    assert s.run("switch", "pypi", "--no-probe").returncode == 0  # pypi's torch needs the nvidia-* packages too
    (s.venv / ".uvextra" / "state.json").unlink()
    report = report_of(s.run("check", "--json"))
    assert report["extras"] == ["pypi", "plot"]  # what is installed fits plot, too: said as it is


# ------------------------------------------------------------------------------------------------ workspaces


def workspace(
    tmp_path: Path, index_server, uv_new: str, uv_env: dict[str, str], *, members: int = 1, lock: bool = True
) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n\n[[tool.uv.index]]\nname = "default"\n'
        f'url = "{index_server.simple_url("pypi")}"\ndefault = true\n'
    )
    for n in range(members):
        write_project(
            root / "packages" / f"member{n or ''}",
            {e: index_server.simple_url(ix) for e, ix in BACKENDS.items()},
            name=f"member{n or ''}",
            default_index=None,
        )
    if lock:
        run_uv(uv_new, "lock", env=uv_env, cwd=root)
    return root


def test_workspace_member_from_the_member_and_from_the_root(tmp_path, index_server, make_venv, uv_env, uv_new):
    root = workspace(tmp_path, index_server, uv_new, uv_env)
    member = root / "packages" / "member"
    venv = make_venv(root / ".venv", packages=["ipykernel"])  # the workspace's environment, as uv's own
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    proc = run_cli("switch", "cpu", "--no-probe", env=env, cwd=member)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"workspace    {root} (member member; uv.lock is there)" in proc.stdout
    assert torch(venv) == ["torch-2.9.0+cpu.dist-info"] and not (member / ".venv").exists()
    assert not (member / "uv.lock").exists()
    for cwd in (member, root):
        report = report_of(run_cli("check", "--json", env=env, cwd=cwd))
        assert (report["exit_code"], report["extras"], report["project"], report["workspace"]) == (
            0,
            ["cpu"],
            str(member),
            str(root),
        ), report
        assert not report["drift"], "torch is the member's, never extraneous"
    (venv / ".uvextra" / "state.json").unlink()
    report = report_of(run_cli("check", "--json", env=env, cwd=root))
    assert report["extras"] == ["cpu"] and report["extras_source"].startswith("inferred: cpu")
    report = report_of(run_cli("switch", "cu128", "--no-probe", "--json", env=env, cwd=root))
    assert report["exit_code"] == 0 and torch(venv) == ["torch-2.9.0+cu128.dist-info"]
    (root / "uv.lock").unlink()
    message = error_line(run_cli("check", env=env, cwd=member))
    assert message == (
        f"no uv.lock in {root}, so there is nothing to compare with: run `uvextra switch cpu` (it locks) or `uv lock`"
    )


def test_workspace_root_with_several_backend_members_refuses_before_uv(
    tmp_path, index_server, make_venv, uv_env, uv_new
):
    root = workspace(tmp_path, index_server, uv_new, uv_env, members=2, lock=False)  # uv could not lock it anyway
    venv = make_venv(root / ".venv", packages=["ipykernel"])
    message = error_line(run_cli("switch", "cpu", env=dict(uv_env, UVEXTRA_UV=uv_new), cwd=root))
    assert message == (
        f"the workspace at {root} has several members with backends (member: packages/member, "
        "member1: packages/member1); pass --project packages/member (or cd there)"
    )
    assert torch(venv) == [] and not (venv / ".uvextra").exists()


# ------------------------------------------------------------------------------------------------ uv versions


def uv_release(version: str, uv_new: str) -> str:
    """A uv release installed once into the test cache (as conftest's ``uv_old``); skip when it cannot be."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uvextra-tests"
    binary = base / f"uv-{version}" / "bin" / "uv"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"uv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return str(binary)
        staging = base / f"uv-{version}.tmp{os.getpid()}"
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PYTHON", "UV_OFFLINE"}}
        proc = subprocess.run(
            [uv_new, "pip", "install", "--python", sys.executable, "--target", str(staging), f"uv=={version}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if proc.returncode != 0 or not (staging / "bin" / "uv").exists():
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"cannot install uv=={version}: {proc.stderr.strip()[-300:]}")
        os.replace(staging, base / f"uv-{version}")
    return str(binary)


def test_oldest_uv_that_exports_a_pylock_works_and_the_one_before_is_refused(setup_factory):
    s, uv_new = setup_factory
    old = uv_release("0.6.14", uv_new)
    message = error_line(s.run("switch", "cpu", env=dict(s.env, UVEXTRA_UV=old)))
    assert message == (
        f"uv 0.6.14 at {old} is too old to read this project's lock: it has no "
        "`uv export --format pylock.toml` (added in uv 0.6.15); install a newer one: "
        "`pip install 'uv>=0.9.24'`, or unset UVEXTRA_UV"
    )
    assert s.torch() == []
    env = dict(s.env, UVEXTRA_UV=uv_release("0.6.15", uv_new))
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json", env=env))
    assert (report["exit_code"], report["uv"]["version"]) == (0, "0.6.15"), report
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    assert "astral-sh/uv#16368" in " ".join(report["warnings"])
    report = report_of(s.run("switch", "pypi", "--no-probe", "--json", env=env))
    assert [d["kind"] for d in report["drift"] if d["package"] == "torch"] == ["local-version"]  # uv keeps +cpu
    assert report_of(s.run("repair", "--json", env=env))["exit_code"] == 0
    assert s.torch() == ["torch-2.9.0.dist-info"]


@pytest.fixture
def setup_factory(make_project, make_venv, tmp_path, uv_env, uv_new):
    return Setup(
        make_project(), make_venv(tmp_path / "kernel-venv", packages=["ipykernel"]), dict(uv_env, UVEXTRA_UV=uv_new)
    ), uv_new
