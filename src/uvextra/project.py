"""The uv project: where it is, which extras it declares, which of them conflict, which indexes it names."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .errors import UvextraError
from .redact import redact

PYPROJECT = "pyproject.toml"
LOCKFILE = "uv.lock"


@dataclass(frozen=True)
class Project:
    """What uvextra needs from ``pyproject.toml``; the file itself is only ever read."""

    root: Path
    name: str
    extras: tuple[str, ...]
    conflict_sets: tuple[tuple[str, ...], ...]
    indexes: dict[str, str] = field(default_factory=dict)  # index name -> URL (credentials masked)

    @property
    def pyproject(self) -> Path:
        return self.root / PYPROJECT

    @property
    def lockfile(self) -> Path:
        return self.root / LOCKFILE

    def conflict_set_of(self, extra: str) -> tuple[str, ...] | None:
        for group in self.conflict_sets:
            if extra in group:
                return group
        return None

    def validate_extras(self, extras: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """Canonical extra names, or a one-line error naming the available extras / the conflict."""
        if not self.extras:
            raise UvextraError(
                f"{self.pyproject} declares no extras: add [project.optional-dependencies] (e.g. cpu, cu128)"
            )
        wanted: list[str] = []
        by_canon = {canonicalize_name(e): e for e in self.extras}
        for raw in extras:
            canon = canonicalize_name(raw) if isinstance(raw, str) else raw
            if canon not in by_canon:
                raise UvextraError(
                    f"unknown extra {raw!r}; this project's extras are: {', '.join(self.extras)}"
                )
            if by_canon[canon] not in wanted:
                wanted.append(by_canon[canon])
        for group in self.conflict_sets:
            chosen = [e for e in wanted if e in group]
            if len(chosen) > 1:
                raise UvextraError(
                    f"extras {' and '.join(chosen)} conflict (conflict set: {', '.join(group)}); pick one of them"
                )
        return tuple(wanted)


def find_project(start: Path | None = None) -> Path:
    """The nearest folder upward from ``start`` (default: the working directory) holding a pyproject.toml."""
    here = (start or Path.cwd()).absolute()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PYPROJECT).is_file():
            return folder
    raise UvextraError(
        f"no {PYPROJECT} found in {here} or any folder above it; cd into your uv project or pass --project DIR"
    )


def explicit_project_root(given: str | Path) -> Path:
    """The root named by ``--project DIR`` (or the ``pyproject.toml`` in it), never a folder above it.

    A typo or a folder without a project is refused: the search upward is only for the working directory, so an
    explicit ``--project`` never silently acts on a parent folder's project.
    """
    path = Path(given).expanduser().absolute()
    try:
        if path.is_file() and path.name == PYPROJECT:
            return path.parent
        if not path.exists():
            raise UvextraError(f"--project {given}: no such folder; pass the folder that holds the project's {PYPROJECT}")
        if not path.is_dir():
            raise UvextraError(f"--project {given} is not a folder; pass the folder that holds the project's {PYPROJECT}")
        if not (path / PYPROJECT).is_file():
            raise UvextraError(
                f"--project {given}: no {PYPROJECT} in {path}; pass the folder that holds the project's {PYPROJECT} "
                "(an explicit --project is never looked for in the folders above it)"
            )
    except OSError as exc:
        raise UvextraError(f"--project {given}: cannot access it ({exc.strerror or exc})") from None
    return path


def _load_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UvextraError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UvextraError(f"{path} is not UTF-8 text; fix the file's encoding") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise UvextraError(f"{path}: invalid TOML: {exc}; fix that line and retry") from None


def load_project(root: Path | None = None) -> Project:
    """Read the project at ``root`` (or found upward from the working directory)."""
    root = find_project(root)
    data = _load_toml(root / PYPROJECT)
    try:
        project = data.get("project", {})
        name = str(project.get("name") or root.name)
        extras = tuple(str(e) for e in (project.get("optional-dependencies") or {}))
        uv = (data.get("tool") or {}).get("uv") or {}
        sets: list[tuple[str, ...]] = []
        for group in uv.get("conflicts") or []:
            names = tuple(str(item["extra"]) for item in group if isinstance(item, dict) and "extra" in item)
            if names:
                sets.append(names)
        indexes = {
            redact(str(ix.get("name", ix.get("url")))): redact(str(ix.get("url", "")))
            for ix in uv.get("index") or []
            if isinstance(ix, dict)
        }
    except (AttributeError, TypeError, KeyError) as exc:
        raise UvextraError(f"{root / PYPROJECT}: unexpected structure ({exc}); check [project] and [tool.uv]") from None
    return Project(root=root, name=name, extras=extras, conflict_sets=tuple(sets), indexes=indexes)
