"""Real uv against the real local indexes of the test harness ``support.localindex`` (no mocks)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from support.localindex import (
    DEMO_INDEXES,
    IndexServer,
    build_demo_indexes,
    build_wheel,
    torch_files,
    write_project,
)
from support.run import run_uv
from support.venvs import dist_infos, site_packages


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _torch_build(venv: Path) -> str:
    text = (site_packages(venv) / "torch" / "__init__.py").read_text()
    match = re.search(r"^_build = '([^']*)'", text, re.M)
    assert match, text
    return match.group(1)


# --------------------------------------------------------------------------- wheels


def test_build_wheel_is_valid_and_deterministic(tmp_path: Path) -> None:
    files = {"odd_pkg/__init__.py": "X = 1\n", "odd_pkg/data.txt": "hello\n"}
    first = build_wheel(
        tmp_path / "a", "Odd.Pkg_Name", "1.0+Local.Build", files, requires=["filelock>=3"], tag="py2.py3-none-any"
    )
    second = build_wheel(
        tmp_path / "b", "Odd.Pkg_Name", "1.0+Local.Build", files, requires=["filelock>=3"], tag="py2.py3-none-any"
    )
    assert first.name == "odd_pkg_name-1.0+local.build-py2.py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as zf:
        info = "odd_pkg_name-1.0+local.build.dist-info"
        wheel_meta = zf.read(f"{info}/WHEEL").decode()
        assert "Tag: py2-none-any" in wheel_meta and "Tag: py3-none-any" in wheel_meta
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "Version: 1.0+local.build" in metadata
        assert "Requires-Dist: filelock>=3" in metadata
        rows = [line.split(",") for line in zf.read(f"{info}/RECORD").decode().splitlines()]
        recorded = {path for path, *_ in rows}
        assert recorded == set(zf.namelist())
        for path, digest, size in rows:
            if path.endswith("/RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)


def test_demo_indexes_are_deterministic(tmp_path: Path, index_root: Path) -> None:
    again = build_demo_indexes(tmp_path)
    assert set(again) == set(DEMO_INDEXES)
    for index, folder in again.items():
        for wheel in folder.glob("*.whl"):
            assert wheel.read_bytes() == (index_root / index / wheel.name).read_bytes()
            assert wheel.stat().st_size < 8192
    # Same version string, different builds: only the content (hash) tells them apart.
    pypi = (index_root / "pypi" / "torch-2.9.0-py3-none-any.whl").read_bytes()
    mirror = (index_root / "mirror" / "torch-2.9.0-py3-none-any.whl").read_bytes()
    assert pypi != mirror


# --------------------------------------------------------------------------- server


def test_simple_index_lists_and_serves_torch_builds(index_server: IndexServer, index_root: Path) -> None:
    status, root_page = _get(index_server.simple_url("cpu"))
    assert status == 200 and b'href="torch/"' in root_page

    for index, expected in [
        ("pypi", {"torch-2.8.0-py3-none-any.whl", "torch-2.9.0-py3-none-any.whl"}),
        ("cpu", {"torch-2.8.0+cpu-py3-none-any.whl", "torch-2.9.0+cpu-py3-none-any.whl"}),
        ("cu128", {"torch-2.9.0+cu128-py3-none-any.whl"}),
    ]:
        status, page = _get(index_server.simple_url(index) + "torch/")
        assert status == 200
        links = dict(re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', page.decode()))
        names = {urllib.request.unquote(h.rsplit("/", 1)[-1]): (h, d) for h, d in links.items()}
        assert set(names) == expected
        for name, (href, digest) in names.items():
            url = urllib.request.urljoin(index_server.simple_url(index) + "torch/", href)
            status, data = _get(url)
            assert status == 200 and hashlib.sha256(data).hexdigest() == digest
            assert data == (index_root / index / name).read_bytes()
            status, metadata = _get(url + ".metadata")  # PEP 658
            assert status == 200 and b"Name: torch" in metadata

    # Non-normalized names are redirected to the PEP 503 normalized page.
    status, page = _get(index_server.simple_url("pypi") + "Nvidia_CUBLAS.cu12")
    assert status == 200 and b"nvidia_cublas_cu12-12.8.4.1-py3-none-any.whl" in page
    assert _get(index_server.simple_url("pypi") + "no-such-project/")[0] == 404
    assert _get(index_server.url + "/no-such-index/simple/")[0] == 404


def test_basic_auth_and_restart_on_same_port(
    index_root: Path, make_venv, uv_new: str, uv_env: dict[str, str], tmp_path: Path
) -> None:
    with IndexServer(index_root, auth=("user", "s3cret")) as server:
        bare = server.simple_url("cpu", credentials=False)
        assert "s3cret" not in bare and "user:s3cret@" in server.simple_url("cpu")
        assert _get(bare)[0] == 401
        token = base64.b64encode(b"user:s3cret").decode()
        assert _get(bare, {"Authorization": f"Basic {token}"})[0] == 200

        venv = make_venv(tmp_path / "venv")
        ok = run_uv(
            uv_new,
            "pip",
            "install",
            "--python",
            venv / "bin" / "python",
            "--index-url",
            server.simple_url("cpu"),
            "torch==2.9.0+cpu",
            env=uv_env,
        )
        assert ok.returncode == 0
        assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
        denied = run_uv(
            uv_new,
            "pip",
            "install",
            "--python",
            venv / "bin" / "python",
            "--reinstall",
            "--index-url",
            bare,
            "torch==2.8.0+cpu",
            env=uv_env,
            check=False,
        )
        assert denied.returncode != 0 and "401" in denied.stderr
        assert "s3cret" not in denied.stdout + denied.stderr + ok.stdout + ok.stderr

        port = server.port
        server.stop()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        server.start()
        assert server.port == port
        assert _get(bare, {"Authorization": f"Basic {token}"})[0] == 200


# --------------------------------------------------------------------------- uv pip install


@pytest.mark.parametrize(
    ("how", "index", "spec", "dist_info", "build"),
    [
        ("simple", "cpu", "torch==2.9.0+cpu", "torch-2.9.0+cpu.dist-info", "cpu"),
        ("flat-url", "cu128", "torch", "torch-2.9.0+cu128.dist-info", "cu128"),
        ("flat-path", "mirror", "torch==2.9.0", "torch-2.9.0.dist-info", "mirror-cpu"),
    ],
)
def test_uv_pip_install_from_each_index_kind(
    how: str,
    index: str,
    spec: str,
    dist_info: str,
    build: str,
    index_server: IndexServer,
    make_venv,
    uv_new: str,
    uv_env: dict[str, str],
    tmp_path: Path,
) -> None:
    venv = make_venv(tmp_path / "venv")
    if how == "simple":
        source = ["--index-url", index_server.simple_url(index)]
    elif how == "flat-url":
        source = ["--no-index", "--find-links", index_server.flat_url(index)]
    else:
        source = ["--no-index", "--find-links", os.fspath(index_server.flat_path(index))]
    run_uv(uv_new, "pip", "install", "--python", venv / "bin" / "python", *source, spec, env=uv_env)
    assert dist_infos(venv, "torch") == [dist_info]
    assert _torch_build(venv) == build
    assert dist_infos(venv, "filelock") == ["filelock-3.20.0.dist-info"]


_PROBE = """
import json, torch
out = {"version": torch.__version__, "cuda": torch.version.cuda, "hip": torch.version.hip,
       "available": torch.cuda.is_available(), "count": torch.cuda.device_count(),
       "build": torch._build}
