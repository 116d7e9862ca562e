"""Every Python uvextra supports (3.10 – 3.13) as the target venv's: the demo's whole story (switch, the build drift
uv misses, repair, the CUDA probe) on each, a groups project switched on each, uvextra itself run by each Python
from inside the venv it switches (on 3.10 through tomli), and a kept demo that still switches after the demo ended.

Kernels themselves run on 3.11 only: ipykernel's compiled dependencies (pyzmq, debugpy) are on this machine's local
indexes for cp311 alone, and tests never fetch from a registry.

The Pythons are the machine's own (``python3.X`` on PATH, else pyenv's ``versions/3.X.*``); none is ever downloaded
(``UV_PYTHON_DOWNLOADS=never``): a missing one is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import run_cli
from support.run import run_uv
from support.venvs import dist_infos, find_python

PYTHONS = ("3.10", "3.11", "3.12", "3.13")


@pytest.fixture(params=PYTHONS)
def python(request) -> str:
    found = find_python(request.param)
    if found is None:
        pytest.skip(f"no Python {request.param} on this machine (python{request.param} on PATH or under pyenv)")
    return found


def demo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli("demo", *args, env=env, timeout=300)


def test_the_demo_story_on_each_python(python, uv_env, tmp_path):
    proc = demo("--dir", str(tmp_path / "demo"), "--python", python, env=uv_env)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    version = ".".join(python.rsplit("python", 1)[1].split(".")[:2])
    assert re.search(rf"^environment +{re.escape(str(tmp_path))}/demo/moo/\.venv", out, re.M)
    assert "torch  build  2.9.0 → 2.9.0" in out and re.search(r"^repaired +torch$", out, re.M)
    assert re.search(r"^CUDA +not available: CUDA 12.8 build but no NVIDIA driver on this machine$", out, re.M)
    assert out.rstrip().endswith("demo: drift caught and repaired — the environment matches the lock")
    venv_python = tmp_path / "demo" / "moo" / ".venv" / "bin" / "python"
    said = subprocess.run(
        [venv_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert said == version


def test_a_kept_demo_still_switches_after_the_demo_ended(uv_env, tmp_path):
    where = tmp_path / "kept"
    proc = demo("--dir", str(where), "--keep", env=uv_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"demo folder kept: {where} (try `uvextra switch cpu --project {where / 'moo'}`)" in proc.stdout
    proc = run_cli("switch", "cpu", "--project", where / "moo", "--no-probe", "--json", env=uv_env, timeout=120)
    report = json.loads(proc.stdout)
    assert (proc.returncode, report["extras"], report["failure"]) == (0, ["cpu"], None), proc.stderr
    assert dist_infos(where / "moo" / ".venv", "torch") == ["torch-2.9.0+cpu.dist-info"]
    assert "127.0.0.1" not in (where / "moo" / "uv.lock").read_text()  # nothing that closed with the demo


def test_a_groups_project_switches_on_each_python(python, make_project, make_venv, tmp_path, uv_env, uv_new):
    project = make_project({"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}, groups=True)
    venv = make_venv(tmp_path / "kernel-venv", python=python, packages=["ipykernel"])
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    for group, version in (("cpu", "2.9.0+cpu"), ("pypi", "2.9.0")):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "uvextra",
                "switch",
                group,
                "--project",
                str(project),
                "--python",
                str(venv / "bin" / "python"),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        report = json.loads(proc.stdout)
        assert (proc.returncode, report["groups"], report["drift"]) == (0, [group], []), proc.stderr
        assert dist_infos(venv, "torch") == [f"torch-{version}.dist-info"]
        assert report["probe"]["torch_version"] == version  # the probe ran on that Python


def _pure_wheel(dest: Path, name: str, version: str, package_dir: Path) -> Path:
    """A wheel of the pure-Python package in ``package_dir`` (its ``.py`` files, under the folder's own name)."""
    from support.localindex import build_wheel

    files = {
        f"{package_dir.name}/{p.relative_to(package_dir).as_posix()}": p.read_text(encoding="utf-8")
        for p in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in p.parts
    }
    return build_wheel(dest, name, version, files)


def _uvextra_runtime_wheels(python: str, dest: Path) -> list[Path]:
    """What uvextra's CLI imports besides the standard library, as wheels for ``python``: packaging (this test
    venv's own, pure Python), and on 3.10 tomli — the copy pip vendors in that Python (the machine's indexes
    carry only a compiled cp311 tomli). None is fetched from a registry."""
    import packaging

    wheels = [_pure_wheel(dest, "packaging", packaging.__version__, Path(packaging.__file__).parent)]
    proc = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True, timeout=30
    )
    if proc.stdout.strip() == "False":
        found = subprocess.run(
            [python, "-c", "import pip._vendor.tomli as t, os; print(os.path.dirname(t.__file__))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if found.returncode != 0:
            pytest.skip(f"{python} has no tomli to build a wheel from (pip does not vendor it there)")
        wheels.append(_pure_wheel(dest, "tomli", "2.0.1", Path(found.stdout.strip())))
    return wheels


def test_uvextra_itself_runs_in_a_kernel_venv_of_each_python(
    python, make_project, tmp_path, uv_env, uv_new, uvextra_wheel
):
    """uvextra installed in the kernel's venv, run by that venv's Python (as the magic runs in the kernel): a venv
    made with ``python -m venv`` (pip, and setuptools where that Python still adds it), uvextra and what its core
    imports, then `python -m uvextra switch` between two backends and `check`. On 3.10 this is the tomli path."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    vpy = venv / "bin" / "python"
    wheels = _uvextra_runtime_wheels(python, tmp_path / "wheels")
    run_uv(
        uv_new,
        "pip",
        "install",
        "--offline",
        "--no-deps",
        "--python",
        str(vpy),
        str(uvextra_wheel),
        *map(str, wheels),
        env=uv_env,
    )
    project = make_project()
    env = dict(uv_env, UVEXTRA_UV=uv_new, FORCE_COLOR="1", CLICOLOR_FORCE="1")

    def uvextra(*args: str) -> tuple[int, dict]:
        proc = run_cli(*args, "--project", project, "--python", vpy, "--json", python=vpy, env=env, timeout=300)
        assert "Traceback" not in proc.stderr, proc.stderr
        report = json.loads(proc.stdout)
        assert "error" not in report, report["error"]
        return proc.returncode, report

    for extra, version in (("cpu", "2.9.0+cpu"), ("cu128", "2.9.0+cu128")):
        code, report = uvextra("switch", extra, "--no-probe")
        assert (code, report["extras"], report["drift"]) == (0, [extra], []), report
        assert report["python"] == str(vpy) and dist_infos(venv, "torch") == [f"torch-{version}.dist-info"]
    code, report = uvextra("check")
    assert (code, report["extras"], report["clean"]) == (0, ["cu128"], True), report
    # nothing of the venv's own was removed: uvextra and what it imports, pip (and setuptools where it came)
    for name in ("uvextra", "packaging", "pip"):
        assert dist_infos(venv, name), name
    proc = subprocess.run([str(vpy), "-m", "pip", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
