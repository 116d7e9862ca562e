"""What the lock wants for the selected extras on this interpreter: uv's own PEP 751 export, read with packaging.

``uv.lock`` itself is read only for what the export lacks: each package's dependency list (evidence for a build
check without a provenance record) and whether a name+version is locked from more than one source.

Every uv that can export is read: uv <= 0.9.x writes ``hashes = {}`` for a wheel from a flat (find-links) index,
which ``packaging.pylock`` rejects. Such a wheel's sha256 then comes from ``uv.lock``, else from the wheel file itself
when it lies on this machine (what newer uv exports); with neither, the wheel is read without a hash and
``Wanted.no_hash`` says why, so the build check can say that this build cannot be verified.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from . import cache as _cache
from .environment import Environment, interpreter_info
from .errors import UvextraError
from .names import canonicalize_name
from .project import Project
from .redact import redact, secret_values
from .uv import MIN_EXPORT, Uv, capture_uv

if TYPE_CHECKING:
    from packaging.tags import Tag
    from packaging.utils import NormalizedName

# packaging.pylock and packaging.tags are imported only where a lock must really be parsed and a wheel ranked:
# a check whose inputs did not change reads the selection from the venv's cache and needs neither.

_T = TypeVar("_T")
# Parsed locks by their exact text: a kernel checks the same lock over and over, and parsing it (pure-Python TOML,
# packaging's validation) is most of a check's cost on a large lock. The key holds the whole text and the secrets
# redaction depends on, so any change to either parses again.
_PARSED: _cache.Memo[tuple[object, ...], Any] = _cache.Memo(16)


def _parsed(key: tuple[object, ...], parse: Callable[[], _T]) -> _T:
    value: _T = _PARSED.get((*key, tuple(secret_values())), parse)
    return value


@cache
def _parsed_tags(tags: tuple[str, ...]) -> list[Tag]:  # most preferred first
    from packaging.tags import parse_tag

    return [t for s in tags for t in parse_tag(s)]


class NeedsDownload(UvextraError):
    """uv's pylock export would have to download wheels (to hash them): read the lock another way."""


@dataclass(frozen=True)
class Wanted:
    """One package as the lock wants it installed here."""

    name: NormalizedName
    version: str  # exact, local part included
    kind: str  # "index" | "editable" | "directory" | "archive" | "vcs" | "sdist"
    index: str | None = None  # registry URL (credentials masked) for index packages
    location: str | None = None  # path or URL for non-index sources (masked)
    wheel: str | None = None  # file name of the wheel that fits this interpreter
    wheel_hash: str | None = None  # its sha256
    wheel_tags: tuple[str, ...] = ()
    no_hash: str | None = None  # why the lock gives no sha256 for this wheel (None: it does, or not an index wheel)
    wheel_url: str | None = None  # where uv gets the wheel (masked): a file:// URL or path lets its size be read
    wheel_size: int | None = None  # its size in bytes, as the lock records it (None: the index published none)

    @property
    def source_label(self) -> str:
        if self.kind == "index":
            return f"index {self.index}"
        return f"{self.kind} {self.location}" if self.location else self.kind

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.kind,
            "index": self.index,
            "location": self.location,
            "wheel": self.wheel,
            "sha256": self.wheel_hash,
            **({"no_hash": self.no_hash} if self.no_hash else {}),
        }


