"""Why uv failed, in words: its own error text picked from its output, and the kind of failure (killed by a signal,
a full disk, an unreachable index, anything else uv said). A pure function of uv's result; the verbs put it on
the report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .vocabulary import FailureKind

if TYPE_CHECKING:
    from .uv import UvResult

__all__ = ["INTERRUPTED", "Failure", "classify", "follow_up", "uv_error"]

# what the report says when the user stopped uv (the environment is then checked again)
INTERRUPTED = "interrupted: uv was stopped before it finished; the environment was checked again"

# uv's words when it could not reach an index (connection, DNS, TLS, timeouts, a server error).
_UNREACHABLE = re.compile(
    r"connection refused|error sending request|dns error|failed to lookup address|could not connect|"
    r"tcp connect error|connection reset|network is unreachable|timed out|operation timed out|"
    r"server error|status code 5\d\d|50[234] |certificate|client error \(connect\)",
    re.IGNORECASE,
)
# uv's (the OS's) words for ENOSPC and EDQUOT
_DISK_FULL = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """An operation that did not complete: its kind, one line for the user, and uv's own words (if uv spoke)."""

    kind: FailureKind
    failure: str
    uv_error: str | None = None


def uv_error(output: Sequence[str]) -> str:
    """uv's own error text: from its first ``error:`` line on (else its last lines), as uv wrote it."""
    lines = [ln.rstrip() for ln in output if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("error:")), None)
    picked = lines[first:] if first is not None else lines[-5:]
    return "\n".join(picked[:40])


def classify(args: Sequence[str], result: UvResult, prefix: Path) -> Failure:
    """uv ran ``args`` into the venv at ``prefix`` and failed: which failure that is, in words."""
    text = uv_error(result.output)
    summary = " ".join(ln.strip() for ln in text.splitlines()[:4]) or "no output"
    if result.returncode < 0:  # killed by a signal: nothing of uv's own says so
        import signal

        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        why = " — out of memory? (the OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return Failure(
            "killed",
            f"uv was killed ({name}){why} before `uv {args[0]}` finished; packages it was writing "
            f"may be half-installed (the check below holds every file against its RECORD). "
            f"Its last words: {summary}",
            text or None,
        )
    if _DISK_FULL.search(text):
        from .space import mount_of

        where = mount_of(_path_in(text) or prefix)
        return Failure(
            "disk-full",
            f"disk full on {where}: uv {args[0]} failed (exit {result.returncode}): {summary}",
            text or None,
        )
    kind: FailureKind = "network" if _UNREACHABLE.search(text) else "uv"
    return Failure(kind, f"uv {args[0]} failed (exit {result.returncode}): {summary}", text or None)


def follow_up(why: str) -> Failure:
    """uv's sync ran, but what came after it (removing, checking, recording) failed."""
    return Failure("follow-up", f"uv's sync ran, but what came after it failed: {why}")


def _path_in(text: str) -> Path | None:
    """The first absolute path uv names in backticks (the file it could not write)."""
    for match in re.finditer(r"`(/[^`]+)`", text):
        return Path(match.group(1))
    return None
