"""Which modules a running kernel imported are stale after its environment changed (how to restart: :mod:`.restart`).

Imports neither IPython nor ipykernel.

Stale modules. A module imported into this process keeps the code it was imported with; a switch or repair that
replaces its files on disk leaves the kernel running the old build (``torch`` imported as ``2.9.0+cpu`` while the
disk now holds ``2.9.0+cu128``). Two signals, both cheap:
  * the file of each top-level module imported from the environment's site-packages is fingerprinted (device,
    inode, size, mtime) when first seen; uv replaces files on every (re)install — a hard link to another cached
    wheel, or a fresh copy — so a different fingerprint means the code in memory is no longer what is on disk, and
    the same fingerprint means it is: such a module is never stale, whatever its ``__version__`` says;
  * for a module imported afresh since (``del sys.modules[...]``), whose first fingerprint says nothing: its own
    ``__version__`` against its distribution's version now, counted only when that version changed since the
    module was first seen. A ``__version__`` that only adds a local tag to its distribution's version is the same
    build (PyPI's CUDA torch: ``2.14.1+cu130`` in memory, ``2.14.1`` in its METADATA).
Modules that a ``.pth`` file imports at interpreter startup (``_distutils_hack`` from setuptools'
``distutils-precedence.pth``, ``_virtualenv``, editable-install finders) are site machinery, not the user's imports:
they are not watched, so removing setuptools never asks for a restart.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ImportWatch", "StaleModule"]

from ..core.vocabulary import StaleModule

_Stat = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------------- stale modules


def _stat(path: str) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _running_site_dirs() -> list[str]:
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return sorted(os.path.abspath(p) for p in paths if p)


def _module_version(module: object) -> str | None:
    # The module's own dict: a module-level __getattr__ may warn (deprecations) or import things for this.
    value = getattr(module, "__dict__", {}).get("__version__")
    return str(value) if isinstance(value, str) and value else None


# What a .pth line imports: `import a, b.c`, `from a import x`, `__import__('a')`, `importlib.import_module('a')`.
_PTH_IMPORT = re.compile(
    r"\bfrom\s+([\w.]+)\s+import\b|\bimport\s+([\w.]+(?:\s*,\s*[\w.]+)*)"
    r"|(?:__import__|import_module)\(\s*['\"]([\w.]+)"
)


def _pth_imports(site_dirs: Sequence[str]) -> set[str]:
    """Top-level names the ``.pth`` files of ``site_dirs`` import (``site`` runs their lines that start with import)."""
    names: set[str] = set()
    for site in site_dirs:
        for pth in Path(site).glob("*.pth"):
            try:
                lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith(("import ", "import\t")):
                    for match in _PTH_IMPORT.finditer(line):
                        for group in filter(None, match.groups()):
                            names.update(n.strip().partition(".")[0] for n in group.split(","))
    return names


@dataclass(frozen=True)
class _Seen:
    path: str
    stat: _Stat | None  # fingerprint at first sight
    module_id: int  # id of the module object then
    version: str | None  # version of the distribution named like the module then


class ImportWatch:
    """Fingerprints of the modules this process imported from a site-packages folder, taken when first seen.

    ``update()`` is cheap enough for every cell (it returns at once when ``sys.modules`` did not grow) and must run
    before anything changes the environment; ``stale()`` compares with the disk now. Modules named in an import line
    of a ``.pth`` file of the site folders when the watch is made are never watched: ``site`` imported them at
    startup (``_distutils_hack``, ``_virtualenv``, editable finders), the user did not, and restarting for them
    after their package is gone helps nobody.
    """

    def __init__(
        self, site_dirs: Iterable[str | os.PathLike[str]] | None = None, modules: Mapping[str, object] | None = None
    ) -> None:
        dirs = _running_site_dirs() if site_dirs is None else [os.path.abspath(p) for p in site_dirs]
        self.site_dirs: tuple[str, ...] = tuple(d.rstrip(os.sep) + os.sep for d in dirs)
        self._modules = sys.modules if modules is None else modules
        self._startup = _pth_imports(self.site_dirs)
        self._seen: dict[str, _Seen] = {}
        self._checked: set[str] = set()
        self._namespaces: set[str] = set()
        self._size = -1
        self.update()

    def _in_site(self, path: str | None) -> bool:
        return bool(path) and path.startswith(self.site_dirs)  # type: ignore[union-attr]

    def update(self) -> None:
        """Fingerprint every module imported since the last call (top-level ones, and children of namespaces)."""
        if len(self._modules) == self._size:
            return
        fresh: dict[str, tuple[str, object]] = {}
        for name, module in list(self._modules.items()):
            if name in self._checked:
                continue
            self._checked.add(name)
            top, dot, rest = name.partition(".")
            if (dot and (top not in self._namespaces or "." in rest)) or top in self._startup:
                continue
            path = getattr(module, "__file__", None)
            if not isinstance(path, str):
                search = getattr(module, "__path__", None)
                if not dot and search is not None and any(self._in_site(str(p)) for p in list(search)):
                    self._namespaces.add(name)  # e.g. `nvidia`: its children are separate distributions
                continue
            if self._in_site(path):
                fresh[name] = (path, module)
        if fresh:
            from ..core.names import canonicalize_name

            dists = _scan_site(self.site_dirs, {canonicalize_name(n) for n in fresh})
            for name, (path, module) in fresh.items():
                named = dists.get(canonicalize_name(name))
                self._seen[name] = _Seen(path, _stat(path), id(module), named.version if named else None)
        self._size = len(self._modules)

    @property
    def watched(self) -> list[str]:
        return sorted(self._seen)

    def stale(self, installed: Mapping[str, Any] | None = None) -> list[StaleModule]:
        """Imported modules whose files or version on disk differ from what this process runs.

        ``installed`` maps normalized distribution names to objects with ``.version`` and ``.dist_info``
        (``uvextra.installed.scan``); by default the site-packages folders are read here.
        """
        from ..core.names import canonicalize_name

        found: list[StaleModule] = []
        dists = _scan_site(self.site_dirs) if installed is None else installed
        for name in sorted(self._seen):
            module = self._modules.get(name)
            if module is None:
                continue  # deleted from sys.modules: the next import reads the disk anyway
            seen = self._seen[name]
            now = _stat(seen.path)
            imported = _module_version(module)
            if seen.module_id == id(module):
                if now == seen.stat:
                    continue  # the files it was imported from are still there: what runs is what is on disk
                replaced = True
            else:
                # Imported afresh since (del sys.modules[...]), when is unknown: its first fingerprint says nothing.
                # Its version counts only where its distribution's changed since the module was first seen.
                named = dists.get(canonicalize_name(name))
                version = None if named is None or _same_version(named.version, seen.version) else named.version
                if now is not None and not (imported and version and _differs(imported, version)):
                    continue
                replaced = now is None
            dist = _owner(name, seen.path, self.site_dirs, dists)
            on_disk = getattr(dist, "version", None)
            dist_name = str(getattr(dist, "name", "")) or None
            if now is None:
                reason = "uninstalled since it was imported"
                if dist is not None:
                    reason = f"its file is gone; {dist_name} {on_disk} is installed now"
            elif (
                imported
                and on_disk
                and (_differs(imported, on_disk) or (replaced and not _same_version(seen.version, on_disk)))
            ):
                # its distribution's version changed since the import (2.9.0+cpu → 2.9.0): that is the news
                reason = f"imported as {imported}, the disk now has {on_disk}"
            elif replaced:
                what = f"{dist_name} {on_disk}" if dist_name else "its files"
                reason = f"{what} was reinstalled since it was imported (other files on disk now)"
            else:
                continue  # a __version__ that disagrees with a distribution that does not own the module
            found.append(StaleModule(name, dist_name, imported, on_disk, reason))
        return found


def _same_version(a: str | None, b: str | None) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return a == b or (a is not None and b is not None and Version(a) == Version(b))
    except InvalidVersion:
        return False


def _differs(module: str, dist: str) -> bool:
    """Whether a module's ``__version__`` names another build than its distribution's ``dist`` version.

    A module may add a local tag its distribution's version lacks: PyPI's CUDA torch says ``2.14.1+cu130`` while
    its METADATA says ``2.14.1``. Otherwise the versions must be equal (``2.9.0+cpu`` ≠ ``2.9.0+cu128``, and
    ``2.9.0`` ≠ ``2.9.0+cpu``).
    """
    from packaging.version import InvalidVersion, Version

    try:
        mine, theirs = Version(module), Version(dist)
    except InvalidVersion:
        return module != dist
    return mine != theirs and not (theirs.local is None and mine.public == theirs.public)


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str
    dist_info: Path


def _scan_site(site_dirs: Sequence[str], only: Collection[str] | None = None) -> dict[str, _Dist]:
    """The distributions installed in ``site_dirs``; with ``only`` (normalized names), just those named so."""
    from ..core.installed import name_and_version  # the one dist-info reader
    from ..core.names import canonicalize_name

    found: dict[str, _Dist] = {}
    for site in site_dirs:
        for dist_info in sorted(Path(site).glob("*.dist-info")):
            # {name}-{version}.dist-info: only the METADATA of the wanted names is read
            if only is not None and canonicalize_name(dist_info.stem.rpartition("-")[0]) not in only:
                continue
            read = name_and_version(dist_info)
            if read is not None:
                found.setdefault(read[0], _Dist(read[0], read[1], dist_info))
    return found


def _record_paths(dist_info: Path) -> set[str]:
    from ..core.installed import record_paths  # the one RECORD reader

    return set(record_paths(dist_info))


def _owner(module: str, path: str, site_dirs: Sequence[str], dists: Mapping[str, Any]) -> Any:
    """The installed distribution whose RECORD lists ``path`` (tried first: the one named like the module)."""
    from ..core.names import canonicalize_name

    rel = next((path[len(d) :] for d in site_dirs if path.startswith(d)), None)
    if rel is None:
        return None
    rel = rel.replace(os.sep, "/")
    guess = dists.get(canonicalize_name(module.replace(".", "-"))) or dists.get(canonicalize_name(module))
    ordered = [guess] if guess is not None else []
    ordered += [d for d in dists.values() if d is not guess]
    for dist in ordered:
        if rel in _record_paths(dist.dist_info):
            return dist
    return None