@dataclass(frozen=True)
class LockInfo:
    """Per (name, version): the sources uv.lock records and each source's dependency names."""

    sources: dict[tuple[str, str], list[str]]  # (name, version) -> source keys
    dependencies: dict[tuple[str, str, str], frozenset[str]]  # (name, version, source key) -> dependency names
    # names the project rewrites in every package's requirements ([tool.uv] override-dependencies and
    # exclude-dependencies, in uv.lock's [manifest]): their presence in a build's Requires-Dist says nothing
    adjusted: frozenset[str] = frozenset()
    _keys: dict[tuple[str, str | None], str] = field(default_factory=dict, compare=False, repr=False)

    def ambiguous(self, name: str, version: str) -> bool:
        """True when the same name and version are locked from two sources: their builds may differ."""
        return len(self.sources.get((name, version), ())) > 1

    def deps_for(self, wanted: Wanted, marker_env: Mapping[str, str] | None = None) -> frozenset[str] | None:
        """The names the lock's entry for ``wanted`` depends on; with the target's ``marker_env``, only those whose
        uv.lock marker holds there."""
        key = self._keys.get((wanted.kind, wanted.index))  # one redaction per index URL, not one per package
        if key is None:
            key = self._keys[(wanted.kind, wanted.index)] = _source_key_for(wanted)
        entries = self.dependencies.get((wanted.name, wanted.version, key))
        if entries is None:
            return None
        from .installed import marker_holds

        # uv's conflict markers (``extra == 'extra-3-moo-cpu'``) say which backend, not which platform: they hold
        return frozenset(
            name
            for name, _, marker in (e.partition(";") for e in entries)
            if marker_env is None or "extra" in marker or marker_holds(marker, marker_env)
        )


def _norm_url(url: str) -> str:
    return redact(url).rstrip("/")


def _source_key_for(wanted: Wanted) -> str:
    if wanted.kind == "index" and wanted.index:
        return "registry:" + _norm_url(wanted.index)
    return "other"


