"""uvextra's caches, in one place: what a check would otherwise recompute in every new process.

On disk, in the target venv's ``.uvextra/exports/`` folder, every entry is content-addressed: its file name is a
digest of everything the cached value depends on (texts, versions, file identities; secrets by digest only), so
a changed input is a new name and an entry is never invalidated, only left behind. Entries are written atomically
(a temporary file in the same folder, then a rename: a reader sees the whole old entry or the whole new one), the
folder is bounded (:data:`MAX_ENTRIES`; each write removes the least recently used beyond that) and nothing here
ever fails a check: a read-only venv or a broken entry just means computing again.

What is kept there (kinds): ``export`` (uv's pylock export of the lock for a selection), ``wanted`` (what that
export selects on this interpreter), ``uvlock`` (the parts of uv.lock a check reads), ``interp`` (the target
interpreter's marker environment and tags). Besides them, ``state.json`` and ``scan.json`` (one per venv, not
content-addressed) use :func:`atomic_write`; :class:`Memo` keeps parsed values in memory for a kernel's repeated
checks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_K = TypeVar("_K")

FOLDER = "exports"  # inside the venv's .uvextra
MAX_ENTRIES = 64  # per venv: a few selections × a few lock edits; older ones are pruned
_TOUCH_AFTER_S = 3600.0  # a hit refreshes an entry's mtime (its age for pruning) at most this often
_STALE_TMP_S = 600.0  # temporary files older than this were left by a killed writer


def _sha256() -> Callable[..., Any]:  # a hashlib-style constructor
    """sha256 without importing hashlib, whose OpenSSL start-up is a few ms of every CLI call: the interpreter's
    built-in implementation (the same digest), else hashlib's."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]  # CPython >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found, unused-ignore]  # CPython <= 3.11
        except ImportError:
            from hashlib import sha256
    constructor: Callable[..., Any] = sha256
    return constructor


sha256 = _sha256()


_LARGE = 1 << 16  # from this size on, OpenSSL's sha256 (hardware-assisted) pays for hashlib's import at once


def digest(*parts: str | bytes) -> str:
    """A short hex digest of ``parts`` (each one delimited, so ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    data = [part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass") for part in parts]
    if sum(map(len, data)) >= _LARGE:
        import hashlib

        h = hashlib.sha256()
    else:
        h = sha256()
    for part in data:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:32]


def atomic_write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename; False on any OSError
    (a read-only venv), with nothing half-written left behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return True
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return False


def entry(state_dir: Path, kind: str, *parts: str | bytes, suffix: str = ".json") -> Path:
    """The path of the entry of ``kind`` for ``parts`` in ``state_dir/exports`` (it may not exist)."""
    return state_dir / FOLDER / f"{kind}-{digest(*parts)}{suffix}"


def read_text(path: Path) -> str | None:
    """The entry's text, or None when it is absent or unreadable. A hit counts as a use for pruning."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    _touch(path)
    return text


def read_json(path: Path, load: Callable[[Any], _T]) -> _T | None:
    """``load`` of the entry's JSON, or None when it is absent, unreadable or not what ``load`` expects (an entry
    written by another uvextra version)."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return load(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def write_text(path: Path, text: str, *, keep: int = MAX_ENTRIES) -> bool:
    """Store an entry atomically, then prune its folder to the ``keep`` most recently used entries."""
    if not atomic_write(path, text):
        return False
    prune(path.parent, keep=keep, spare=path.name)
    return True


def write_json(path: Path, value: object, *, keep: int = MAX_ENTRIES) -> bool:
    if path.exists():  # content-addressed: an entry that exists already holds this value
        return True
    return write_text(path, json.dumps(value), keep=keep)


def prune(folder: Path, *, keep: int = MAX_ENTRIES, spare: str = "") -> list[str]:
    """Remove all but the ``keep`` most recently used entries of ``folder`` (never ``spare``), and temporary files
    a killed writer left; the names removed."""
    now = time.time()
    entries: list[tuple[float, str]] = []
    removed: list[str] = []
    try:
        with os.scandir(folder) as it:
            for item in it:
                try:
                    mtime = item.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if item.name.startswith("."):
                    if item.name.endswith(".tmp") and now - mtime > _STALE_TMP_S:
                        _unlink(folder / item.name, removed)
                    continue
                if item.is_file(follow_symlinks=False) and item.name != spare:
                    entries.append((mtime, item.name))
    except OSError:
        return removed
    excess = len(entries) + (1 if spare else 0) - keep
    for _mtime, name in sorted(entries)[: max(excess, 0)]:
        _unlink(folder / name, removed)
    return removed


def _unlink(path: Path, removed: list[str]) -> None:
    try:
        path.unlink()
        removed.append(path.name)
    except OSError:
        pass


def _touch(path: Path) -> None:
    try:
        if time.time() - path.stat().st_mtime > _TOUCH_AFTER_S:
            os.utime(path)
    except OSError:
        pass  # read-only: the entry just ages


class Memo(Generic[_K, _T]):
    """A small in-memory map for values parsed from large texts (a kernel checks the same lock over and over):
    at most ``size`` entries, the oldest inserted dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[_K, _T] = {}

    def get(self, key: _K, compute: Callable[[], _T]) -> _T:
        if key in self._items:
            return self._items[key]
        value = compute()
        while len(self._items) >= self.size:
            del self._items[next(iter(self._items))]
        self._items[key] = value
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> Iterable[_K]:
        return self._items.keys()
