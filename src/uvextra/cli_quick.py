"""The ``uvextra`` command's front door: a repeated ``uvextra check`` whose inputs did not change is answered at once.

A check is a pure function of what it reads: the command line, the working folder and the environment variables;
the files it opens (pyproject.toml, uv.lock, the venv's state.json, each package's metadata …); the folders it lists
(site-packages); the interpreters and the code that run it; and — the file-level check of issue 16 — whether each
file a package's RECORD lists is there, of its size. After a clean check (exit 0, nothing said on stderr) the CLI
writes down the identity of all of that (inode, size, mtime and ctime of each file; inode and mtime of each folder;
the size RECORD gives each of its files) with the words it printed, in the target venv's
``.uvextra/quick-<digest>``, named by the command line, the folder and the environment (held as one sha256: an
entry never holds a secret). The next identical call stats every one of those again — every RECORD file included,
so a deleted file or a killed install is never answered from here — and, when nothing differs, prints the same
words (``--json``: with this call's own ``elapsed_s``) without importing the engine: about 20 ms instead of about
120 (``argparse``, ``tomllib``, ``dataclasses``, ``pathlib`` and the engine's modules). Anything else — another
command, ``--verify``, a drifted or failed check, a changed input, a missing or unreadable entry, a read-only venv —
runs the whole CLI (:mod:`uvextra.cli`).

Answering imports only ``os``, ``sys`` and ``marshal`` (loaded by Python's own start-up) and the built-in ``zlib``
and sha256: that is the point of this module.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from .core.environment import Environment
    from .core.report import Report

FORMAT = 1  # the entry's layout; another value is a miss
PREFIX = "quick-"
MAX_ENTRIES = 16  # per venv (a few command lines × a few folders); each write removes the oldest beyond
# Set by the shell, not by the user, and never read by a check (the working folder itself is in the key): left out
# of the key so that they do not make misses.
_VOLATILE_ENV = frozenset({"OLDPWD", "PWD", "SHLVL", "_"})
# Inputs younger than this when the entry is written may change again within the file system's timestamp
# granularity (a coarse clock tick) without their mtime moving: such an entry is not written ("racy git").
_RACY_S = 0.05
_ELAPSED = '"elapsed_s": '


def _key(argv: Sequence[str]) -> tuple[Any, ...]:
    env = _environment_digest()
    ttys = tuple(_isatty(fd) for fd in (0, 1, 2))
    out = (getattr(sys.stdout, "encoding", None), getattr(sys.stdout, "errors", None))  # the words' bytes (-X utf8)
    return (FORMAT, tuple(argv), os.getcwd(), env, sys.executable, sys.version, ttys, out)


def _environment_digest() -> str:
    """The environment variables, as one sha256: an entry never holds a value (``UV_INDEX_*_PASSWORD``)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]  # CPython >= 3.12: no OpenSSL
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found, unused-ignore]  # CPython <= 3.11
        except ImportError:
            from hashlib import sha256
    h = sha256()
    for name, value in sorted(os.environ.items()):
        if name not in _VOLATILE_ENV:
            h.update(f"{name}={value}\0".encode("utf-8", "surrogateescape"))
    return str(h.hexdigest())


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _digest(key: tuple[Any, ...]) -> str:
    """A file name for ``key`` (the entry holds the key itself: a collision is a miss, never a wrong answer)."""
    import zlib  # built in or tiny; no hashlib (OpenSSL's start-up)

    data = repr(key).encode("utf-8", "surrogatepass")  # not marshal's bytes: those vary with object sharing
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def _eligible(argv: Sequence[str]) -> bool:
    """``check`` without ``--verify`` (which reads every byte on purpose), ``--help`` or ``--version``."""
    return bool(argv) and argv[0] == "check" and not any(a in ("--verify", "-h", "--help", "--version") for a in argv)


def _candidates(argv: Sequence[str]) -> list[str]:
    """Venvs the entry may lie in: ``--python``'s, ``$VIRTUAL_ENV``, ``$UV_PROJECT_ENVIRONMENT``, and the ``.venv``
    of every folder from ``--project`` (else the working folder) up. Which one holds it does not matter: the entry
    holds its whole key and every input, so only the right one can match."""
    out: list[str] = []
    args = list(argv)
    start = os.getcwd()
    for flag, following in zip(args, [*args[1:], ""], strict=True):
        name, eq, value = flag.partition("=")
        value = value if eq else following
        if name == "--python" and value:
            out += [value, os.path.dirname(os.path.dirname(value))]
        elif name == "--project" and value:
            start = os.path.abspath(value)
    out += [os.environ.get("VIRTUAL_ENV", ""), os.environ.get("UV_PROJECT_ENVIRONMENT", "")]
    folder = start
    while True:
        out.append(os.path.join(folder, ".venv"))
        parent = os.path.dirname(folder)
        if parent == folder:
            return [c for c in out if c and os.path.isabs(c)]
        folder = parent