def read_uv_lock(project: Project, env: Environment | None = None, *, store: bool = True) -> LockInfo:
    """Dependencies and sources from ``uv.lock``; a malformed file is a one-line error with its line.

    With ``env``, the parsed result is also kept on disk in the venv (keyed by the lock's content), so a new
    process (every CLI call) does not parse a large lock again; ``store=False`` only reads that copy.
    """
    path = project.lockfile
    try:
        text = path.read_text(encoding="utf-8")
        disk = _disk_cache(env, "uvlock", _LOCKINFO_FORMAT, text, str(path)) if env is not None else None
        info = _parsed(
            ("uv.lock", str(path), text),
            lambda: _load_from_disk(disk, _lockinfo_from_json) or _parse_uv_lock(path, text),
        )
        if disk is not None and store:
            _cache.write_json(disk, _lockinfo_to_json(info))
        return info
    except FileNotFoundError:
        raise UvextraError(
            f"no uv.lock in {project.lock_root}; run `uv lock --project {project.lock_root}`, then run uvextra again"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UvextraError(f"{path}: invalid TOML: {exc}; regenerate it with `uv lock`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UvextraError(f"cannot read {path}: {exc}") from None


_LOCKINFO_FORMAT = "lockinfo-3"  # in the disk cache's key: entries of an older layout are never read


def _parse_uv_lock(path: Path, text: str) -> LockInfo:
    data = tomllib.loads(text)
    norm_url = cache(_norm_url)  # one redaction per index URL, not one per package
    sources: dict[tuple[str, str], list[str]] = {}
    deps: dict[tuple[str, str, str], frozenset[str]] = {}
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise UvextraError(f"{path}: [[package]] is not a list; regenerate it with `uv lock`")
    for pkg in packages:
        if not isinstance(pkg, dict) or "name" not in pkg:
            continue
        name = canonicalize_name(str(pkg["name"]))
        version = str(pkg.get("version", ""))
        src = pkg.get("source") or {}
        key = "registry:" + norm_url(str(src["registry"])) if isinstance(src, dict) and "registry" in src else "other"
        sources.setdefault((name, version), []).append(key)
        dep_list = pkg.get("dependencies")
        names = frozenset(  # "name", or "name;marker" where uv.lock gives the dependency a marker
            canonicalize_name(str(d["name"])) + (f";{d['marker']}" if isinstance(d.get("marker"), str) else "")
            for d in (dep_list if isinstance(dep_list, list) else [])
            if isinstance(d, dict) and "name" in d
        )
        deps[(name, version, key)] = names
    manifest = data.get("manifest")
    adjusted: set[str] = set()
    if isinstance(manifest, dict):
        for entry in [*(manifest.get("overrides") or []), *(manifest.get("excludes") or [])]:
            raw = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(raw, str):
                adjusted.add(canonicalize_name(raw))
    return LockInfo(sources=sources, dependencies=deps, adjusted=frozenset(adjusted))


def _lockinfo_to_json(info: LockInfo) -> object:
    return {
        "sources": [[n, v, keys] for (n, v), keys in info.sources.items()],
        "dependencies": [[n, v, k, sorted(d)] for (n, v, k), d in info.dependencies.items()],
        "adjusted": sorted(info.adjusted),
    }


def _lockinfo_from_json(data: Any) -> LockInfo:
    return LockInfo(
        sources={(n, v): list(keys) for n, v, keys in data["sources"]},
        dependencies={(n, v, k): frozenset(d) for n, v, k, d in data["dependencies"]},
        adjusted=frozenset(data["adjusted"]),
    )


def _disk_cache(env: Environment, kind: str, *parts: str) -> Path:
    """A cache entry in the venv whose name covers everything the cached value depends on (secrets by hash only)."""
    return _cache.entry(env.state_dir, kind, *parts, *secret_values())


def _load_from_disk(path: Path | None, load: Callable[[Any], _T]) -> _T | None:
    return None if path is None else _cache.read_json(path, load)  # absent, or another uvextra's: compute again


def _export_entry(project: Project, env: Environment, extras: Sequence[str], uv: Uv, frozen: bool) -> Path:
    parts: list[bytes | str] = []
    for part in (project.lockfile, project.pyproject):
        try:
            parts.append(part.read_bytes())
        except OSError:
            parts.append(b"-")
    parts.append(repr((project.selection_args(sorted(extras)), project.uv_project_args(), str(uv.version), frozen)))
    return _cache.entry(env.state_dir, "export", *parts, suffix=".toml")


def export_pylock(project: Project, env: Environment, uv: Uv, extras: Sequence[str], *, frozen: bool = True) -> str:
    """``uv export --format pylock.toml`` for ``extras``, cached in the venv by the lock's content."""
    if uv.version < MIN_EXPORT:
        raise UvextraError(
            f"uv {uv.version} has no `uv export --format pylock.toml` (added in uv {MIN_EXPORT}); "
            "install a newer uv: `pip install 'uv>=0.9.24'` or unset UVEXTRA_UV"
        )
    entry = _export_entry(project, env, extras, uv, frozen)
    cached = _cache.read_text(entry)
    if cached is not None:
        return cached
    # --offline: a read never downloads (uv would fetch every wheel whose hash uv.lock lacks, for every platform)
    args = ["export", "--format", "pylock.toml", "--no-header", "--offline", *project.uv_project_args()]
    args += ["--frozen"] if frozen else []
    args += project.selection_args(extras)  # --extra X / --group X (and --package for a workspace member)
    proc = capture_uv(uv, args, env, cwd=project.root)
    if proc.returncode != 0:
        detail = first_error(proc.stderr)  # uv's first line says what and why; its causes follow
        if needs_download(detail):
            raise NeedsDownload(detail)
        raise UvextraError(f"uv could not export the lock for extras {list(extras)}: {detail}")
    _cache.write_text(entry, proc.stdout)  # a read-only venv just means no cache
    return proc.stdout


def _file_location(url_or_path: str | None, root: Path) -> str | None:
    if not url_or_path:
        return None
    try:
        parts = urlsplit(url_or_path)
    except ValueError:  # e.g. "http://[bad": not a path, and no URL uvextra could read either
        return redact(url_or_path)
    if parts.scheme == "file":
        return str(Path(unquote(parts.path)).absolute())
    if parts.scheme:
        return redact(url_or_path)
    return str((root / url_or_path).absolute())


# An empty hash table as uv <= 0.9.x writes it (`hashes = {}`). The pattern starts with its literal so that the
# search skips ahead on it (a leading `\b` made it try every position: 30 ms per MB of export on every check); the
# word boundary before it is checked by _has_empty_hashes.
_EMPTY_HASHES = re.compile(r"hashes\s*=\s*\{\s*\}")


def _has_empty_hashes(text: str) -> bool:
    for match in _EMPTY_HASHES.finditer(text):
        before = text[match.start() - 1] if match.start() else ""
        if not (before.isalnum() or before == "_"):  # what `\b` asked of it
            return True
    return False


# A stand-in for "no hash known" that packaging accepts; no real algorithm has this name, so no code reads it as one.
_NO_HASH = "uvextra-no-hash"
_HASH_CHUNK = 1 << 20


def wanted_from_pylock(text: str, project: Project, env: Environment) -> dict[str, Wanted]:
    """Select, with ``packaging.pylock``, what the exported lock wants on the target interpreter.

    Selecting from a large export (TOML parsing and packaging's validation) is most of a first check's cost; the
    selection only changes with the export's text and the interpreter, which key a copy kept in the venv. An export
    with empty hash tables takes those hashes from ``uv.lock``, whose text then keys the copy too.
    """
    info = interpreter_info(str(env.python))
    lock_text = _uv_lock_text(project) if _has_empty_hashes(text) else ""
    disk = _disk_cache(
        env,
        "wanted",
        _WANTED_FORMAT,
        text,
        str(project.root),
        str(env.python),
        json.dumps(info.marker_env),
        " ".join(info.tags),
        *([lock_text] if lock_text else []),
    )
    wanted = _parsed(
        ("pylock", text, str(project.root), str(env.python), lock_text),
        lambda: (
            _load_from_disk(
                disk, lambda data: {w["name"]: Wanted(**{**w, "wheel_tags": tuple(w["wheel_tags"])}) for w in data}
            )
            or _wanted_from_pylock(text, project, env, lock_text)
        ),
    )
    _cache.write_json(disk, [vars(w) for w in wanted.values()])
    return dict(wanted)


_WANTED_FORMAT = "wanted-2"  # in the disk cache's key: entries of an older layout (no wheel sizes) are never read


def _uv_lock_text(project: Project) -> str:
    try:
        return project.lockfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _file_name(url_or_path: object) -> str:
    return unquote(urlsplit(url_or_path).path).rsplit("/", 1)[-1] if isinstance(url_or_path, str) else ""


def _uv_lock_hashes(lock_text: str) -> dict[tuple[str, str, str], dict[str, set[str]]]:
    """``(name, version, file name) -> {source key: {"sha256:…", …}}`` for every wheel and sdist uv.lock hashes."""
    try:
        data = tomllib.loads(lock_text) if lock_text else {}
    except tomllib.TOMLDecodeError:
        return {}  # read_uv_lock names a malformed uv.lock; here it only means no hash from it
    out: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    packages = data.get("package", [])
    for pkg in packages if isinstance(packages, list) else []:
        if not isinstance(pkg, dict) or "name" not in pkg:
            continue
        src = pkg.get("source") or {}
        key = "registry:" + _norm_url(str(src["registry"])) if isinstance(src, dict) and "registry" in src else "other"
        files = [*(pkg.get("wheels") or []), pkg.get("sdist")]
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("hash"), str):
                continue
            fname = f.get("filename") or _file_name(f.get("url") or f.get("path"))
            if fname:
                where = out.setdefault((canonicalize_name(str(pkg["name"])), str(pkg.get("version", "")), fname), {})
                where.setdefault(key, set()).add(f["hash"])
    return out


def _local_file(url_or_path: object, root: Path) -> Path | None:
    if not isinstance(url_or_path, str) or not url_or_path:
        return None
    parts = urlsplit(url_or_path)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # http(s) and the like; a one-letter scheme is a Windows drive
        return None
    else:
        path = root / url_or_path
    return path if path.is_file() else None


def _sha256_of(path: Path) -> str | None:
    import hashlib  # only for a wheel whose hash the lock lacks

    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _fill_empty_hashes(data: object, project: Project, lock_text: str) -> dict[tuple[str, str], str]:
    """Give every wheel/sdist with an empty ``hashes`` table the sha256 uv.lock (or the local file) has.

    Changes ``data`` (the parsed export) in place so that ``packaging.pylock`` accepts it. A file whose hash nobody
    knows gets a stand-in that carries no sha256; the result maps ``(package, file name)`` to the reason.
    """
    unknown: dict[tuple[str, str], str] = {}
    packages = data.get("packages") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        return unknown  # packaging names what is wrong with it
    from_lock: dict[tuple[str, str, str], dict[str, set[str]]] | None = None
    for pkg in packages:
        if not isinstance(pkg, dict):
            continue
        wheels = pkg.get("wheels")
        files = [
            f
            for f in [*(wheels if isinstance(wheels, list) else []), pkg.get("sdist"), pkg.get("archive")]
            if isinstance(f, dict)
        ]
        for f in files:
            if f.get("hashes") not in ({}, None):
                continue
            name = canonicalize_name(str(pkg.get("name", "")))
            version = str(pkg.get("version", ""))
            fname = _file_name(f.get("name") or f.get("url") or f.get("path"))
            if from_lock is None:
                from_lock = _uv_lock_hashes(lock_text)
            by_source = from_lock.get((name, version, fname), {})
            index = pkg.get("index")
            mine = by_source.get("registry:" + _norm_url(str(index))) if isinstance(index, str) else None
            candidates = mine or set().union(*by_source.values())
            sha = None
            if len(candidates) == 1:
                algo, _, digest = next(iter(candidates)).partition(":")
                if algo.lower() == "sha256" and digest:
                    sha = digest.lower()
            if sha is None:
                local = _local_file(f.get("url") or f.get("path"), project.root)
                sha = _sha256_of(local) if local is not None else None
            if sha is not None:
                f["hashes"] = {"sha256": sha}
                continue
            f["hashes"] = {_NO_HASH: ""}
            unknown[(name, fname)] = (
                f"neither uv's export nor uv.lock has a hash for {fname or name} "
                "(uv <= 0.9 exports none for a flat index)"
            )
    return unknown


# packaging's words when selecting fails, to be said as what it means for this venv (no internal `packages[N]`)
_NO_WHEEL = re.compile(r"No wheel found matching the provided tags for package '([^']+)' at packages\[(\d+)\]")
_WRONG_PYTHON = re.compile(
    r"python_full_version '([^']+)' in provided environment does not satisfy the Python "
    r"version requirement '([^']+)'(?: for package '([^']+)')?"
)


def _select_failure(message: str, data: object, env: Environment, tags: Sequence[str]) -> str:
    """What it means that nothing of the lock can be picked for this interpreter, and what to do."""
    if match := _NO_WHEEL.search(message):
        name, at = match.group(1), int(match.group(2))
        packages = data.get("packages") if isinstance(data, dict) else None
        entry = packages[at] if isinstance(packages, list) and at < len(packages) else None
        version = f" {entry['version']}" if isinstance(entry, dict) and isinstance(entry.get("version"), str) else ""
        tag = f" ({tags[0].split('-')[0]}, {tags[0].rsplit('-', 1)[-1]})" if tags else ""
        return (
            f"the lock has no wheel of {name}{version} for this Python{tag} and no sdist, so neither uv nor "
            f"uvextra can install it into {env.python}; use a Python it has wheels for, or another backend"
        )
    if match := _WRONG_PYTHON.search(message):
        have, need, package = match.groups()
        whose = f"{package} in the lock needs" if package else "the lock needs"
        return (
            f"{whose} Python {need}, and {env.python} is Python {have}: make a venv with a Python the lock "
            f"accepts (`uv venv --python '{need}' DIR`), install ipykernel into it and start the kernel from it "
            "(or pass --python)"
        )
    return f"the lock has nothing installable for {env.python}: {message}"


def _wanted_from_pylock(text: str, project: Project, env: Environment, lock_text: str = "") -> dict[str, Wanted]:
    from packaging.pylock import (
        PackageArchive,
        PackageDirectory,
        PackageSdist,
        PackageVcs,
        PackageWheel,
        Pylock,
        PylockSelectError,
        PylockValidationError,
    )
    from packaging.utils import parse_wheel_filename

    try:
        data = tomllib.loads(text)
        unknown = _fill_empty_hashes(data, project, lock_text)
        lock = Pylock.from_dict(data)
    except (tomllib.TOMLDecodeError, PylockValidationError) as exc:
        raise UvextraError(f"uv's pylock export could not be read ({exc}); report this with your uv version") from None
    info = interpreter_info(str(env.python))
    tags = _parsed_tags(info.tags)
    try:
        selected = list(lock.select(environment=info.marker_env, tags=tags))  # type: ignore[arg-type]
    except PylockSelectError as exc:
        raise UvextraError(_select_failure(str(exc), data, env, info.tags)) from None
    out: dict[str, Wanted] = {}
    mask = cache(redact)  # one redaction per index URL, not one per package
    for pkg, dist in selected:
        name = canonicalize_name(pkg.name)
        version = str(pkg.version) if pkg.version is not None else ""
        index = mask(pkg.index) if pkg.index else None
        if isinstance(dist, PackageWheel):
            wheel_name = dist.name or unquote(Path(urlsplit(dist.url or "").path).name)  # "+", not "%2B"
            try:
                wheel_tags = tuple(str(t) for t in parse_wheel_filename(wheel_name)[3])
            except Exception:  # noqa: BLE001 - a name we cannot parse just gives no tag evidence
                wheel_tags = ()
            no_hash = unknown.get((name, _file_name(dist.name or dist.url or dist.path)))
            where = _file_location(dist.url or dist.path, project.root)
            if index is None and (dist.url or dist.path):
                out[name] = Wanted(
                    name,
                    version,
                    "archive",
                    location=where,
                    wheel=wheel_name,
                    wheel_hash=dist.hashes.get("sha256"),
                    wheel_tags=wheel_tags,
                    no_hash=no_hash,
                    wheel_url=where,
                    wheel_size=dist.size,
                )
                continue
            out[name] = Wanted(
                name,
                version,
                "index",
                index=index,
                wheel=wheel_name,
                wheel_hash=dist.hashes.get("sha256"),
                wheel_tags=wheel_tags,
                no_hash=no_hash,
                wheel_url=where,
                wheel_size=dist.size,
            )
        elif isinstance(dist, PackageDirectory):
            kind = "editable" if dist.editable else "directory"
            out[name] = Wanted(name, version, kind, location=_file_location(dist.path, project.root))
        elif isinstance(dist, PackageVcs):
            out[name] = Wanted(name, version, "vcs", location=redact(dist.url or dist.path or ""))
        elif isinstance(dist, PackageArchive):
            out[name] = Wanted(
                name,
                version,
                "archive",
                location=_file_location(dist.url or dist.path, project.root),
                no_hash=unknown.get((name, _file_name(dist.url or dist.path))),
            )
        elif isinstance(dist, PackageSdist):
            out[name] = Wanted(
                name,
                version,
                "sdist" if index is None else "index",
                index=index,
                location=_file_location(dist.url or dist.path, project.root),
                no_hash=unknown.get((name, _file_name(dist.name or dist.url or dist.path))),
            )
    return out


# ---------------------------------------------------------------------------------------------------- stale lock
_FRESH_FORMAT = "fresh-1"


def stale_lock(project: Project, env: Environment, uv: Uv) -> str | None:
    """Why ``uv.lock`` no longer fits ``pyproject.toml`` (what ``uv lock --check`` finds), or None when it fits.

    Asked offline: uv first validates the lock against the project's requirements and only resolves when they no
    longer match — so an answer that needs the network is itself a lock that must be made again. Kept in the venv
    by the exact text of the lock and of every pyproject.toml of its workspace (a check after no edit runs no uv).
    """
    parts: list[bytes | str] = [_FRESH_FORMAT, str(uv.version), repr(project.uv_project_args())]
    for path in [project.lockfile, project.pyproject, *_member_pyprojects(project)]:
        try:
            parts += [str(path), path.read_bytes()]
        except OSError:
            parts += [str(path), b"-"]
    entry = _cache.entry(env.state_dir, "fresh", *parts)
    known = _cache.read_json(entry, lambda data: (data["stale"],))
    if known is not None:
        return known[0] if isinstance(known[0], str) else None
    args = ["lock", "--check", "--offline", "--project", str(project.lock_root)]
    proc = capture_uv(uv, args, env, cwd=project.root)
    if proc.returncode == 0:
        reason = None
    else:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("error:")]
        said = lines[0].removeprefix("error:").strip() if lines else ""
        if "needs to be updated" in said:
            reason = "uv.lock no longer fits pyproject.toml (uv lock --check: the lockfile needs to be updated)"
        elif "No solution found when resolving" in said:
            # uv resolves only when the lock no longer satisfies the project's requirements as they are now
            reason = (
                "uv.lock no longer fits pyproject.toml (uv lock --check had to resolve again, which needs the index)"
            )
        else:  # e.g. a project whose metadata must be built, offline: no answer — said, never taken for stale
            raise LockUnknown(f"could not confirm offline that uv.lock fits pyproject.toml: {first_error(proc.stderr)}")
    _cache.write_json(entry, {"stale": reason})
    return reason


class LockUnknown(UvextraError):
    """``uv lock --check --offline`` gave no answer (neither fresh nor stale)."""


def _member_pyprojects(project: Project) -> list[Path]:
    """The other pyproject.toml files of the workspace the lock covers (a member's edit also stales the lock)."""
    root = project.lock_root
    if project.workspace is None and not (root / "pyproject.toml").is_file():
        return []
    candidates = sorted(root.glob("*/pyproject.toml")) + sorted(root.glob("*/*/pyproject.toml"))
    return [path for path in candidates if path != project.pyproject and ".venv" not in path.parts][:200]


# ------------------------------------------------------------------------------------ reading without the network
# `uv export --format pylock.toml` downloads every wheel whose hash uv.lock lacks "to compute missing hashes" — for
# every platform (torch +cu128 wheels for win_amd64 in many real locks): a read-only check must not. uvextra asks
# for it with --offline; when that fails for want of a download, the selection comes from the requirements export
# (which reads the same lock offline: names, exact versions, markers) and everything else from uv.lock itself.

_NEEDS_DOWNLOAD = ("to compute missing hashes", "network connectivity is disabled", "network was disabled")


def needs_download(message: str) -> bool:
    low = message.lower()
    return any(n in low for n in _NEEDS_DOWNLOAD)


