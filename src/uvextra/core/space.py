"""Disk space before a sync: what uv is about to write, on which filesystem, against what is free there.

A CUDA torch is ~3 GB of wheels and more unpacked; uv that runs out of space half-way leaves packages half-written
(see ``installed.check_files``). So before a switch, the lock's wheel sizes (and, for a wheel that lies on this
machine, its exact unpacked size read from the zip's directory) say what it needs:

* uv unpacks a wheel it does not hold yet into its cache (``wheels-v*/…/NAME/VERSION-TAGS``): the cache's
  filesystem needs the unpacked size of every wheel not cached;
* it then hard-links the files into the venv when both are on one filesystem (nearly free), and copies them when
  they are not: the venv's filesystem then needs the unpacked size of every wheel installed.

A shortfall that is certain (even the wheels' own sizes do not fit) refuses the switch before anything changes; one
that only the estimate of the unpacked size predicts is a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .lock import Wanted

#: Unpacked size / wheel size where the wheel cannot be read here (remote). Measured: torch-2.13.0+cpu's wheel is
#: 192 MB, its files 699 MB (3.6x); nvidia-* wheels unpack to about 1.5-2x. An estimate only: it never refuses.
UNPACK_ESTIMATE = 2.5


@dataclass(frozen=True)
class Need:
    """What one filesystem must take."""

    mount: Path
    certain: int  # bytes that must fit for sure (the wheels' unpacked sizes where known, else their sizes)
    estimate: int  # bytes uv will most likely write
    free: int
    why: str  # "uv's cache" / "the venv" / "uv's cache and the venv"

    @property
    def refused(self) -> bool:
        return self.certain > self.free

    @property
    def tight(self) -> bool:
        return self.estimate > self.free


def human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # unreachable


def _local_path(url: str | None) -> Path | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(url) if not parts.scheme and url.startswith("/") else None


def _unpacked(path: Path) -> int | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return sum(info.file_size for info in zf.infolist())
    except (OSError, zipfile.BadZipFile):
        return None


def wheel_bytes(want: Wanted) -> tuple[int, int] | None:
    """(certain, estimated) bytes this wheel's files take unpacked; None when nothing says how big it is."""
    local = _local_path(want.wheel_url)
    if local is not None and local.is_file():
        size = _unpacked(local)
        if size is not None:
            return size, size
        return local.stat().st_size, int(local.stat().st_size * UNPACK_ESTIMATE)
    if want.wheel_size:
        return want.wheel_size, int(want.wheel_size * UNPACK_ESTIMATE)
    return None


def cached(cache_dir: Path, want: Wanted) -> bool:
    """Whether uv's cache already holds this wheel unpacked (``wheels-v*/<kind>/<id>/NAME/VERSION-TAGS``)."""
    if not want.wheel or not want.wheel.endswith(".whl"):
        return False
    stem = want.wheel[: -len(".whl")]
    rest = stem.split("-", 1)[1] if "-" in stem else stem
    return any(cache_dir.glob(f"wheels-v*/*/*/{want.name}/{rest}")) or any(
        cache_dir.glob(f"wheels-v*/*/*/{want.name}/{rest}.rev")
    )


def mount_of(path: Path) -> Path:
    """The mount point of the filesystem that holds ``path`` (its nearest existing folder's)."""
    path = _existing(path)
    try:
        dev = path.stat().st_dev
        while path != path.parent and path.parent.stat().st_dev == dev:
            path = path.parent
    except OSError:
        pass
    return path


def _existing(path: Path) -> Path:
    """``path``, or its nearest folder that exists (what a venv or cache not made yet will be written into)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def needs(to_install: Iterable[Wanted], venv: Path, cache_dir: Path) -> list[Need]:
    """What each filesystem must take for ``to_install`` (only the filesystems that must take something)."""
    venv_at, cache_at = _existing(venv), _existing(cache_dir)
    same = venv_at.stat().st_dev == cache_at.stat().st_dev
    link_mode = os.environ.get("UV_LINK_MODE", "").lower()
    copies = not same or link_mode in ("copy", "clone")
    by_mount: dict[Path, list[int]] = {}
    whys: dict[Path, set[str]] = {}

    def add(where: Path, certain: int, estimate: int, why: str) -> None:
        mount = mount_of(where)
        total = by_mount.setdefault(mount, [0, 0])
        total[0] += certain
        total[1] += estimate
        whys.setdefault(mount, set()).add(why)

    for want in to_install:
        size = wheel_bytes(want)
        if size is None:
            continue
        if not cached(cache_dir, want):
            add(cache_at, *size, "uv's cache")
        if copies:
            add(venv_at, *size, "the venv")
    out = []
    for mount, (certain, estimate) in by_mount.items():
        try:
            st = os.statvfs(mount)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        out.append(Need(mount, certain, estimate, free, " and ".join(sorted(whys[mount]))))
    return out


def to_install(
    wanted: Mapping[str, Wanted], installed_versions: Mapping[str, str], reinstall: Iterable[str] = ()
) -> list[Wanted]:
    """The wheels a sync will install: those not installed at the locked version, and those reinstalled."""
    again = set(reinstall)
    return [w for name, w in sorted(wanted.items()) if name in again or installed_versions.get(name) != w.version]
