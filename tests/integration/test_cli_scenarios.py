"""The core's scenarios end to end: the real CLI (`python -m uvextra … --json`), the real uv, real local indexes.

Each test asserts what a user sees: the exit code and the JSON report (drift kinds, versions, what changed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import localindex
from support.cli import run_json
from support.run import run_uv
from support.venvs import dist_infos, site_packages


def torch_dist(venv: Path) -> list[str]:
    return dist_infos(venv, "torch")


def torch_build(venv: Path) -> str:
    text = (site_packages(venv) / "torch" / "__init__.py").read_text()
    for line in text.splitlines():
        if line.startswith("_build"):
            return line
    return text


def kinds(report: dict) -> dict[str, str]:
    return {d["package"]: d["kind"] for d in report["drift"] if d["kind"] != "extraneous"}


@pytest.fixture
def seed(make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project()
    venv = make_venv(tmp_path / "kernel-venv")
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    return project, venv, env


def switch(extra: str, project: Path, venv: Path, env: dict[str, str], *more: str) -> tuple[int, dict, str]:
    return run_json(
        "switch", extra, "--project", str(project), "--python", str(venv / "bin" / "python"), *more, env=env
    )


def check(project: Path, venv: Path, env: dict[str, str], *more: str) -> tuple[int, dict, str]:
    return run_json("check", "--project", str(project), "--python", str(venv / "bin" / "python"), *more, env=env)


def test_seed_sequence_with_newest_uv_stays_clean(seed):
    project, venv, env = seed
    expected = {
        "pypi": "torch-2.9.0.dist-info",
        "cpu": "torch-2.9.0+cpu.dist-info",
        "cu128": "torch-2.9.0+cu128.dist-info",
    }
    for extra in ["pypi", "cpu", "pypi", "cu128", "pypi"]:
        code, report, _ = switch(extra, project, venv, env, "--no-probe")
        assert code == 0, report
        assert report["extras"] == [extra]
        assert kinds(report) == {}
        assert torch_dist(venv) == [expected[extra]]
        code, report, _ = check(project, venv, env)
        assert (code, kinds(report), report["extras"]) == (0, {}, [extra])
        assert "recorded by the last switch" in report["extras_source"]


def test_seed_sequence_with_uv_094_catches_and_repairs_local_version(seed, uv_old):
    project, venv, env = seed
    env = dict(env, UVEXTRA_UV=uv_old)
    stale_after = {2, 4}  # cpu -> pypi and cu128 -> pypi: uv 0.9.4 keeps the local build
    for step, extra in enumerate(["pypi", "cpu", "pypi", "cu128", "pypi"]):
        code, report, _ = switch(extra, project, venv, env, "--no-probe")
        assert report["uv"]["version"] == "0.9.4"
        assert any("uv#16368" in w for w in report["warnings"])
        if step not in stale_after:
            assert (code, kinds(report)) == (0, {}), report
            continue
        left = "2.9.0+cpu" if step == 2 else "2.9.0+cu128"
        assert torch_dist(venv) == [f"torch-{left}.dist-info"]  # the bug, reproduced
        assert code == 1
        [drift] = [d for d in report["drift"] if d["package"] == "torch"]
        assert (drift["kind"], drift["installed"], drift["wanted"]) == ("local-version", left, "2.9.0")
        # the done-when of the core issue: check names it and exits 1, repair exits 0, the next check is clean
        code, report, _ = check(project, venv, env)
        assert (code, kinds(report)) == (1, {"torch": "local-version"})
        code, report, _ = run_json(
            "repair", "--project", str(project), "--python", str(venv / "bin" / "python"), env=env
        )
        assert code == 0, report
        assert report["repaired"] == ["torch"]
        assert torch_dist(venv) == ["torch-2.9.0.dist-info"]
        code, report, _ = check(project, venv, env)
        assert (code, kinds(report)) == (0, {})


def test_same_version_from_two_indexes_is_build_drift(make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project({"pypi": "pypi", "mirror": "mirror"})
    venv = make_venv(tmp_path / "venv")
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    code, report, _ = switch("pypi", project, venv, env, "--no-probe")
    assert code == 0
    pypi_build = torch_build(venv)
    code, report, _ = switch("mirror", project, venv, env, "--no-probe")
    # uv 0.13 answers "Checked N packages" and keeps the pypi build: uvextra proves it from its own record
    assert torch_build(venv) == pypi_build
    assert code == 1
    [drift] = [d for d in report["drift"] if d["package"] == "torch"]
    assert drift["kind"] == "build"
    assert "/pypi/simple" in drift["detail"] and "/mirror/simple" in drift["detail"]
    code, report, _ = check(project, venv, env)
    assert (code, kinds(report)) == (1, {"torch": "build"})
    code, report, _ = run_json("repair", "--project", str(project), "--python", str(venv / "bin" / "python"), env=env)
    assert (code, report["repaired"]) == (0, ["torch"])
    assert torch_build(venv) != pypi_build and "mirror" in torch_build(venv)
    code, report, _ = check(project, venv, env)
    assert (code, kinds(report), report["unverified"]) == (0, {}, [])


def test_build_drift_without_a_record_uses_evidence_or_says_unverified(
    make_project, make_venv, tmp_path, uv_env, uv_new, index_server
):
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    # torch 2.9.0 installed by hand from pypi: uvextra has never seen this venv
    venv = make_venv(tmp_path / "venv", packages=["torch==2.9.0", "numpy"])
    meta = make_project({"pypi": "pypi", "mirror-meta": "mirror-meta"})
    code, report, _ = check(meta, venv, env, "--extra", "mirror-meta")
    assert (code, kinds(report)) == (1, {"torch": "build"})
    [drift] = [d for d in report["drift"] if d["package"] == "torch"]
    assert "dependencies differ" in drift["detail"] and "nvidia-cublas-cu12" in drift["detail"]
    # the mirror's build has pypi's exact metadata: nothing on disk can tell them apart
    same = make_project({"pypi": "pypi", "mirror": "mirror"})
    code, report, _ = check(same, venv, env, "--extra", "mirror")
    assert (code, kinds(report)) == (0, {})
    assert [u["package"] for u in report["unverified"]] == ["torch"]
    assert "more than one index" in report["unverified"][0]["reason"]
    code, report, _ = run_json(
        "repair", "--project", str(same), "--python", str(venv / "bin" / "python"), "--extra", "mirror", env=env
    )
    assert code == 0 and report["repaired"] == ["torch"]
    assert "mirror" in torch_build(venv)
    code, report, _ = check(same, venv, env, "--extra", "mirror")
    assert (code, kinds(report), report["unverified"]) == (0, {}, [])


def _editable_torch(where: Path) -> Path:
    """A torch source tree with a stdlib-only build backend, installable editable offline."""
    (where / "src" / "torch").mkdir(parents=True)
    (where / "src" / "torch" / "__init__.py").write_text('__version__ = "2.9.0+cpu"\n_build = "editable"\n')
    (where / "_backend").mkdir()
    (where / "_backend" / f"{localindex._BACKEND_MODULE}.py").write_text(
        localindex._BACKEND_SOURCE.replace("%(written)s", repr(json.dumps({})))
    )
    (where / "pyproject.toml").write_text(
        '[project]\nname = "torch"\nversion = "2.9.0+cpu"\n\n[build-system]\nrequires = []\n'
        f'build-backend = "{localindex._BACKEND_MODULE}"\nbackend-path = ["_backend"]\n'
    )
    return where


def test_editable_install_then_index_is_source_drift(seed, uv_new, tmp_path):
    project, venv, env = seed
    assert switch("cpu", project, venv, env, "--no-probe")[0] == 0
    src = _editable_torch(tmp_path / "torch-src")
    run_uv(uv_new, "pip", "install", "--python", venv / "bin" / "python", "-e", src, env=env)
    code, report, _ = check(project, venv, env)
    assert (code, kinds(report)) == (1, {"torch": "source"})
    [drift] = [d for d in report["drift"] if d["package"] == "torch"]
    assert "editable" in drift["detail"] and str(src) in drift["detail"]
    code, report, _ = run_json("repair", "--project", str(project), "--python", str(venv / "bin" / "python"), env=env)
    assert code == 0
    assert not (site_packages(venv) / "_torch_editable.pth").exists()
    assert (site_packages(venv) / "torch" / "__init__.py").exists()
    assert check(project, venv, env)[0] == 0


def test_manual_install_of_another_build_after_a_switch(seed, uv_new, index_server):
    project, venv, env = seed
    assert switch("cu128", project, venv, env, "--no-probe")[0] == 0
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        index_server.simple_url("cpu"),
        "torch==2.9.0+cpu",
        env=env,
    )
    code, report, _ = check(project, venv, env)
    [drift] = [d for d in report["drift"] if d["package"] == "torch"]
    assert (code, drift["kind"], drift["installed"], drift["wanted"]) == (
        1,
        "local-version",
        "2.9.0+cpu",
        "2.9.0+cu128",
    )
    # same version, another build, by hand: the recorded fingerprint no longer matches and the metadata differs
    code, report, _ = switch("pypi", project, venv, env, "--no-probe")  # the newest uv replaces the +cpu build
    assert (code, torch_dist(venv)) == (0, ["torch-2.9.0.dist-info"])
    assert check(project, venv, env)[0] == 0
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--reinstall",
        "--no-deps",
        "--index-url",
        index_server.simple_url("mirror-meta"),
        "torch==2.9.0",
        env=env,
    )
    code, report, _ = check(project, venv, env)
    assert (code, kinds(report)) == (1, {"torch": "build"})
    # and with identical metadata (the mirror's build): not provable, so "unverified", not a guess
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--reinstall",
        "--no-deps",
        "--index-url",
        index_server.simple_url("mirror"),
        "torch==2.9.0",
        env=env,
    )
    code, report, _ = check(project, venv, env)
    assert (code, kinds(report)) == (0, {})
    assert [u["package"] for u in report["unverified"]] == ["torch"]
    assert "files changed since uvextra recorded them" in report["unverified"][0]["reason"]


def test_switch_keeps_the_kernels_packages_and_removes_other_extraneous(
    make_project, make_venv, tmp_path, uv_env, uv_new
):
    project = make_project()
    venv = make_venv(tmp_path / "venv", packages=["ipykernel", "triton"])
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    code, report, _ = switch("cpu", project, venv, env, "--no-probe")
    assert code == 0
    names = {p.split("-")[0] for p in dist_infos(venv)}
    assert {"ipykernel", "tornado", "comm"} <= names  # the kernel survives
    assert "triton" not in names  # extraneous for cpu: removed as an exact sync would
    assert {"ipykernel", "tornado", "comm"} <= set(report["kernel_protected"])
    assert {"ipykernel", "tornado", "comm"} <= set(report["changes"]["kept"])
    assert {r["name"] for r in report["changes"]["removed"]} == {"triton"}
    # --keep-extraneous removes nothing
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        index_server_url(env, project),
        "triton",
        env=env,
    )
    code, report, _ = switch("cpu", project, venv, env, "--no-probe", "--keep-extraneous")
    assert code == 0
    assert "triton" in {p.split("-")[0] for p in dist_infos(venv)}
    assert "triton" in report["changes"]["kept"]
    assert [d["kind"] for d in report["drift"] if d["package"] == "triton"] == ["extraneous"]


def index_server_url(env: dict[str, str], project: Path) -> str:
    text = (project / "pyproject.toml").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if "/pypi/simple" in line)


def test_switch_auto_without_a_driver_picks_cpu_and_probe_says_why(seed):
    project, venv, env = seed
    env = {k: v for k, v in env.items() if k != "UV_CUDA_DRIVER_VERSION"}
    if Path("/proc/driver/nvidia/version").exists() or Path("/sys/module/nvidia/version").exists():
        pytest.skip("this machine has an NVIDIA driver")
    code, report, _ = switch("auto", project, venv, env)
    assert code == 0
    assert report["extras"] == ["cpu"]
    assert "auto" in report["extras_source"] and "no NVIDIA driver" in report["extras_source"]
    probe = report["probe"]
    assert probe["torch_version"] == "2.9.0+cpu" and probe["cuda_available"] is False
    assert probe["cuda_version"] is None
    code, report, _ = switch("cu128", project, venv, env)
    assert code == 0
    assert report["probe"]["cuda_version"] == "12.8"
    assert report["probe"]["verdict"] == "not available: CUDA 12.8 build but no NVIDIA driver on this machine"
    code, report, _ = run_json("probe", "--python", str(venv / "bin" / "python"), env=env)
    assert code == 0 and report["probe"]["torch_version"] == "2.9.0+cu128"


def test_status_infers_extras_when_nothing_was_recorded(seed, uv_new, index_server):
    project, venv, env = seed
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        index_server.simple_url("cu128"),
        "--extra-index-url",
        index_server.simple_url("pypi"),
        "--index-strategy",
        "unsafe-best-match",
        "torch==2.9.0+cu128",
        "numpy",
        env=env,
    )
    code, report, _ = run_json("status", "--project", str(project), "--python", str(venv / "bin" / "python"), env=env)
    assert report["extras"] == ["cu128"]
    assert report["extras_source"].startswith("inferred: cu128 matches what is installed")
    assert code == 0, report
    assert report["probe"]["torch_version"] == "2.9.0+cu128"


def test_switch_warns_when_the_lock_replaces_what_the_kernel_uses(seed, uv_new, tmp_path):
    project, venv, env = seed
    # the kernel's widgets need filelock, installed at another version than the lock's 3.20.0
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    built = [
        localindex.build_wheel(wheels, "ipywidgets", "8.1.0", {"ipywidgets/__init__.py": ""}, requires=["filelock>=3"]),
        localindex.build_wheel(wheels, "filelock", "3.19.0", {"filelock/__init__.py": ""}),
    ]
    run_uv(uv_new, "pip", "install", "--python", venv / "bin" / "python", "--no-deps", *built, env=env)
    code, report, _ = switch("cpu", project, venv, env, "--no-probe")
    assert code == 0, report
    assert dist_infos(venv, "filelock") == ["filelock-3.20.0.dist-info"]
    assert "ipywidgets" in report["kernel_protected"]
    assert [w for w in report["warnings"] if "kernel itself uses" in w] == [
        "the lock replaced filelock, which the kernel itself uses; restart the kernel before relying on it"
    ]
    # the next switch leaves filelock alone: no warning
    code, report, _ = switch("pypi", project, venv, env, "--no-probe")
    assert code == 0 and not [w for w in report["warnings"] if "kernel itself uses" in w]


def test_a_requirement_the_project_overrides_away_is_no_build_drift(make_project, make_venv, tmp_path, uv_env, uv_new):
    """``[tool.uv] override-dependencies`` drops a requirement of the CUDA torch for every package (what a project
    does for a dependency its indexes lack): the installed build's Requires-Dist still names it, the lock does not.
    That difference is the project's own doing, not another build (seen with PyPI's torch and cuda-bindings)."""
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    project = make_project(uv_settings=["override-dependencies = [\"nvidia-cublas-cu12; python_version < '3'\"]"])
    lock = (project / "uv.lock").read_text()
    assert '[[package]]\nname = "nvidia-cublas-cu12"' not in lock and "overrides" in lock
    # a venv uvextra has no record of: only the evidence speaks (the build check the override confused)
    venv = make_venv(tmp_path / "venv")
    run_uv(uv_new, "sync", "--extra", "cu128", env=dict(env, UV_PROJECT_ENVIRONMENT=str(venv)), cwd=project)
    assert "cu128" in torch_build(venv)
    code, report, _ = check(project, venv, env, "--extra", "cu128")
    assert (code, kinds(report)) == (0, {}), report["drift"]
    code, report, _ = switch("cu128", project, venv, env, "--no-probe")
    assert (code, kinds(report)) == (0, {}), report["drift"]


def test_a_requirement_whose_marker_fails_here_is_no_build_drift(make_project, make_venv, tmp_path, uv_env, uv_new):
    """A package whose Requires-Dist names ``importlib-metadata; python_version < "3.10"`` (PyPI's triton does):
    uv.lock leaves it out for a project on Python >= 3.10, and so must the evidence (seen on a real CUDA switch:
    "triton: installed build's dependencies differ … it requires importlib-metadata")."""
    from support.localindex import IndexServer, build_wheel

    wheels = tmp_path / "idx" / "extra"
    build_wheel(
        wheels,
        "marky",
        "1.0",
        {"marky/__init__.py": ""},
        requires=['importlib-metadata; python_version < "3.10"', "zipp"],
    )
    build_wheel(wheels, "zipp", "3.0", {"zipp/__init__.py": ""})
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    with IndexServer(tmp_path / "idx") as server:
        project = make_project(extra_deps=("numpy", "marky"), lock=False)
        with (project / "pyproject.toml").open("a", encoding="utf-8") as f:
            f.write(f'\n[[tool.uv.index]]\nname = "extra-wheels"\nurl = "{server.simple_url("extra")}"\n')
        run_uv(uv_new, "lock", env=env, cwd=project)
        lock = (project / "uv.lock").read_text(encoding="utf-8")
        assert 'name = "marky"' in lock and "importlib-metadata" not in lock
        venv = make_venv(tmp_path / "venv")
        run_uv(uv_new, "sync", "--extra", "cpu", env=dict(env, UV_PROJECT_ENVIRONMENT=str(venv)), cwd=project)
        assert dist_infos(venv, "marky") == ["marky-1.0.dist-info"]  # no record: only the evidence speaks
        code, report, _ = check(project, venv, env, "--extra", "cpu")
    assert (code, kinds(report), report["unverified"]) == (0, {}, []), report["drift"]