def _identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _folder_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _unchanged(entry: dict[str, Any]) -> bool:
    """Every input as it was: files, folders, and each RECORD file there, of the size RECORD gives (issue 16)."""
    stat = os.stat
    for path, ident in entry["files"]:
        if _identity(path) != ident:
            return False
    for path, ident in entry["dirs"]:
        if _folder_identity(path) != ident:
            return False
    for folder, files in entry["record"]:
        try:  # names relative to the folder: no path walked again per file (about 15% fewer µs on 16,000 files)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            if any(size != -1 for _, size in files):
                return False
            continue
        try:
            for name, size in files:
                try:
                    if stat(name, dir_fd=fd).st_size != size:
                        return False
                except OSError:
                    if size != -1:
                        return False
        finally:
            os.close(fd)
    return True


def answer(argv: Sequence[str], started: float) -> int | None:
    """Print the last answer to this very call and return its exit code, when every input is unchanged; else None."""
    if not _eligible(argv):
        return None
    key = _key(argv)
    name = PREFIX + _digest(key)
    for venv in _candidates(argv):
        try:
            with open(f"{venv}/.uvextra/{name}", "rb") as f:
                entry: Any = marshal.load(f)
        except (OSError, EOFError, ValueError, TypeError):
            continue
        if not isinstance(entry, dict) or entry.get("key") != key:
            continue
        try:
            if not _unchanged(entry):
                return None
        except (TypeError, ValueError, KeyError):  # an entry of another shape: the whole check
            return None
        text = str(entry["out"])
        if entry.get("elapsed") is not None:  # --json: this call's own time, as the whole check reports its own
            import time

            head, tail = entry["elapsed"]
            text = f"{head}{_ELAPSED}{round(time.perf_counter() - started, 3)}{tail}"
        sys.stdout.write(text)
        sys.stdout.flush()
        return int(entry["code"])
    return None


# ------------------------------------------------------------------------------------------ writing an entry


class _Watched:
    """A text stream that remembers what was written through it (stdout: the words to replay; stderr: whether
    anything was said, which makes the call one not to replay)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.written: list[str] = []

    def write(self, text: str) -> int:
        self.written.append(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class Recorder:
    """What a check run reads, seen through Python's audit hook: files opened for reading, folders listed."""

    def __init__(self) -> None:
        self.opened: set[str] = set()
        self.listed: set[str] = set()
        self.report: tuple[Environment, Report, int] | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            if isinstance(path, int) or path is None:
                return
            if isinstance(mode, str):
                writes = any(c in mode for c in "wax+")
            else:
                writes = bool(int(flags or 0) & (os.O_WRONLY | os.O_RDWR))
            if not writes:
                self.opened.add(os.path.abspath(os.fsdecode(path)))
        elif event in ("os.listdir", "os.scandir"):
            path = args[0]
            if not isinstance(path, int):
                self.listed.add(os.path.abspath(os.fsdecode(path if path is not None else ".")))

    def done(self, env: Environment, report: Report, code: int) -> None:
        """The CLI's check finished with ``report`` (called by :func:`uvextra.cli.run`)."""
        self.report = (env, report, code)


def _module_files() -> list[str]:
    """The source of every module loaded outside the standard library: uvextra's own and what it uses."""
    import sysconfig

    std = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))
    out = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and not os.path.realpath(path).startswith(std):
            out.append(os.path.abspath(path))
    return out


def _record_files(site_dirs: Sequence[str]) -> list[tuple[str, tuple[tuple[str, int], ...]]]:
    """Every file each package's RECORD lists (bytecode aside, as the file check leaves it) with the size RECORD
    gives — after a clean check, each judged one is there of that size — or, where RECORD gives none, its size now
    (-1: absent); by folder."""
    from pathlib import Path

    from .core.installed import _NOT_PART, record_entries

    by_dir: dict[str, list[tuple[str, int]]] = {}
    for site in site_dirs:
        for dist_info in sorted(Path(site).glob("*.dist-info")):
            for rel, _, listed in record_entries(dist_info) or []:
                if rel.endswith(_NOT_PART):
                    continue
                full = os.path.normpath(rel if rel.startswith("/") else f"{site}/{rel}")
                folder, _, name = full.rpartition("/")
                if listed.isdigit():
                    size = int(listed)
                else:
                    try:
                        size = os.stat(full).st_size
                    except OSError:
                        size = -1
                by_dir.setdefault(folder, []).append((name, size))
    return [(folder, tuple(files)) for folder, files in by_dir.items()]


