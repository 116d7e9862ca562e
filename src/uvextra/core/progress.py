"""Progress while uv works: each phase named while it runs, packages and megabytes counted while uv downloads.

uv prints nothing into a pipe while it downloads (and uvextra sets ``UV_NO_PROGRESS``): a multi-GB CUDA switch is
silent for half a minute, then the probe's first ``import torch`` compiles bytecode for seconds more. So uvextra
watches instead of parsing bars: the exported pylock says which wheels the switch needs and each one's ``size``; a
thread polls uv's cache (``archive-v0/`` gains one folder per unpacked wheel, its ``.dist-info`` inside) and the
venv's ``site-packages`` while uv runs, and says "downloading 3 of 27 packages, 812 of 3,120 MB".

Surfaces hand one :class:`Progress` sink to the verbs (the CLI: phases on stderr, redrawn in place on a TTY, one line
per change in a pipe and under ``--json``; the card: its progress line and uv's output). Nobody listening for
phases costs nothing: no thread, no export.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .environment import Environment
    from .installed import Installed
    from .project import Project
    from .uv import Uv
    from .vocabulary import Selection

Listener = Callable[[str], None]


@dataclass(frozen=True)
class Progress:
    """The one sink for what an operation says while it runs: each phase as it starts (``phase``), uv's own output
    lines (``uv_line``), and a wait for another uvextra changing the same venv (``waiting``). Each is optional; a
    surface passes what it shows."""

    phase: Listener | None = None
    uv_line: Listener | None = None
    waiting: Listener | None = None

    def say(self, text: str) -> None:
        """Name the phase that starts now (to whoever listens; nobody: nothing)."""
        if self.phase is not None:
            self.phase(text)

    def wait(self, text: str) -> None:
        """Say that the operation waits (for another uvextra's switch lock)."""
        if self.waiting is not None:
            self.waiting(text)


SILENT = Progress()


class Target(Protocol):
    """Where a sync runs (the verbs' :class:`uvextra.core.context.Context` is one)."""

    project: Project
    env: Environment
    uv: Uv


POLL_S = 0.25
PROBING = "probing CUDA in a fresh process"
PROBING_FIRST = (
    PROBING + " (importing torch for the first time after an install compiles its bytecode: "
    "seconds, more for a CUDA build)"
)


def _mb(size: int) -> str:
    mb = size / 1e6
    return f"{mb:,.1f}" if mb < 100 else f"{mb:,.0f}"


def _needed(ctx: Target, extras: Selection, before: Mapping[str, Installed]) -> dict[str, int | None]:
    """What the switch will install (name -> its wheel's size, when the pylock says): what the lock wants and is not
    installed at that version. Empty when there is no lock yet (uv makes it first)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser, from PyPI
        import tomli as tomllib

    from .lock import export_pylock, wanted_from_pylock

    if not ctx.project.lockfile.is_file():
        return {}
    text = export_pylock(ctx.project, ctx.env, ctx.uv, extras)
    from urllib.parse import unquote

    wanted = wanted_from_pylock(text, ctx.project, ctx.env)
    sizes: dict[str, int] = {}  # by the wheel's file name, unquoted: a URL says torch-2.9.0%2Bcu128-…, a name "+"
    for pkg in tomllib.loads(text).get("packages", []):
        for wheel in pkg.get("wheels", []) if isinstance(pkg, dict) else []:
            if isinstance(wheel, dict) and isinstance(wheel.get("size"), int):
                name = wheel.get("name") or str(wheel.get("url") or wheel.get("path") or "").rsplit("/", 1)[-1]
                sizes[unquote(str(name))] = wheel["size"]
    out: dict[str, int | None] = {}
    for name, want in wanted.items():
        have = before.get(name)
        if have is None or have.version != want.version:
            out[name] = sizes.get(unquote(want.wheel or ""))
    return out


def _cache_dir(ctx: Target) -> Path | None:
    given = os.environ.get("UV_CACHE_DIR")
    if given:
        return Path(given)
    from .uv import capture_uv

    try:
        proc = capture_uv(ctx.uv, ["cache", "dir"], ctx.env, cwd=ctx.project.root)
    except Exception:  # noqa: BLE001 - progress is a courtesy: never fail a switch over it
        return None
    found = proc.stdout.strip()
    return Path(found) if proc.returncode == 0 and found else None


def _dist_name(folder: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(folder[: -len(".dist-info")].rsplit("-", 1)[0]))


class SyncWatch:
    """While a uv sync runs: a thread that names the phase and counts what arrived (see the module docstring)."""

    def __init__(
        self,
        ctx: Target,
        extras: Selection,
        before: Mapping[str, Installed],
        listener: Listener,
        *,
        verb: str = "switching to",
    ) -> None:
        self.ctx, self.extras, self.before, self.listener = ctx, extras, before, listener
        self.verb = verb
        self.phase = "resolving"
        self._stop = threading.Event()
        self._said = ""
        self._needed: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="uvextra-sync-watch", daemon=True)

    def __enter__(self) -> SyncWatch:
        self._emit(f"resolving the lock for {' '.join(self.extras.names) or 'the base dependencies'}")
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def feed(self, line: str) -> None:
        """uv's own output: ``Resolved`` ends resolving, ``Prepared`` ends the downloads."""
        word = line.strip().split(" ", 1)[0]
        if word == "Resolved" and self.phase == "resolving":
            self.phase = "downloading"
        elif word in ("Prepared", "Installed", "Uninstalled") and self.phase != "installing":
            self.phase = "installing"  # said now: uv links the files in milliseconds, before the next poll
            n = len(self._needed) if self._needed else None
            self._emit(
                f"installing {n} package{'s' if n != 1 else ''} into the venv" if n else "installing into the venv"
            )
        elif word in ("Audited", "Checked"):
            self.phase = "done"

    def _emit(self, text: str) -> None:
        with self._lock:  # uv's reader and the poller both speak
            if not text or text == self._said or (self.phase == "installing" and text.startswith("downloading")):
                return
            self._said = text
            try:
                self.listener(text)
            except Exception:  # noqa: BLE001 - a broken surface must not break the switch
                pass

    def _run(self) -> None:
        cache = _cache_dir(self.ctx)
        archive = cache / "archive-v0" if cache else None
        seen_archives = set(_listdir(archive))
        try:
            needed = _needed(self.ctx, self.extras, self.before)
        except Exception:  # noqa: BLE001 - no totals: count what arrives all the same
            needed = {}
        self._needed = needed
        total = sum(s or 0 for s in needed.values())
        done: set[str] = set()
        unpacked = 0  # bytes of the wheels uv has unpacked into its cache so far (when the pylock has no sizes)
        while not self._stop.wait(POLL_S):
            for entry in set(_listdir(archive)) - seen_archives:
                seen_archives.add(entry)
                infos = [n for n in _listdir(archive / entry) if n.endswith(".dist-info")] if archive else []
                done.update(_dist_name(n) for n in infos) if infos else done.add(f"?{entry}")
                unpacked += _tree_size(archive / entry) if archive else 0
            if self.phase == "done" or (self.phase == "resolving" and not done):
                continue
            if self.phase == "installing":
                continue
            got = [n for n in done if n in needed] if needed else list(done)
            mb = sum(needed.get(n) or 0 for n in got)
            known = needed and all(size is not None for size in needed.values())
            sizes = f", {_mb(mb)} of {_mb(total)} MB" if known else f", {_mb(unpacked)} MB unpacked so far"
            if needed:
                self._emit(f"downloading {len(got)} of {len(needed)} packages{sizes}")
            elif got:
                self._emit(f"downloading: {len(got)} package{'s' if len(got) != 1 else ''}{sizes}")


def _tree_size(folder: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def _listdir(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    try:
        return os.listdir(folder)
    except OSError:
        return []


@contextmanager
def watch_sync(
    ctx: Target, extras: Selection, before: Mapping[str, Installed], progress: Progress
) -> Iterator[Listener | None]:
    """Watch the uv sync run inside this block; yields the line callback to give uv (it also feeds the watch)."""
    listener, on_line = progress.phase, progress.uv_line
    if listener is None:
        yield on_line
        return
    with SyncWatch(ctx, extras, before, listener) as watch:

        def line(text: str) -> None:
            watch.feed(text)
            if on_line is not None:
                on_line(text)

        yield line


class StreamProgress:
    """Phases on a text stream (stderr): redrawn in place on a TTY (``\\r``, no escape codes), one line each in a
    pipe. uv's own lines (:meth:`uv_line`) go above the live line."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._live = ""
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            if self.tty:
                new = f"uvextra: {text}"
                self.stream.write("\r" + new + " " * max(0, len(self._live) - len(new)))
                self._live = new
            else:
                self.stream.write(f"uvextra: {text}\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r" + " " * len(self._live) + "\r")
            self._live = ""

    def uv_line(self, line: str) -> None:
        with self._lock:
            live = self._live
            self._clear()
            self.stream.write(f"  │ {line}\n")
            if live:
                self.stream.write(live)
                self._live = live
            self.stream.flush()

    def close(self) -> None:
        """End the live line (a TTY keeps the last phase on screen)."""
        with self._lock:
            if self._live:
                self.stream.write("\n")
                self._live = ""
            self.stream.flush()
