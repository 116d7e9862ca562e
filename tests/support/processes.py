"""Live processes, read from ``/proc`` (no psutil): what a test checks is gone after an operation."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (a /proc scan, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:")), "")
        except OSError:
            continue
        if text in cmdline and "zombie" not in state:
            found.append((int(entry.name), cmdline.strip()))
    return found


def assert_no_process_left(venv: Path, grace: float = 5.0) -> None:
    deadline = time.monotonic() + grace
    while (left := processes_mentioning(str(venv))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes still running for {venv}: {left}"
