"""The benchmark script still runs end to end (``benchmarks/run.py --quick``) and prints every row of its table.

Benchmarks are not tests: nothing here looks at a time, only that each case ran and its figures are numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "run.py"

# case -> (how many rows at least, a phrase every such row set must contain somewhere)
EXPECTED = {
    "B1": (1, "drift check, in-process"),
    "B2": (3, "in a kernel's venv"),
    "B3": (4, "first check in a new process"),
    "B4": (2, "kernel start"),
    "B5": (4, "uv link mode: copy"),
    "B6": (1, "probe in parallel"),
    "B7": (1, "whole process"),
}
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def _table(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| B"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append(cells)
    return rows


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], str]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.md"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON")}
    env["UVEXTRA_BENCH_CACHE"] = str(work / "cache")  # not ~/.cache: the quick wheels are small, built each time
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    return proc, out.read_text(encoding="utf-8") if out.exists() else ""


def test_quick_run_exits_cleanly(quick_run):
    proc, markdown = quick_run
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stderr\n{proc.stderr[-4000:]}"
    assert markdown, "no markdown written to --out"
    assert proc.stdout.strip() == markdown.strip(), "stdout and --out differ"
    assert "Errors:" not in markdown
    assert "| # | what | uvextra (ms) | compared with | that (ms) | figure | target | met |" in markdown
    assert re.search(r"uv \d+\.\d+\.\d+", markdown), "no uv version in the header"
    assert "machine:" in markdown


def test_every_case_has_its_rows(quick_run):
    _, markdown = quick_run
    rows = _table(markdown)
    for case, (count, phrase) in EXPECTED.items():
        mine = [r for r in rows if r[0] == case]
        assert len(mine) >= count, f"{case}: {len(mine)} rows, expected at least {count}\n{markdown}"
        assert any(phrase in r[1] for r in mine), f"{case}: no row mentions {phrase!r}"


def test_figures_parse(quick_run):
    _, markdown = quick_run
    for row in _table(markdown):
        assert len(row) == 8, row
        case, what, ours, _label, base, figure, _target, met = row
        extension_missing = case == "B4" and "does not load" in what
        assert _is_number(ours) or (ours == "n/a" and extension_missing), row
        assert _is_number(base) or base == "n/a", row
        assert figure == "n/a" if ours == "n/a" else re.search(r"\d", figure), row
        assert met in ("yes", "**no**", "n/a"), row


def test_the_startup_benchmark_runs_and_catches_a_removed_file(tmp_path):
    """``benchmarks/startup.py --quick`` (issue 20): the demo project's four rows against uv, figures that are
    numbers, the load said — and it ends only after the very next check caught a removed RECORD file."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON")}
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "startup.py"), "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stderr\n{proc.stderr[-4000:]}"
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in proc.stdout.splitlines()
        if line.startswith("| demo project")
    ]
    for phrase in ("`python -m uvextra check --json`, unchanged venv", "the whole check", "after a change"):
        assert any(phrase in r[1] for r in rows), (phrase, proc.stdout)
    assert all(_is_number(r[2]) and _is_number(r[4]) and r[5].endswith("×") for r in rows), rows
    assert re.search(r"load [\d.]+ → [\d.]+", proc.stdout) and ": caught (exit 1)" in proc.stdout, proc.stdout
