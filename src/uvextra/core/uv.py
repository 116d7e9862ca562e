"""The one way uvextra runs uv: found once, always aimed at an explicit environment, never through a shell."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from .environment import Environment
from .errors import Interrupted, UvextraError
from .redact import redact, strip_ansi

if TYPE_CHECKING:
    import subprocess

# subprocess, shutil, signal and threading are imported where uv is really run or looked for: a check whose uv
# version and export are kept in the venv runs none of it (importing them is a few ms of every CLI call).

UV_ENV_VAR = "UVEXTRA_UV"
# uv <= 0.9.23 answers `==2.9.0` with an installed `2.9.0+cpu` and keeps it (astral-sh/uv#16368);
# 0.9.24 reinstalls correctly as a side effect of astral-sh/uv#17387.
FIXED_IN = Version("0.9.24")
# `uv export --format pylock.toml` appeared in uv 0.6.15 (measured: 0.6.14 answers "invalid value 'pylock.toml'
# for '--format'"); older uv cannot tell us what the lock wants. 0.6.15 has --group, --package and group conflicts.
MIN_EXPORT = Version("0.6.15")
# Variables that would send uv somewhere other than the target environment.
_STRIP_ENV = ("UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV", "CONDA_PREFIX", "UV_SYSTEM_PYTHON")
# Variables that force colour on although uv's output goes to a pipe (ipykernel sets both, for rich output).
_COLOR_ENV = ("FORCE_COLOR", "CLICOLOR_FORCE")
# uv's output always goes to a pipe here: no colour, said explicitly (a global flag since uv 0.1; 0.6.15 has it).
NO_COLOR_ARGS = ("--color", "never")

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


def _which(name: str) -> str | None:
    import shutil  # only here: it imports bz2, lzma and zlib, and the bundled uv is usually found first

    return shutil.which(name)


def _bundled_uv() -> str | None:
    try:
        from uv import find_uv_bin  # the `uv` wheel uvextra depends on
    except ImportError:
        return None
    try:
        return find_uv_bin()
    except (FileNotFoundError, OSError):
        return None


def find_uv(cache_dir: Path | None = None) -> Uv:
    """``$UVEXTRA_UV``, else the uv bundled as uvextra's dependency (known to have the fix), else uv on PATH.

    With ``cache_dir`` (a venv's ``.uvextra``), the version of a binary asked once is kept there, named by the
    binary's path and file identity: ``uv --version`` is a process start on every CLI call otherwise.
    """
    explicit = os.environ.get(UV_ENV_VAR)
    if explicit:
        path = _which(explicit) or explicit
        if not Path(path).exists():
            raise UvextraError(
                f"{UV_ENV_VAR}={explicit} does not exist; point it at a uv binary or unset it "
                "(install uv with `pip install 'uv>=0.9.24'`)"
            )
    else:
        found = _bundled_uv() or _which("uv")
        if found is None:
            raise UvextraError("no uv found; install it with `pip install 'uv>=0.9.24'` (or set UVEXTRA_UV)")
        path = found
    st = os.stat(path)
    version = (
        _uv_version(str(path), st.st_mtime_ns, st.st_size)
        if cache_dir is None
        else _known_uv_version(cache_dir, str(path), st)
    )
    if isinstance(version, str):  # what it printed instead of "uv X.Y.Z"
        named = f"{UV_ENV_VAR}={explicit}" if explicit else str(path)
        raise UvextraError(
            f"{named} is not uv (`{path} --version` printed {version}); "
            + (f"point {UV_ENV_VAR} at a uv binary or unset it" if explicit else "reinstall uv")
            + " (install uv with `pip install 'uv>=0.9.24'`)"
        )
    return Uv(path=str(path), version=version)


def _known_uv_version(cache_dir: Path, path: str, st: os.stat_result) -> Version | str:
    from . import cache as _cache

    entry = _cache.entry(
        cache_dir, "uv", path, f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    )
    known = _cache.read_json(entry, lambda data: Version(data["version"]))
    if known is not None:
        return known
    version = _uv_version(path, st.st_mtime_ns, st.st_size)
    # Kept only where uvextra has been at work already: a command refused before it starts leaves the venv as it
    # was. What a binary answered instead of a version is asked again next time.
    if isinstance(version, Version) and cache_dir.is_dir():
        _cache.write_json(entry, {"version": str(version)})
    return version


@cache
def _uv_version(path: str, _mtime: int, _size: int) -> Version | str:
    """uv's version, or (a str) a short account of what the binary answered instead."""
    import subprocess

    try:
        proc = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=30,
            stdin=subprocess.DEVNULL,
            env=_no_color(os.environ),
        )
    except subprocess.TimeoutExpired:
        return "nothing within 30 s"
    except (OSError, subprocess.SubprocessError) as exc:
        raise UvextraError(f"cannot run uv at {path} ({exc}); reinstall uv: `pip install 'uv>=0.9.24'`") from None
    out = strip_ansi(proc.stdout).strip()
    match = re.fullmatch(r"uv (\S+)(?: \(.*\))?", out.splitlines()[0].strip() if out else "")
    if match:
        try:
            return Version(match.group(1))
        except InvalidVersion:
            pass
    said = out or strip_ansi(proc.stderr).strip()
    first = said.splitlines()[0].strip() if said else ""
    if not first:
        return "nothing" if proc.returncode == 0 else f"nothing and exited {proc.returncode}"
    if len(first) > 80:
        first = first[:77] + "..."
    return repr(redact(first))


def _no_color(base: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in base.items() if k not in _COLOR_ENV}
    out["NO_COLOR"] = "1"
    return out


def uv_environ(env: Environment, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for uv: the target venv named explicitly, nothing that could redirect it."""
    out = _no_color(os.environ if base is None else base)  # uv writes to a pipe: no colour codes
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
    import subprocess
    import threading

    cmd = [uv.path, *NO_COLOR_ARGS, *args]
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=uv_environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
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
            line = redact(raw.rstrip("\n"))  # secrets masked, colour codes (should any still come) dropped
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
        if proc.stdout is not None:  # the pipe too: an unclosed one warns (ResourceWarning) when collected
            proc.stdout.close()
    return UvResult(proc.returncode, lines)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    import signal
    import subprocess

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
    import subprocess

    try:
        proc = subprocess.run(
            [uv.path, *NO_COLOR_ARGS, *args],
            cwd=cwd,
            env=uv_environ(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=600,
        )
    except OSError as exc:
        raise UvextraError(f"cannot start uv at {uv.path}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise UvextraError(f"`uv {' '.join(args[:2])}` did not finish in 10 minutes; check the index") from None
    proc.stdout = strip_ansi(proc.stdout)
    proc.stderr = redact(proc.stderr)  # redact() drops ANSI escapes, too
    return proc
