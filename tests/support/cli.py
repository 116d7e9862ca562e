"""The one way the tests run uvextra's command line: ``python -m uvextra …`` in a subprocess, as a user does.

:func:`run_cli` runs it; :func:`run_json` adds ``--json`` and reads the report; :func:`error_line` checks the one
line a refused command prints; :class:`Setup` is a seed-shaped project with a venv that a switch targets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.localindex import IndexServer, write_project
from support.run import run_uv
from support.venvs import dist_infos

KERNEL_PACKAGES = ("comm-0.2.3.dist-info", "ipykernel-7.4.0.dist-info", "tornado-6.5.2.dist-info")


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str],
    python: str | os.PathLike[str] = sys.executable,
    cwd: Path | None = None,
    timeout: float = 180,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``python -m uvextra *args`` (``prefix`` before it: ``runuser``, ``timeout``), stdin closed, output captured."""
    return subprocess.run(
        [*prefix, os.fspath(python), "-m", "uvextra", *map(os.fspath, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_json(
    *args: str | os.PathLike[str],
    env: dict[str, str],
    python: str | os.PathLike[str] = sys.executable,
    cwd: Path | None = None,
    timeout: float = 180,
) -> tuple[int, dict[str, Any], str]:
    """``run_cli(*args, "--json")``: its exit code, the JSON report on stdout (else the test fails) and its stderr."""
    proc = run_cli(*args, "--json", env=env, python=python, cwd=cwd, timeout=timeout)
    return proc.returncode, report_of(proc), proc.stderr


def error_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line a refused command prints: exit ``code``, stderr exactly ``uvextra: error: …``."""
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("uvextra: error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0].removeprefix("uvextra: error: ")


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON on stdout; the test fails showing the output when there is none."""
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON on stdout (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}")


def drift_kinds(report: dict) -> dict[str, str]:
    return {d["package"]: d["kind"] for d in report["drift"] if d["kind"] != "extraneous"}


@dataclass
class Setup:
    """A seed-shaped project and a kernel venv holding the stand-in ipykernel outside the lock."""

    project: Path
    venv: Path
    env: dict[str, str]

    def __post_init__(self) -> None:
        self.pyproject_bytes = (self.project / "pyproject.toml").read_bytes()

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def target(self) -> list[str]:
        return ["--project", str(self.project), "--python", self.python]

    def run(self, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        return run_cli(command, *rest, *self.target(), env=self.env if env is None else env, **kw)

    def torch(self) -> list[str]:
        return dist_infos(self.venv, "torch")

    def assert_nothing_lost(self) -> None:
        assert (self.project / "pyproject.toml").read_bytes() == self.pyproject_bytes, "pyproject.toml changed"
        assert (self.venv / "pyvenv.cfg").is_file() and Path(self.python).exists(), "the venv is gone"
        kernel = [d for d in dist_infos(self.venv) if d.split("-")[0] in ("comm", "ipykernel", "tornado")]
        assert tuple(kernel) == KERNEL_PACKAGES, f"the kernel's own packages were touched: {kernel}"


def project_on(server: IndexServer, path: Path, uv: str, env: dict[str, str], *, credentials: bool = True) -> Path:
    indexes = {e: server.simple_url(e, credentials=credentials) for e in ("cpu", "cu128", "pypi")}
    write_project(path, indexes, default_index=server.simple_url("pypi", credentials=credentials))
    run_uv(uv, "lock", env=env, cwd=path)
    return path


def assert_plain(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """What a notebook's CI log would show stays plain: no colour codes, no traceback (``proc``, for chaining)."""
    assert "\x1b" not in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc
