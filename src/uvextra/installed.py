"""What is installed in the target venv, read from its ``.dist-info`` folders (no import of anything in it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .environment import Environment
from .redact import redact, secret_values

_HEADER_LINE = re.compile(r"([\x21-\x39\x3b-\x7e]*):[ \t]*(.*)", re.DOTALL)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")


class _Headers:
    """The header block of METADATA / WHEEL, read the way ``email``'s HeaderParser reads it (names are
    case-insensitive, a line starting with a space or tab continues the previous value, the block ends at the
    first empty or non-header line), at a fraction of its cost: it was a third of a scan's time."""

    def __init__(self, text: str) -> None:
        fields: dict[str, list[str]] = {}
        values: list[str] | None = None
        for found in _LINE.finditer(text):  # lazily: the body after the header block is never split
            raw = found.group()
            line = raw.rstrip("\r\n")
            if not line:
                break
            if line.startswith("From "):  # a unix envelope line, which email skips (with what continues it)
                values = None
                continue
            if line[0] in " \t":
                if values is not None:  # a continuation before any header is dropped, as email does
                    values[-1] += raw
                continue
            match = _HEADER_LINE.fullmatch(line)
            if match is None:
                break
            values = fields.setdefault(match.group(1).lower(), [])
            values.append(match.group(2) + raw[len(line):])
        self._fields = {k: [v.rstrip("\r\n") for v in vs] for k, vs in fields.items()}

    def get(self, name: str) -> str | None:
        values = self._fields.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[str] | None:
        return self._fields.get(name.lower())


@dataclass(frozen=True)
class Installed:
    """One installed distribution."""

    name: NormalizedName
    version: str
    dist_info: Path
    installer: str  # "uv", "pip", … ("" when unknown)
    source: str  # "index" | "editable" | "directory" | "archive" | "vcs"
    location: str | None  # for non-index sources: the path or URL (masked)
    wheel_tags: tuple[str, ...]
    requires: tuple[str, ...]  # raw Requires-Dist lines
    fingerprint: str  # sha256 of RECORD: changes whenever different files were installed

    def dependency_names(self) -> frozenset[str]:
        """Names this build requires unconditionally of extras (what uv.lock lists as its dependencies)."""
        return frozenset(n for n in map(_unconditional_name, self.requires) if n is not None)


@lru_cache(maxsize=16_384)
def _unconditional_name(line: str) -> str | None:
    """The name a Requires-Dist line requires regardless of extras; None for extras-only or unparsable lines.
    (Cached: the same lines come back at every check, and parsing them was a third of a first check's time.)"""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    if req.marker is not None and "extra" in str(req.marker):
        return None
    return canonicalize_name(req.name)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _source(dist_info: Path) -> tuple[str, str | None]:
    raw = _read(dist_info / "direct_url.json")
    if not raw:
        return "index", None
    try:
        data = json.loads(raw)
    except ValueError:
        return "archive", None
    if not isinstance(data, dict):  # a direct_url.json that is not an object tells nothing reliable
        return "archive", None
    url = str(data.get("url", ""))
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[bad": an unparsable URL is still a URL install
        return "archive", redact(url)
    location = str(Path(unquote(parts.path)).absolute()) if parts.scheme == "file" else redact(url)
    if "vcs_info" in data:
        return "vcs", location
    if "dir_info" in data:
        dir_info = data.get("dir_info")
        editable = isinstance(dir_info, dict) and bool(dir_info.get("editable"))
        return ("editable" if editable else "directory"), location
    return "archive", location


def read_dist_info(dist_info: Path) -> Installed | None:
    """One ``.dist-info`` folder, or None when it has no usable METADATA (a half-removed install)."""
    meta_text = _read(dist_info / "METADATA")
    if not meta_text:
        return None
    meta = _Headers(meta_text)
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        return None
    wheel = _Headers(_read(dist_info / "WHEEL"))
    source, location = _source(dist_info)
    try:
        record = (dist_info / "RECORD").read_bytes()
    except OSError:
        record = b""
    return Installed(
        name=canonicalize_name(name), version=version.strip(), dist_info=dist_info,
        installer=_read(dist_info / "INSTALLER").strip(), source=source, location=location,
        wheel_tags=tuple(wheel.get_all("Tag") or ()), requires=tuple(meta.get_all("Requires-Dist") or ()),
        fingerprint=hashlib.sha256(record).hexdigest(),
    )


# What scan() read per .dist-info folder, keyed by the identity of every file read_dist_info reads (inode, size,
# mtime and ctime in ns) and the secrets redaction depends on. A kernel scans the same venv after every switch and
# check; reading and parsing every folder again was most of a check's time on a large env. A reinstall (new
# inodes), a rewrite or a removal changes the key, so a changed folder is always read again.
_SCANNED = ("METADATA", "WHEEL", "RECORD", "INSTALLER", "direct_url.json")
_SCAN_CACHE: dict[str, tuple[tuple[object, ...], Installed | None]] = {}
_SCAN_CACHE_MAX = 50_000


def _identity(folder: str, secrets: tuple[str, ...]) -> tuple[object, ...]:
    out: list[object] = [secrets]
    for name in _SCANNED:
        try:
            st = os.stat(f"{folder}/{name}")
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def scan(env: Environment) -> dict[NormalizedName, Installed]:
    """Every distribution installed in ``env``'s site-packages, by normalized name."""
    found: dict[NormalizedName, Installed] = {}
    secrets = tuple(secret_values())
    if len(_SCAN_CACHE) > _SCAN_CACHE_MAX:
        _SCAN_CACHE.clear()
    for site in env.site_packages():
        for dist_info in sorted(site.glob("*.dist-info")):
            folder = str(dist_info)
            key = _identity(folder, secrets)
            hit = _SCAN_CACHE.get(folder)
            if hit is not None and hit[0] == key:
                dist = hit[1]
            else:
                dist = read_dist_info(dist_info)
                _SCAN_CACHE[folder] = (key, dist)
            if dist is not None and dist.name not in found:
                found[dist.name] = dist
    return found
