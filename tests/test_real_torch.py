"""Optional: the real CPU build of torch, switched in through a flat index, and the probe's verdict on it.

Runs where pip's find-links configuration holds a ``torch-*+cpu`` wheel for this Python (never a hard-coded folder;
about 10 s: uv links the 200 MB wheel from its cache); skipped elsewhere. torch's small dependencies are built locally: the real ``typing_extensions``
module (``import torch`` needs it) and empty stand-ins for the others, which torch imports lazily.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typing_extensions

from conftest import dist_infos
from test_probe import _cpu_torch_wheel
from uvextra._localindex import IndexServer, build_wheel, write_project

pytestmark = pytest.mark.slow

STAND_INS = {"filelock": "3.20.0", "setuptools": "80.9.0", "sympy": "1.14.0", "networkx": "3.5", "jinja2": "3.1.6",
             "fsspec": "2025.9.0"}


def test_switch_to_the_real_cpu_torch_through_a_flat_index(tmp_path: Path, make_venv, uv_env, uv_new):
    wheel = _cpu_torch_wheel()
    if wheel is None:
        pytest.skip("no torch-*+cpu wheel for this Python in pip's find-links folders")
    flat = tmp_path / "indexes" / "realtorch"
    flat.mkdir(parents=True)
    (flat / wheel.name).symlink_to(wheel)
    build_wheel(flat, "typing-extensions", "4.15.0",
                {"typing_extensions.py": Path(typing_extensions.__file__).read_text(encoding="utf-8")})
    for name, version in STAND_INS.items():
        build_wheel(flat, name, version, {f"{name}/__init__.py": f"__version__ = {version!r}\n"})
    with IndexServer(tmp_path / "indexes") as server:
        project = write_project(tmp_path / "project", {"cpu": flat}, extras=("cpu",), flat={"cpu"},
                                default_index=server.simple_url("realtorch"), extra_deps=(),
                                torch_requirement="torch>=2.8")
        venv = make_venv(tmp_path / "venv")
        env = dict(uv_env, UVEXTRA_UV=uv_new)
        proc = subprocess.run([sys.executable, "-m", "uvextra", "switch", "cpu", "--project", str(project),
                               "--python", str(venv / "bin" / "python"), "--json"],
                              env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    version = wheel.name.split("-")[1]
    assert dist_infos(venv, "torch") == [f"torch-{version}.dist-info"]
    assert [d for d in report["drift"] if d["kind"] != "extraneous"] == []
    probe = report["probe"]
    assert (probe["torch_version"], probe["cuda_version"], probe["cuda_available"]) == (version, None, False)
    assert probe["verdict"] == f"CPU build of torch ({version}); CUDA not expected"