def write_entry(argv: Sequence[str], recorder: Recorder, out: _Watched, err: _Watched, key: tuple[Any, ...]) -> bool:
    """Write down this clean check's inputs and words in its venv; False when it is not one to replay (or the venv
    is read-only)."""
    if recorder.report is None or err.written:
        return False
    env, report, code = recorder.report
    if code != 0 or not report.clean or report.command != "check" or report.verified is not None:
        return False  # only a plain clean check (argparse takes `--verif` for --verify: the report says what ran)
    import time

    now = time.time()
    state_dir = os.path.abspath(env.state_dir)
    site_dirs = [os.path.abspath(p) for p in env.site_packages()]
    file_ids, dir_ids = _inputs(recorder, env, report, state_dir, site_dirs)
    if _racy(file_ids, dir_ids, now - _RACY_S, os.path.join(state_dir, "state.json")):
        return False
    text = "".join(out.written)
    elapsed = None
    if "--json" in argv:
        at = text.rfind(_ELAPSED)
        if at < 0:
            return False
        end = at + len(_ELAPSED)
        while end < len(text) and (text[end].isdigit() or text[end] in ".e-"):
            end += 1
        elapsed = (text[:at], text[end:])
    entry = {
        "key": key,
        "files": file_ids,
        "dirs": dir_ids,
        "record": _record_files(site_dirs),
        "out": text,
        "elapsed": elapsed,
        "code": code,
    }
    return _write(state_dir, PREFIX + _digest(key), marshal.dumps(entry))


def _inputs(
    recorder: Recorder, env: Environment, report: Report, state_dir: str, site_dirs: list[str]
) -> tuple[list[tuple[str, tuple[int, int, int, int] | None]], list[tuple[str, tuple[int, int] | None]]]:
    """The files (with their identity now, None: absent) and folders (listed) the answer depends on: what the run
    opened and listed, the code and interpreters that ran, each package's metadata files (a scan cache hit opens
    none of them), and ``pyproject.toml`` in every folder a project is looked for in. uvextra's own caches in the
    venv are left out (derived from the rest), except ``state.json`` (what the last switch recorded)."""
    from .core.installed import _SCANNED

    own = state_dir + os.sep
    state_file = os.path.join(state_dir, "state.json")
    files = set(recorder.opened) | set(_module_files()) | {sys.executable, os.path.abspath(env.python)}
    if report.uv:
        files.add(os.path.abspath(report.uv["path"]))
    for site in site_dirs:
        for name in os.listdir(site):
            if name.endswith(".dist-info"):
                files.update(f"{site}/{name}/{f}" for f in _SCANNED)
    for start in {os.getcwd(), os.path.abspath(report.project or os.getcwd())}:
        folder = start
        while True:
            files.add(os.path.join(folder, "pyproject.toml"))
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    files = {f for f in files if "__pycache__" not in f and (not f.startswith(own) or f == state_file)}
    listed = {d for d in recorder.listed | set(site_dirs) if d != state_dir and not d.startswith(own)}
    return [(f, _identity(f)) for f in sorted(files)], [(d, _folder_identity(d)) for d in sorted(listed)]


def _racy(
    file_ids: list[tuple[str, tuple[int, int, int, int] | None]],
    dir_ids: list[tuple[str, tuple[int, int] | None]],
    since: float,
    exempt: str,
) -> bool:
    """Whether an input changed so recently that a second change within the same clock tick would not move its
    mtime (``exempt``: a file that is only ever replaced by a rename, whose inode then changes)."""
    for path, ident in file_ids:
        if ident is not None and path != exempt and max(ident[2], ident[3]) / 1e9 >= since:
            return True
    return any(ident is not None and ident[1] / 1e9 >= since for _, ident in dir_ids)


def _write(state_dir: str, name: str, data: bytes) -> bool:
    """Atomically (a temporary file, then a rename), keeping at most :data:`MAX_ENTRIES`; False on any OSError."""
    path = os.path.join(state_dir, name)
    tmp = os.path.join(state_dir, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    try:
        entries = [e for e in os.scandir(state_dir) if e.name.startswith(PREFIX)]
        entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            os.unlink(old.path)
    except OSError:
        pass
    return True


def main(argv: Sequence[str] | None = None) -> None:
    """The ``uvextra`` console script (and ``python -m uvextra``): a repeated check answered from its last clean
    answer when nothing it read has changed, else the whole CLI (:func:`uvextra.cli.main`)."""
    import time

    started = time.perf_counter()
    args = list(sys.argv[1:] if argv is None else argv)
    if not _eligible(args):
        from .cli import main as cli_main

        cli_main(args)
        return
    try:
        code = answer(args, started)
    except (OSError, ValueError, TypeError, KeyError):  # an unreadable entry: the whole check
        code = None
    except KeyboardInterrupt:  # as the whole CLI says it
        print("uvextra: interrupted", file=sys.stderr)
        sys.exit(130)
    if code is not None:
        sys.exit(code)
    key = _key(args)
    recorder = Recorder()
    out, err = _Watched(sys.stdout), _Watched(sys.stderr)
    sys.stdout, sys.stderr = out, err
    from .cli import main as cli_main

    try:
        cli_main(args, on_done=recorder.done)
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
        try:
            write_entry(args, recorder, out, err, key)
        except (OSError, ValueError):  # never fails a check: the next call just runs it whole again
            pass