def _registry_url(raw: str, root: Path) -> str:
    parts = urlsplit(raw)
    if parts.scheme and len(parts.scheme) > 1:
        return redact(raw)
    return (root / raw).absolute().as_uri() if not raw.startswith("/") else Path(raw).as_uri()


def wanted_offline(project: Project, env: Environment, uv: Uv, extras: Sequence[str]) -> dict[str, Wanted]:
    """What the lock wants here, read from uv.lock and uv's requirements export (neither downloads anything)."""
    args = [
        "export",
        "--format",
        "requirements.txt",
        "--offline",
        "--frozen",
        "--no-hashes",
        "--no-header",
        "--no-annotate",
        *project.uv_project_args(),
        *project.selection_args(extras),
    ]
    proc = capture_uv(uv, args, env, cwd=project.root)
    if proc.returncode != 0:
        raise UvextraError(f"uv could not read the lock for extras {list(extras)}: {first_error(proc.stderr)}")
    info = interpreter_info(str(env.python))
    root = project.lock_root
    selected, local = _exported_selection(proc.stdout, info.marker_env, project.root)
    try:
        data = tomllib.loads(project.lockfile.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UvextraError(f"cannot read {project.lockfile}: {exc}") from None
    entries = _lock_entries(data, root, local, selected)
    rank = {t: i for i, t in enumerate(_parsed_tags(info.tags))}
    out: dict[str, Wanted] = {}
    for name, version in selected.items():
        found = entries.get((name, version)) or []
        wanted = _wanted_entry(name, version, found, root, rank) if found else None
        if wanted is not None:
            out[name] = wanted
    return out


def _exported_selection(
    export: str, marker_env: dict[str, str], project_root: Path
) -> tuple[dict[NormalizedName, str], set[str]]:
    """From a requirements export: the exact versions it selects on this interpreter, and its path / editable
    requirements as absolute folders (their versions come from uv.lock)."""
    from .installed import marker_holds

    selected: dict[NormalizedName, str] = {}
    local: set[str] = set()
    for raw in export.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        req, _, marker = line.partition(";")
        if marker.strip() and not marker_holds(marker.strip(), marker_env):
            continue
        req = req.strip().removeprefix("-e ").strip()
        if req.startswith((".", "/", "file:")):
            local.add(str(Path(_file_location(req, project_root) or req).resolve()))
            continue
        name, sep, version = req.partition("==")
        if sep:
            selected[canonicalize_name(name.strip())] = version.strip()
    return selected, local


def _lock_entries(
    data: dict[str, Any], root: Path, local: set[str], selected: dict[NormalizedName, str]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """uv.lock's packages by (name, version); a local (path / editable) one the export selected joins ``selected``."""
    entries: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for pkg in data.get("package", []) if isinstance(data.get("package"), list) else []:
        if isinstance(pkg, dict) and "name" in pkg:
            key = (canonicalize_name(str(pkg["name"])), str(pkg.get("version", "")))
            entries.setdefault(key, []).append(pkg)
            source = pkg.get("source")
            for kind in ("editable", "directory", "path"):
                where = source.get(kind) if isinstance(source, dict) else None
                if isinstance(where, str) and str((root / where).resolve()) in local:
                    selected[key[0]] = key[1]
    return entries


def _wanted_entry(
    name: NormalizedName, version: str, found: list[dict[str, Any]], root: Path, rank: dict[Tag, int]
) -> Wanted | None:
    """What one locked package (its uv.lock entries for this version) wants, by the kind of its source."""
    pkg = found[0]
    raw_src = pkg.get("source")
    src: dict[str, Any] = raw_src if isinstance(raw_src, dict) else {}
    ambiguous = (
        (
            f"{version} is locked from {len(found)} sources, and read offline uvextra cannot tell which "
            "one this selection takes"
        )
        if len(found) > 1
        else None
    )
    if "registry" in src:
        return _wanted_wheel(name, version, pkg, _registry_url(str(src["registry"]), root), root, rank, ambiguous)
    if "editable" in src or "directory" in src:
        kind = "editable" if "editable" in src else "directory"
        return Wanted(name, version, kind, location=_file_location(str(src[kind]), root))
    if "git" in src:
        return Wanted(name, version, "vcs", location=redact(str(src["git"])))
    if "url" in src or "path" in src:
        where = str(src.get("url") or src.get("path"))
        return Wanted(name, version, "archive", location=_file_location(where, root))
    return None


def _best_wheel(pkg: dict[str, Any], rank: dict[Tag, int]) -> tuple[dict[str, Any], str, tuple[Tag, ...]] | None:
    """The locked wheel this interpreter prefers (its best-ranked tag), with its file name and tags."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    best: tuple[int, dict[str, Any], str, tuple[Tag, ...]] | None = None
    for wheel in pkg.get("wheels") or []:
        where = str(wheel.get("url") or wheel.get("path") or "")
        fname = str(wheel.get("filename") or _file_name(where))
        try:
            wtags = tuple(parse_wheel_filename(fname)[3])
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, wheel, fname, wtags)
    return None if best is None else best[1:]


def _wanted_wheel(
    name: NormalizedName,
    version: str,
    pkg: dict[str, Any],
    index: str,
    root: Path,
    rank: dict[Tag, int],
    ambiguous: str | None,
) -> Wanted:
    """A registry package: the wheel this interpreter would take, with its hash (hashed here when the lock has none
    and the wheel lies on this machine, as the export does)."""
    best = _best_wheel(pkg, rank)
    if best is None:
        return Wanted(name, version, "index", index=index, no_hash=ambiguous)
    wheel, fname, wtags = best
    algo, _, digest = str(wheel.get("hash") or "").partition(":")
    sha = digest.lower() if algo == "sha256" and digest else None
    where = str(wheel.get("url") or wheel.get("path") or "")
    if sha is None:
        file = _local_file(where, root)
        sha = _sha256_of(file) if file is not None else None
    no_hash = ambiguous or (None if sha else f"uv.lock has no hash for {fname} (its index published none)")
    url = where if urlsplit(where).scheme else (root / where).absolute().as_uri() if where else None
    size = wheel.get("size")
    return Wanted(
        name,
        version,
        "index",
        index=index,
        wheel=fname,
        wheel_hash=sha,
        wheel_tags=tuple(str(t) for t in wtags),
        no_hash=no_hash,
        wheel_url=_file_location(url, root),
        wheel_size=size if isinstance(size, int) else None,
    )


def first_error(stderr: str) -> str:
    """uv's error in one line: its first ``error:`` line (what failed and why) and then its causes."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), 0)
    picked = lines[start : start + 4]
    return " ".join(picked)
