"""What is installed in the target venv, read from its ``.dist-info`` folders (no import of anything in it).

The one reader of ``.dist-info`` folders in uvextra (the kernel's stale-module check reads names and versions
through :func:`name_and_version`). METADATA and WHEEL are RFC 822 headers, read by :func:`read_headers` exactly as
``email``'s compat32 ``HeaderParser`` reads them, without importing ``email`` (a tenth of a CLI call's start-up).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import cache as _cache
from .environment import Environment
from .names import canonicalize_name
from .redact import redact, secret_values

if TYPE_CHECKING:
    from collections.abc import Mapping

    from packaging.utils import NormalizedName

# The header name characters of email's feedparser (headerRE): printable ASCII but space and colon.
_NAME_CHARS = frozenset(map(chr, [*range(0o41, 0o72), *range(0o73, 0o177)]))


def read_headers(text: str) -> dict[str, list[str]]:
    """The header block of ``text``: lower-cased field name -> its values in order.

    What ``email.parser.HeaderParser().parsestr(text, headersonly=True)`` (policy compat32) gives: lines end at
    ``\\r\\n``, ``\\r`` or ``\\n``; the block ends at the first line that is not a header (an empty one before the
    body); a value keeps its continuation lines (with their line breaks) and loses the blanks after the colon and
    the final line break; an envelope ``From `` line and a line with no field name are skipped.
    """
    block: list[str] = []
    for line in io.StringIO(text, newline=""):  # lazily: the body after the block is never split
        colon = line.find(":")
        if not (
            line[:1] in (" ", "\t")
            or line.startswith("From ")
            or (colon >= 0 and all(c in _NAME_CHARS for c in line[:colon]))
        ):
            break
        block.append(line)
    out: dict[str, list[str]] = {}
    current: list[str] = []  # the raw lines of the header being read

    def close() -> None:
        name, first = current[0].split(":", 1)
        out.setdefault(name.lower(), []).append((first.lstrip(" \t") + "".join(current[1:])).rstrip("\r\n"))
        current.clear()

    for lineno, line in enumerate(block):
        if line[0] in " \t":
            if current:
                current.append(line)
            continue  # a continuation with no header before it is ignored
        if current:
            close()
        if line.startswith("From "):
            if lineno and lineno == len(block) - 1:
                break  # probably the body's first line
            continue  # the envelope line, or a misplaced one
        if line.find(":") == 0:
            continue  # no field name
        current.append(line)
    if current:
        close()
    return out


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


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

    def dependency_names(self, marker_env: Mapping[str, str] | None = None) -> frozenset[str]:
        """Names this build requires unconditionally of extras (what uv.lock lists as its dependencies); with the
        target's ``marker_env``, only those whose environment marker holds there (``importlib-metadata;
        python_version < "3.10"`` is no dependency on 3.11, and uv.lock leaves it out)."""
        names = set()
        for line in self.requires:
            parsed = _unconditional(line)
            if parsed is not None and (marker_env is None or marker_holds(parsed[1], marker_env)):
                names.add(parsed[0])
        return frozenset(names)


@lru_cache(maxsize=16_384)
def _unconditional(line: str) -> tuple[str, str] | None:
    """(name, marker text or "") a Requires-Dist line requires regardless of extras; None for extras-only or
    unparsable lines. (Cached: the same lines come back at every check, and parsing them was a third of a first
    check's time.)"""
    from packaging.requirements import InvalidRequirement, Requirement  # only for lines not seen yet

    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    if req.marker is not None and "extra" in str(req.marker):
        return None
    return canonicalize_name(req.name), "" if req.marker is None else str(req.marker)


@lru_cache(maxsize=4_096)
def _marker(text: str) -> Any:
    from packaging.markers import InvalidMarker, Marker

    try:
        return Marker(text)
    except InvalidMarker:
        return None


def marker_holds(text: str, marker_env: Mapping[str, str]) -> bool:
    """Whether an environment marker (a Requires-Dist's, or uv.lock's) holds for the target; "" and an unparsable
    marker count as holding (no evidence is drawn from what cannot be read)."""
    if not text:
        return True
    marker = _marker(text)
    if marker is None:
        return True
    try:
        return bool(marker.evaluate({**marker_env, "extra": ""}))
    except Exception:  # noqa: BLE001 - an undefined variable in an odd marker: no evidence either way
        return True


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
    meta = read_headers(meta_text)
    name, version = _first(meta, "name"), _first(meta, "version")
    if not name or not version:
        return None
    wheel = read_headers(_read(dist_info / "WHEEL"))
    source, location = _source(dist_info)
    try:
        record = (dist_info / "RECORD").read_bytes()
    except OSError:
        record = b""
    return Installed(
        name=canonicalize_name(name),
        version=version.strip(),
        dist_info=dist_info,
        installer=_read(dist_info / "INSTALLER").strip(),
        source=source,
        location=location,
        wheel_tags=tuple(wheel.get("tag") or ()),
        requires=tuple(meta.get("requires-dist") or ()),
        fingerprint=_fingerprint(record),
    )


def _fingerprint(record: bytes) -> str:
    import hashlib  # OpenSSL's sha256: a RECORD can be a few MB (torch); only a folder not seen before is hashed

    return hashlib.sha256(record).hexdigest()


def name_and_version(dist_info: Path) -> tuple[NormalizedName, str] | None:
    """The normalized name and the version a ``.dist-info`` folder's METADATA gives; None without both."""
    try:
        text = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    meta = read_headers(text)
    name, version = _first(meta, "name"), _first(meta, "version")
    if not name or not version:
        return None
    return canonicalize_name(name), version.strip()


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


_DISK_CACHE = "scan.json"


def _secrets_key(secrets: tuple[str, ...]) -> str:
    return str(_cache.sha256("\0".join(secrets).encode("utf-8", "surrogatepass")).hexdigest())


def _load_disk(env: Environment, secrets: tuple[str, ...]) -> dict[str, tuple[list[object], Installed | None]]:
    """What an earlier process scanned in this venv (empty when absent, unreadable, or made with other secrets)."""
    try:
        data = json.loads((env.state_dir / _DISK_CACHE).read_text(encoding="utf-8"))
        if data.get("secrets") != _secrets_key(secrets):
            return {}
        out: dict[str, tuple[list[object], Installed | None]] = {}
        for folder, (ident, fields) in data["folders"].items():
            dist = (
                None
                if fields is None
                else Installed(
                    **{
                        **fields,
                        "dist_info": Path(fields["dist_info"]),
                        "wheel_tags": tuple(fields["wheel_tags"]),
                        "requires": tuple(fields["requires"]),
                    }
                )
            )
            out[folder] = (ident, dist)
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save_disk(env: Environment, secrets: tuple[str, ...], seen: dict[str, tuple[object, Installed | None]]) -> None:
    folders = {
        f: (ident, None if d is None else {**asdict(d), "dist_info": str(d.dist_info)})
        for f, (ident, d) in seen.items()
    }
    # a read-only venv just means no cache
    _cache.atomic_write(env.state_dir / _DISK_CACHE, json.dumps({"secrets": _secrets_key(secrets), "folders": folders}))


def _jsonable(ident: tuple[object, ...]) -> list[object]:
    return [list(x) if isinstance(x, tuple) else x for x in ident]


def scan(env: Environment) -> dict[str, Installed]:
    """Every distribution installed in ``env``'s site-packages, by normalized name."""
    found: dict[str, Installed] = {}
    secrets = tuple(secret_values())
    if len(_SCAN_CACHE) > _SCAN_CACHE_MAX:
        _SCAN_CACHE.clear()
    disk: dict[str, tuple[list[object], Installed | None]] | None = None
    seen: dict[str, tuple[object, Installed | None]] = {}
    changed = False
    for site in env.site_packages():
        # by name, as Path objects order siblings on POSIX (comparing Paths was a fifth of a large scan)
        for dist_info in sorted(site.glob("*.dist-info"), key=lambda path: path.name):
            folder = str(dist_info)
            key = _identity(folder, secrets)
            hit = _SCAN_CACHE.get(folder)
            if hit is not None and hit[0] == key:
                dist = hit[1]
            else:
                if disk is None:
                    disk = _load_disk(env, secrets)
                stored = disk.get(folder)
                if stored is not None and stored[0] == _jsonable(key[1:]):
                    dist = stored[1]
                else:
                    dist = read_dist_info(dist_info)
                    changed = True
                _SCAN_CACHE[folder] = (key, dist)
            seen[folder] = (_jsonable(key[1:]), dist)
            if dist is not None and dist.name not in found:
                found[dist.name] = dist
    if changed or (disk is not None and set(disk) != set(seen)):
        _save_disk(env, secrets, seen)
    return found


# ---------------------------------------------------------------------------------------------- files on disk
# uv is not crash-atomic per package: it links a wheel's files (the dist-info's METADATA, WHEEL and the wheel's own
# RECORD first), then writes INSTALLER, and rewrites RECORD last. A kill -9 or a full disk in between leaves a
# dist-info that every metadata reader (uv's included) takes for a whole install (astral-sh/uv#16867). So every
# package a check judges is held against its RECORD: each file there, of the size RECORD gives.

#: What an installer may list in RECORD that is no part of the install: bytecode it compiled (a missing .pyc is
#: recompiled on import) and RECORD's own signature files.
_NOT_PART = (".pyc", "/RECORD.jws", "/RECORD.p7s")


@dataclass(frozen=True)
class FileCheck:
    """One distribution's files against its RECORD."""

    listed: int  # files RECORD lists (bytecode left out)
    missing: int
    wrong_size: int
    examples: tuple[str, ...]  # a few of the missing or wrong files, relative to site-packages
    no_record: bool = False  # no readable RECORD: nothing to check against
    no_installer: bool = False  # no INSTALLER: the installer did not get to the end of this package
    hashes_checked: int = 0  # --verify: files whose sha256 was compared with RECORD's
    wrong_hash: int = 0

    @property
    def broken(self) -> bool:
        return bool(self.missing or self.wrong_size or self.wrong_hash)

    def describe(self) -> str:
        """In words: "8,958 of 12,248 files missing — an install that did not finish"."""
        parts = []
        if self.missing:
            parts.append(f"{self.missing:,} of {self.listed:,} files missing")
        if self.wrong_size:
            parts.append(f"{self.wrong_size:,} of another size than RECORD says")
        if self.wrong_hash:
            parts.append(f"{self.wrong_hash:,} of {self.hashes_checked:,} with another sha256 than RECORD says")
        why = (
            "an install that did not finish (no INSTALLER: it was killed, or the disk filled up)"
            if self.no_installer
            else "files were removed or overwritten after the install"
        )
        shown = ", ".join(self.examples[:3])
        return f"{'; '.join(parts)} — {why}" + (f" (e.g. {shown})" if shown else "")


def record_entries(dist_info: Path) -> list[tuple[str, str, str]] | None:
    """RECORD's rows (path, hash, size), or None without a readable RECORD."""
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rows: list[tuple[str, str, str]] = []
    quoted: list[str] = []
    for line in text.splitlines():
        if '"' in line:  # a path with a comma or a quote: CSV quoting (rare; the csv module reads those)
            quoted.append(line)
            continue
        parts = line.rsplit(",", 2)
        if parts[0]:
            rows.append((parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", ""))
    if quoted:
        import csv

        rows += [
            (r[0], r[1] if len(r) > 1 else "", r[2] if len(r) > 2 else "") for r in csv.reader(quoted) if r and r[0]
        ]
    return rows


def record_paths(dist_info: Path) -> list[str]:
    """The paths RECORD lists, in its order ([] without a readable RECORD): the one RECORD reader's rows, for the
    stack check (which files a companion ships) and the kernel's stale check (which distribution owns a file)."""
    return [path for path, _digest, _size in record_entries(dist_info) or ()]


# A kernel checks the same packages again and again: RECORD's rows, grouped by folder, are kept per RECORD digest.
_GROUPED: dict[tuple[str, str], tuple[int, dict[str, list[tuple[str, str, str]]]] | None] = {}


def _grouped(dist: Installed) -> tuple[int, dict[str, list[tuple[str, str, str]]]] | None:
    """(files listed, {folder: [(file name, hash, size)]}) of what RECORD lists as part of the install."""
    key = (str(dist.dist_info), dist.fingerprint)
    if key in _GROUPED:
        return _GROUPED[key]
    rows = record_entries(dist.dist_info)
    if rows is None:
        return None
    site = str(dist.dist_info.parent)
    by_dir: dict[str, list[tuple[str, str, str]]] = {}
    listed = 0
    for path, digest, size in rows:
        if path.endswith(_NOT_PART) or (
            path.count("/") == 1 and path.endswith((".dist-info/RECORD", ".dist-info/INSTALLER"))
        ):
            continue  # RECORD is being read; INSTALLER has its own finding (no_installer)
        listed += 1
        full = path if path.startswith("/") else f"{site}/{path}"
        folder, _, name = full.rpartition("/")
        by_dir.setdefault(folder, []).append((name, digest, size))
    if len(_GROUPED) > 4096:
        _GROUPED.clear()
    _GROUPED[key] = (listed, by_dir)
    return _GROUPED[key]


def check_files(dist: Installed, *, verify: bool = False) -> FileCheck:
    """Every file ``dist``'s RECORD lists, held against the disk: there, of RECORD's size (and, with ``verify``, of
    its sha256 — which reads every byte: gigabytes for torch). One ``stat`` per file: about 5 µs each, 100 ms for
    the 21,000 files of a CPU torch env (measured; stat by folder descriptor was no faster)."""
    grouped = _grouped(dist)
    no_installer = not os.path.isfile(f"{dist.dist_info}/INSTALLER")
    if grouped is None:
        return FileCheck(0, 0, 0, (), no_record=True, no_installer=no_installer)
    listed, by_dir = grouped
    stat = os.stat
    missing = wrong_size = hashes_checked = wrong_hash = 0
    examples: list[str] = []
    site = str(dist.dist_info.parent)
    for folder, files in by_dir.items():
        for name, digest, size in files:
            full = f"{folder}/{name}"
            try:
                st = stat(full)
            except OSError:
                missing += 1
            else:
                if size and size.isdigit() and st.st_size != int(size):
                    wrong_size += 1
                elif verify and digest.startswith("sha256="):
                    hashes_checked += 1
                    if _urlsafe_sha256(full) == digest[len("sha256=") :].rstrip("="):
                        continue
                    wrong_hash += 1
                else:
                    continue
            if len(examples) < 3:
                examples.append(os.path.relpath(full, site))
    return FileCheck(
        listed,
        missing,
        wrong_size,
        tuple(examples),
        no_installer=no_installer,
        hashes_checked=hashes_checked,
        wrong_hash=wrong_hash,
    )


def _urlsafe_sha256(path: str) -> str:
    import base64
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return ""
    return base64.urlsafe_b64encode(h.digest()).decode("ascii").rstrip("=")
