"""Processes the tests start: uv, with a failure that shows uv's output.

Every subprocess and kernel test runs with :data:`KERNEL_COLOR_ENV`, as ipykernel sets it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

#: What ipykernel puts in every kernel's environment (so a uv started from a notebook colours its output even into
#: a pipe unless told otherwise). Every subprocess and kernel test runs with these.
KERNEL_COLOR_ENV = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}


def run_uv(
    uv: str,
    *args: str | os.PathLike[str],
    env: Mapping[str, str],
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``uv *args``; on an unexpected failure, fail the test showing uv's output."""
    proc = subprocess.run(
        [uv, *map(os.fspath, args)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"uv {' '.join(map(os.fspath, args))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc
