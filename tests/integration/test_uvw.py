"""The README's two commands start with ./uvw: uv from PATH, else python3's own uv package, else a private copy.

The last case is a stock Debian/Ubuntu Python, where `python3 -m pip install uv` is refused (PEP 668); the test
uses such a Python where the machine has one, and proves that it really refuses first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

UVW = Path(__file__).resolve().parents[2] / "uvw"


def _externally_managed_python() -> str | None:
    for candidate in ("/usr/bin/python3",):
        if not os.access(candidate, os.X_OK):
            continue
        stdlib = subprocess.run(
            [candidate, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
            return candidate
    return None


def run(uvw: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)} | env
    return subprocess.run(
        [str(uvw), *args], capture_output=True, text=True, timeout=300, env=full, stdin=subprocess.DEVNULL
    )


def test_uvw_installs_uv_where_pip_is_refused(tmp_path: Path) -> None:
    python = _externally_managed_python()
    if python is None:
        pytest.skip("no externally managed system Python (PEP 668) on this machine")
    refused = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "uv"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stdout + refused.stderr
    uvw = tmp_path / "checkout" / "uvw"
    uvw.parent.mkdir()
    shutil.copy2(UVW, uvw)
    first = run(uvw, "--version", UVW_NO_PATH="1", UVW_PYTHON=python)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("uv ") and "installing uv into" in first.stderr
    again = run(uvw, "--version", UVW_NO_PATH="1", UVW_PYTHON=python)
    assert again.stdout == first.stdout and "installing" not in again.stderr  # once


def test_uvw_prefers_the_uv_on_path(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "uv"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "the uv on PATH: $*"\n')
    fake.chmod(0o755)
    proc = run(UVW, "run", "x", PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert proc.stdout.strip() == "the uv on PATH: run x"