try:
    out["name"] = torch.cuda.get_device_name(0)
    out["capability"] = list(torch.cuda.get_device_capability(0))
except (AssertionError, RuntimeError) as exc:
    out["error"] = type(exc).__name__
print(json.dumps(out))
"""


def _probe(venv: Path, env: dict[str, str], timeout: float = 30) -> dict[str, object]:
    proc = subprocess.run(
        [os.fspath(venv / "bin" / "python"), "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_standin_torch_answers_like_the_real_one(make_venv, tmp_path: Path, uv_env: dict[str, str]) -> None:
    has_driver = os.path.exists("/proc/driver/nvidia/version")
    cu128 = make_venv(tmp_path / "cu128", packages=["torch==2.9.0+cu128"], indexes=("cu128",))
    env = {k: v for k, v in uv_env.items() if k != "UVEXTRA_FAKE_GPU"}

    hidden = _probe(cu128, dict(env, UVEXTRA_FAKE_GPU="0"))
    assert hidden == {
        "version": "2.9.0+cu128",
        "cuda": "12.8",
        "hip": None,
        "available": False,
        "count": 0,
        "build": "cu128",
        "error": "RuntimeError",
    }
    real = _probe(cu128, env)  # no NVIDIA driver on CI: False; on a GPU machine: True
    assert real["available"] is has_driver
    if has_driver:
        assert real["name"] == "NVIDIA Fake GPU" and real["capability"] == [9, 0]

    cpu = make_venv(tmp_path / "cpu", packages=["torch==2.9.0+cpu"], indexes=("cpu",))
    answer = _probe(cpu, env)
    assert answer == {
        "version": "2.9.0+cpu",
        "cuda": None,
        "hip": None,
        "available": False,
        "count": 0,
        "build": "cpu",
        "error": "AssertionError",
    }

    python = os.fspath(cpu / "bin" / "python")
    crashed = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, env=dict(env, UVEXTRA_FAKE_TORCH_CRASH="1"), timeout=30
    )
    assert crashed.returncode < 0  # killed by SIGABRT
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(
            [python, "-c", "import torch"], capture_output=True, env=dict(env, UVEXTRA_FAKE_TORCH_HANG="1"), timeout=1
        )


def test_torch_files_rocm_build() -> None:
    files = torch_files("2.9.0+rocm6.4", None, hip="6.4.43482", build_label="rocm")
    assert "hip = '6.4.43482'" in files["torch/version.py"]
    assert "_build = 'rocm'" in files["torch/__init__.py"]


def test_make_venv_with_kernel_standins(make_venv, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "kernel", packages=["ipykernel", "numpy"])
    names = {d.split("-")[0] for d in dist_infos(venv)}
    assert names == {"ipykernel", "tornado", "comm", "numpy"}


# --------------------------------------------------------------------------- projects


def test_seed_project_old_uv_keeps_cpu_build_new_uv_fixes_it(
    make_project, uv_old: str, uv_new: str, uv_env: dict[str, str]
) -> None:
    project = make_project()
    venv = project / ".venv"
    text = (project / "pyproject.toml").read_text()
    assert "conflicts = [" in text and '{ index = "pytorch-pypi", extra = "pypi" }' in text

    run_uv(uv_old, "sync", "--python", sys.executable, "--extra", "cpu", env=uv_env, cwd=project)
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
    # astral-sh/uv#16368: uv <= 0.9.23 thinks 2.9.0+cpu satisfies ==2.9.0 and keeps it.
    run_uv(uv_old, "sync", "--extra", "pypi", env=uv_env, cwd=project)
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
    assert "nvidia_cublas_cu12-12.8.4.1.dist-info" in dist_infos(venv)  # deps did switch

    run_uv(uv_new, "sync", "--extra", "pypi", env=uv_env, cwd=project)
    assert dist_infos(venv, "torch") == ["torch-2.9.0.dist-info"]
    assert _torch_build(venv) == "pypi-cu128"


def test_same_version_other_build_is_not_reinstalled_by_new_uv(
    make_project, index_server: IndexServer, uv_new: str, uv_env: dict[str, str]
) -> None:
    project = make_project()
    venv = project / ".venv"
    run_uv(uv_new, "sync", "--python", sys.executable, "--extra", "pypi", env=uv_env, cwd=project)
    assert _torch_build(venv) == "pypi-cu128"

    # The `pypi` extra now takes torch from `mirror`: same version string "2.9.0", same
    # Requires-Dist, a different (CPU) build.  The lock records the mirror's URL and hash...
    write_project(
        project,
        {
            "cpu": index_server.simple_url("cpu"),
            "cu128": index_server.simple_url("cu128"),
            "pypi": index_server.simple_url("mirror"),
        },
        default_index=index_server.simple_url("pypi"),
    )
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    assert "/mirror/files/torch-2.9.0-py3-none-any.whl" in (project / "uv.lock").read_text()
    run_uv(uv_new, "sync", "--extra", "pypi", env=uv_env, cwd=project)
    # ...but even the newest uv keeps the pypi build ("Checked N packages"): the venv records
    # no index and no wheel hash for registry installs.  THIS is the drift uvextra exists to
    # catch.  If this assertion starts failing, uv began to record provenance: revisit
    # uvextra's drift check (it may then be able to lean on uv).
    assert dist_infos(venv, "torch") == ["torch-2.9.0.dist-info"]
    assert _torch_build(venv) == "pypi-cu128"

    run_uv(uv_new, "sync", "--extra", "pypi", "--reinstall-package", "torch", env=uv_env, cwd=project)
    assert _torch_build(venv) == "mirror-cpu"


@pytest.mark.parametrize("which", ["new", "old"])
def test_flat_indexes_and_packaged_project_build_offline(
    which: str, make_project, index_server: IndexServer, uv_new: str, uv_old: str, uv_env: dict[str, str]
) -> None:
    uv = uv_new if which == "new" else uv_old
    project = make_project(
        {"cpu": index_server.flat_path("cpu"), "cu128": "cu128", "pypi": "pypi"},
        flat=("cpu", "cu128"),
        package=True,
        lock=False,
    )
    text = (project / "pyproject.toml").read_text()
    assert text.count('format = "flat"') == 2 and 'backend-path = ["_backend"]' in text
    # Every index is local and none carries a build backend: the in-tree one builds `moo`.
    run_uv(uv, "lock", env=uv_env, cwd=project)
    run_uv(uv, "sync", "--python", sys.executable, "--extra", "cpu", env=uv_env, cwd=project)
    venv = project / ".venv"
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
    assert dist_infos(venv, "moo") == ["moo-0.1.0.dist-info"]
    run_uv(uv, "sync", "--extra", "cu128", env=uv_env, cwd=project)
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cu128.dist-info"]
    proc = subprocess.run(
        [os.fspath(venv / "bin" / "python"), "-c", "import moo, torch; print(moo.__file__, torch.__version__)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(project / "src" / "moo") in proc.stdout and "2.9.0+cu128" in proc.stdout
