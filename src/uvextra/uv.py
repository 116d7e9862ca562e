"""The one way uvextra runs uv: found once, always aimed at an explicit environment, never through a shell."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .environment import Environment
from .errors import Interrupted, UvextraError
from .redact import redact

UV_ENV_VAR = "UVEXTRA_UV"
# uv <= 0.9.23 answers `==2.9.0` with an installed `2.9.0+cpu` and keeps it (astral-sh/uv#16368);
# 0.9.24 reinstalls correctly as a side effect of astral-sh/uv#17387.
FIXED_IN = Version("0.9.24")
# `uv export --format pylock.toml` appeared in uv 0.8.x; older uv cannot tell us what the lock wants.
MIN_EXPORT = Version("0.8.0")
# Variables that would send uv somewhere other than the target environment.
_STRIP_ENV = ("UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV", "CONDA_PREFIX", "UV_SYSTEM_PYTHON")

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class Uv:
    """A uv binary and its version."""

    path: str
    version: Version

    @property
    def warning(self) -> str | None:
        if self.version < FIXED_IN:
            return (
                f"uv {self.version} leaves stale local-version builds in place (astral-sh/uv#16368, fixed in "
                f"{FIXED_IN}); uvextra will catch them — upgrade uv or let uvextra use its bundled one"
            )
        return None

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "version": str(self.version)}


def _bundled_uv() -> str | None:
    try:
        from uv import find_uv_bin  # the `uv` wheel uvextra depends on
    except ImportError:
        return None
    try:
        return find_uv_bin()
    except (FileNotFoundError, OSError):
        return None


def find_uv() -> Uv:
    """``$UVEXTRA_UV``, else the uv bundled as uvextra's dependency (known to have the fix), else uv on PATH."""
    explicit = os.environ.get(UV_ENV_VAR)
    if explicit:
        path = shutil.which(explicit) or explicit
        if not Path(path).exists():
            raise UvextraError(
                f"{UV_ENV_VAR}={explicit} does not exist; point it at a uv binary or unset it "
                "(install uv with `pip install 'uv>=0.9.24'`)"
            )
    else:
        path = _bundled_uv() or shutil.which("uv")
        if path is None:
            raise UvextraError("no uv found; install it with `pip install 'uv>=0.9.24'` (or set UVEXTRA_UV)")
    st = os.stat(path)
    return Uv(path=str(path), version=_uv_version(str(path), st.st_mtime_ns, st.st_size))


@cache
def _uv_version(path: str, _mtime: int, _size: int) -> Version:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UvextraError(f"cannot run uv at {path} ({exc}); reinstall uv: `pip install 'uv>=0.9.24'`") from None
    match = re.match(r"uv (\S+)", out.strip())
    try:
        return Version(match.group(1)) if match else Version("0")
    except InvalidVersion:
        return Version("0")


def uv_environ(env: Environment, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for uv: the target venv named explicitly, nothing that could redirect it."""
    out = dict(os.environ if base is None else base)
    for key in _STRIP_ENV:
        out.pop(key, None)
    out["UV_PROJECT_ENVIRONMENT"] = str(env.prefix)
    out["VIRTUAL_ENV"] = str(env.prefix)  # silences uv's "does not match the project environment" warning
    out.setdefault("UV_NO_PROGRESS", "1")  # progress bars are redrawn with \r: useless line by line
    return out


@dataclass
class UvResult:
    returncode: int
    output: list[str]  # redacted lines, stdout and stderr interleaved as uv wrote them


def run_uv(
    uv: Uv,
    args: Sequence[str],
    env: Environment,
    *,
    cwd: Path,
    on_line: LineCallback | None = None,
    timeout: float | None = None,
) -> UvResult:
    """Run ``uv ARGS`` for ``env``, streaming each (redacted) output line to ``on_line`` as it arrives.

    Ctrl-C / a kernel interrupt terminates uv (its whole process group) and raises :class:`Interrupted`.
    """
    cmd = [uv.path, *args]
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=uv_environ(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", bufsize=1,
            start_new_session=True,  # our own process group: we decide when uv stops, and nothing is orphaned
        )
    except OSError as exc:
        raise UvextraError(f"cannot start uv at {uv.path}: {exc.strerror or exc}") from None
    lines: list[str] = []
    timer = threading.Timer(timeout, _kill_group, args=(proc,)) if timeout else None
    try:
        if timer:
            timer.start()
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = redact(raw.rstrip("\n"))
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait()
    except KeyboardInterrupt:
        _kill_group(proc)
        raise Interrupted("interrupted: uv was stopped before it finished") from None
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:
            _kill_group(proc)
    return UvResult(proc.returncode, lines)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    # unreachable in practice: SIGKILL always ends it


def capture_uv(uv: Uv, args: Sequence[str], env: Environment, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a short uv query (export, --version) and capture its output; stderr is redacted."""
    try:
        proc = subprocess.run(
            [uv.path, *args], cwd=cwd, env=uv_environ(env), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600,
        )
    except OSError as exc:
        raise UvextraError(f"cannot start uv at {uv.path}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise UvextraError(f"`uv {' '.join(args[:2])}` did not finish in 10 minutes; check the index") from None
    proc.stderr = redact(proc.stderr)
    return proc
