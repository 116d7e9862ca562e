"""The uv project: where it is, which backends (extras and dependency groups) it declares, which of them
conflict, which indexes it names, and the workspace it belongs to.

Names are compared as uv compares them: PEP 685 / PEP 735 normalised (``CPU``, ``cu_128`` and ``cu.128`` are
``cpu`` and ``cu-128``). A workspace is found as uv finds it: the nearest folder above the project whose
``pyproject.toml`` has ``[tool.uv.workspace]`` and whose ``members`` globs (less ``exclude``) match the project.
"""

from __future__ import annotations

import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UvextraError
from .names import canonicalize_name
from .redact import redact
from .vocabulary import EXTRA, GROUP, Backend, BackendKind, Selection

__all__ = [
    "DEFAULT_GROUPS",
    "EXTRA",
    "GROUP",
    "LOCKFILE",
    "PYPROJECT",
    "Backend",
    "Project",
    "Selection",
    "load_project",
]

PYPROJECT = "pyproject.toml"
LOCKFILE = "uv.lock"
# uv's default for `[tool.uv] default-groups` (https://docs.astral.sh/uv/concepts/projects/dependencies/#default-groups)
DEFAULT_GROUPS = ("dev",)


def kind_of(name: Backend | str) -> BackendKind | None:
    """The kind a name carries (a :class:`Backend`), or None for a plain string the user typed."""
    return name.kind if isinstance(name, Backend) else None


@dataclass(frozen=True)
class Project:
    """What uvextra needs from ``pyproject.toml``; the file itself is only ever read."""

    root: Path
    name: str
    extras: tuple[str, ...]
    conflict_sets: tuple[tuple[Backend, ...], ...]
    indexes: dict[str, str] = field(default_factory=dict)  # index name -> URL (credentials masked)
    groups: tuple[str, ...] = ()
    default_groups: tuple[str, ...] = DEFAULT_GROUPS  # `[tool.uv] default-groups` ("all": every group)
    workspace: Path | None = None  # the workspace root, when this project is a member of another's workspace
    # a virtual workspace root uvextra was pointed at, whose one member with backends this is
    via_root: Path | None = None
    # uv's --no-default-groups when a bare list of names is turned into a Selection (:meth:`selection_args`); the
    # verbs carry it in their Selection instead
    no_default_groups: bool = False
    # extras and groups that are features, not backends (``dev``, ``test``, ``aws``): see :func:`_features`
    features: tuple[Backend, ...] = ()

    @property
    def pyproject(self) -> Path:
        return self.root / PYPROJECT

    @property
    def lock_root(self) -> Path:
        """Where uv keeps the lock: the workspace root for a member, else the project itself."""
        return self.workspace or self.root

    @property
    def lockfile(self) -> Path:
        return self.lock_root / LOCKFILE

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Every extra, then every dependency group that is not synced by default anyway (``dev``) — except a default
        group in a conflict set: that is the project's default backend (``default-groups = ["dev", "pypi"]``, the way
        projects persist a backend, uv having no ``default-extras``), offered like the others."""
        return (
            *(Backend(e, EXTRA) for e in self.extras),
            *(Backend(g, GROUP) for g in self.groups if g not in self.default_groups or g in self.default_backends),
        )

    @property
    def offered(self) -> tuple[Backend, ...]:
        """The backends a user is offered (advice, the toggle, ``auto``): :attr:`backends` less the features."""
        return tuple(b for b in self.backends if not any(_same(b, f) for f in self.features))

    @property
    def default_backends(self) -> tuple[Backend, ...]:
        """The default groups that are members of a conflict set: what a plain ``uv sync`` picks from that set
        (backends all the same under ``--no-default-groups``, which only stops syncing them unasked)."""
        members = {(b.name, b.kind) for s in self.conflict_sets for b in s}
        return tuple(Backend(g, GROUP) for g in self.default_groups if (g, GROUP) in members)

    def dropped_defaults(self, chosen: Iterable[Backend | str], no_default_groups: bool | None = None) -> list[Backend]:
        """The default-group backends a selection must switch off: those in a conflict set with a chosen backend
        (uv refuses ``--group cpu`` while ``pypi`` is enabled by default; ``--no-group pypi`` keeps ``dev``)."""
        if self.no_default_groups if no_default_groups is None else no_default_groups:
            return []  # none is synced unasked: nothing to switch off
        picked = self.resolve(chosen)
        return [
            d
            for d in self.default_backends
            if not any(_same(d, p) for p in picked)
            and any(_member(d, s) and any(_member(p, s) for p in picked) for s in self.conflict_sets)
        ]

    def resolve(self, chosen: Iterable[Backend | str]) -> tuple[Backend, ...]:
        """Each name as this project's backend (a :class:`Backend` already resolved is kept as it is)."""
        return tuple(b if isinstance(b, Backend) else self.backend(b) for b in chosen)

    def selection(self, chosen: Iterable[Backend | str], no_default_groups: bool | None = None) -> Selection:
        """``chosen`` as a :class:`Selection` (``no_default_groups`` not said: this project's :attr:`no_default_groups`)."""
        flag = self.no_default_groups if no_default_groups is None else no_default_groups
        return Selection(self.resolve(chosen), flag)

    def uv_project_args(self) -> list[str]:
        """``--project`` (and for a workspace member ``--package``): which project of the lock uv acts on."""
        args = ["--project", str(self.root)]
        if self.workspace is not None:
            args += ["--package", self.name]
        return args

    def selection_args(self, chosen: Iterable[Backend | str] | Selection) -> list[str]:
        """``--extra X`` / ``--group X`` for each chosen backend (``--no-default-groups`` when asked, ``--no-group D``
        for a default-group backend the choice conflicts with): what uv syncs and exports alike."""
        selection = chosen if isinstance(chosen, Selection) else self.selection(chosen)
        args: list[str] = []
        for backend in selection.backends:
            args += [backend.flag, backend.name]
        if selection.no_default_groups:
            args.append("--no-default-groups")
        for dropped in self.dropped_defaults(selection.backends, selection.no_default_groups):
            args += ["--no-group", dropped.name]
        return args

    def backend(self, raw: Backend | str, kind: BackendKind | None = None) -> Backend:
        """``raw`` as this project's extra or group; a one-line error when it is neither, or both and unsaid."""
        kind = kind or kind_of(raw)
        raw = str(raw)
        canon = canonicalize_name(raw)
        is_extra, is_group = canon in self.extras, canon in self.groups
        if (kind == EXTRA and is_extra) or (kind == GROUP and is_group):
            return Backend(canon, kind)
        if kind is None and is_extra and is_group:
            raise UvextraError(
                f"{raw!r} is both an extra and a dependency group of {self.name}; say which: "
                f"--extra {canon} or --group {canon}"
            )
        if kind is None and (is_extra or is_group):
            return Backend(canon, EXTRA if is_extra else GROUP)
        raise UvextraError(self._unknown(raw, kind))

    def _unknown(self, raw: str, kind: BackendKind | None) -> str:
        extras, groups = ", ".join(self.extras), ", ".join(g for g in self.groups)
        if kind == GROUP:
            return f"unknown dependency group {raw!r}; this project's groups are: {groups or '(none)'}"
        if kind == EXTRA or not groups:
            return f"unknown extra {raw!r}; this project's extras are: {extras or '(none)'}"
        if not extras:
            return f"unknown extra or group {raw!r}; this project's dependency groups are: {groups}"
        return f"unknown extra or group {raw!r}; this project's extras are: {extras}; its dependency groups: {groups}"

    def validate_extras(self, extras: Sequence[Backend | str]) -> tuple[Backend, ...]:
        """Normalised backends (extras or groups), or a one-line error naming the available ones / the conflict."""
        if not self.extras and not self.groups:
            raise UvextraError(
                f"{self.pyproject} declares no extras or dependency groups: add [project.optional-dependencies] "
                "or [dependency-groups] (e.g. cpu, cu128)"
            )
        wanted: list[Backend] = []
        for raw in extras:
            backend = self.backend(raw)
            if not any(_same(backend, w) for w in wanted):
                wanted.append(backend)
        for group in self.conflict_sets:
            chosen = [e for e in wanted if _member(e, group)]
            if len(chosen) > 1:
                kinds = "groups" if all(c.kind == GROUP for c in chosen) else "extras"
                raise UvextraError(
                    f"{kinds} {' and '.join(map(str, chosen))} conflict (conflict set: {', '.join(map(str, group))}); "
                    "pick one of them"
                )
        return tuple(wanted)


def _same(a: Backend, b: Backend) -> bool:
    return (a.name, a.kind) == (b.name, b.kind)


def _member(backend: Backend, group: Iterable[Backend]) -> bool:
    """Is ``backend`` in the conflict set (by name and kind)?"""
    return any(_same(backend, g) for g in group)


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
            raise UvextraError(
                f"--project {given}: no such folder; pass the folder that holds the project's {PYPROJECT}"
            )
        if not path.is_dir():
            raise UvextraError(
                f"--project {given} is not a folder; pass the folder that holds the project's {PYPROJECT}"
            )
        if not (path / PYPROJECT).is_file():
            raise UvextraError(
                f"--project {given}: no {PYPROJECT} in {path}; pass the folder that holds the project's {PYPROJECT} "
                "(an explicit --project is never looked for in the folders above it)"
            )
    except OSError as exc:
        raise UvextraError(f"--project {given}: cannot access it ({exc.strerror or exc})") from None
    return path


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UvextraError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UvextraError(f"{path} is not UTF-8 text; fix the file's encoding") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise UvextraError(f"{path}: invalid TOML: {exc}; fix that line and retry") from None


def _tool_uv(data: dict[str, Any]) -> dict[str, Any]:
    return (data.get("tool") or {}).get("uv") or {}


def _workspace_table(data: dict[str, Any]) -> dict[str, Any] | None:
    ws = _tool_uv(data).get("workspace")
    return ws if isinstance(ws, dict) else None


def _matches(rel: PurePosixPath, patterns: Iterable[object]) -> bool:
    return any(
        isinstance(p, str) and rel.match(p.rstrip("/")) and len(rel.parts) == len(PurePosixPath(p).parts)
        for p in patterns
    )


def _members(root: Path, table: dict[str, Any]) -> list[Path]:
    """The member folders of the workspace at ``root``, as its ``members``/``exclude`` globs say."""
    found: list[Path] = []
    for pattern in table.get("members") or []:
        if not isinstance(pattern, str):
            continue
        for folder in sorted(root.glob(pattern)):
            rel = PurePosixPath(folder.relative_to(root).as_posix())
            if (
                folder.is_dir()
                and (folder / PYPROJECT).is_file()
                and not _matches(rel, table.get("exclude") or [])
                and folder.resolve() != root.resolve()
                and folder not in found
            ):
                found.append(folder)
    return found


def find_workspace_root(project_root: Path) -> Path | None:
    """The workspace root above ``project_root`` that lists it as a member (as uv finds it), else None."""
    for folder in project_root.parents:
        if not (folder / PYPROJECT).is_file():
            continue
        try:
            table = _workspace_table(_load_toml(folder / PYPROJECT))
        except UvextraError:
            continue
        if table is None:
            continue
        rel = PurePosixPath(project_root.relative_to(folder).as_posix())
        if _matches(rel, table.get("members") or []) and not _matches(rel, table.get("exclude") or []):
            return folder
        return None  # the nearest workspace does not include it: uv treats it as a project of its own
    return None


def _conflict_sets(tables: Iterable[tuple[dict[str, Any], bool]], package: str) -> list[tuple[Backend, ...]]:
    """This package's conflict sets, from its own ``[tool.uv]`` and (``package = …`` entries) the root's."""
    sets: list[tuple[Backend, ...]] = []
    for uv, own in tables:
        for items in uv.get("conflicts") or []:
            names: list[Backend] = []
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict):
                    continue
                pkg = item.get("package")
                if (canonicalize_name(str(pkg)) if pkg else (package if own else None)) != package:
                    continue
                names.extend(Backend(str(item[kind]), kind) for kind in (EXTRA, GROUP) if kind in item)
            if names and tuple(names) not in sets:
                sets.append(tuple(names))
    return sets


# What "torch or its stack" is, by name: torch, its companions and what a torch build brings or builds against.
_STACK = re.compile(
    r"^(?:torch|torchvision|torchaudio|torchtext|torchdata|triton|pytorch-triton(?:-[a-z0-9]+)?|"
    r"xformers|flash-attn|intel-extension-for-pytorch|nvidia-[a-z0-9-]+)$"
)
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def _features(project: Project, data: dict[str, Any], ws_data: dict[str, Any] | None) -> tuple[Backend, ...]:
    """The extras and groups that are features, not backends. The rule (README, "Backends and features"):

    a backend is an extra or group that ``[tool.uv.sources]`` routes torch or its stack (torchvision, triton,
    nvidia-*, …) for (``torch = [{ index = "pytorch-cpu", extra = "cpu" }]``), or a member of a conflict set that
    holds one — or, in a conflict set none of whose members is routed so, one whose own table lists torch or its
    stack. A default-group member of such a set is a backend too. Everything else (``dev``, ``test``, ``aws``, a
    ``kernels`` group that builds against torch outside every conflict set) is a feature: synced when asked or by
    default, inferred when installed, never offered as a backend. A project none of whose conflict sets says so
    keeps every conflict-set member offered: they are its only switchable choices.
    """
    routed: set[tuple[str, str]] = set()
    for table in (_tool_uv(data), _tool_uv(ws_data) if ws_data is not None else {}):
        sources = table.get("sources") or {}
        for package, value in sources.items() if isinstance(sources, dict) else ():
            if not _STACK.match(canonicalize_name(str(package))):
                continue
            for entry in value if isinstance(value, list) else [value]:
                for kind in (EXTRA, GROUP):
                    if isinstance(entry, dict) and isinstance(entry.get(kind), str):
                        routed.add((canonicalize_name(entry[kind]), kind))
    listing: set[tuple[str, str]] = set()
    tables = (
        (EXTRA, (data.get("project") or {}).get("optional-dependencies") or {}),
        (GROUP, data.get("dependency-groups") or {}),
    )
    for kind, table in tables:
        for name, requirements in table.items() if isinstance(table, dict) else ():
            for req in requirements if isinstance(requirements, list) else ():
                match = _REQUIREMENT_NAME.match(req) if isinstance(req, str) else None
                if match and _STACK.match(canonicalize_name(match.group(1))):
                    listing.add((canonicalize_name(str(name)), kind))

    def key(b: Backend) -> tuple[str, str]:
        return b.name, b.kind

    sets = project.conflict_sets
    torch_sets = (
        [c for c in sets if any(key(b) in routed for b in c)]
        or [c for c in sets if any(key(b) in listing for b in c)]
        or list(sets)
    )
    backends = routed | {key(b) for c in torch_sets for b in c}
    every = (*(Backend(e, EXTRA) for e in project.extras), *(Backend(g, GROUP) for g in project.groups))
    return tuple(b for b in every if key(b) not in backends)


def _read(root: Path, data: dict[str, Any], workspace: Path | None, ws_data: dict[str, Any] | None) -> Project:
    project = data.get("project") or {}
    name = canonicalize_name(str(project.get("name") or root.name))
    extras = tuple(dict.fromkeys(canonicalize_name(str(e)) for e in (project.get("optional-dependencies") or {})))
    groups = tuple(dict.fromkeys(canonicalize_name(str(g)) for g in (data.get("dependency-groups") or {})))
    uv = _tool_uv(data)
    root_uv = _tool_uv(ws_data) if ws_data is not None else {}
    # default-groups is a workspace setting: uv reads it from the project being synced, else the root
    dflt = uv.get("default-groups", root_uv.get("default-groups", list(DEFAULT_GROUPS)))
    default_groups = groups if dflt == "all" else tuple(canonicalize_name(str(g)) for g in dflt or [])
    tables = [(uv, True)] + ([(root_uv, False)] if ws_data is not None else [])
    indexes: dict[str, str] = {}
    for table, _own in tables:
        for ix in table.get("index") or []:
            if isinstance(ix, dict):
                indexes.setdefault(redact(str(ix.get("name", ix.get("url")))), redact(str(ix.get("url", ""))))
    project = Project(
        root=root,
        name=name,
        extras=extras,
        conflict_sets=tuple(_conflict_sets(tables, name)),
        indexes=indexes,
        groups=groups,
        default_groups=default_groups,
        workspace=workspace,
    )
    return replace(project, features=_features(project, data, ws_data))


def name_unreadable(start: Path | None = None) -> None:
    """Raise the one-line error of the project found from ``start`` when its pyproject.toml cannot be read (malformed
    TOML, a wrong structure); nothing when it reads, or when there is no project. Called when something else failed
    first (no venv): a broken pyproject.toml is the cause to name first, since `uv sync` would fail on it too."""
    try:
        root = find_project(start)
    except UvextraError:
        return
    load_project(root)


def load_project(root: Path | None = None) -> Project:
    """Read the project at ``root`` (or found upward from the working directory), and the workspace it is in.

    Pointed at a virtual workspace root (no ``[project]``) that declares no backends itself, the project is the
    one member that does; several such members are a one-line error asking for ``--project MEMBER``.
    """
    root = find_project(root)
    data = _load_toml(root / PYPROJECT)
    try:
        table = _workspace_table(data)
        workspace = None if table is not None else find_workspace_root(root)
        ws_data = _load_toml(workspace / PYPROJECT) if workspace is not None else None
        project = _read(root, data, workspace, ws_data)
        if table is not None and not project.backends:
            with_backends = [
                p
                for p in (_read(m, _load_toml(m / PYPROJECT), root, data) for m in _members(root, table))
                if p.backends
            ]
            if len(with_backends) == 1:
                member = with_backends[0]
                return Project(**{**vars(member), "via_root": root})
            if len(with_backends) > 1:
                raise UvextraError(
                    f"the workspace at {root} has several members with backends "
                    f"({', '.join(f'{p.name}: {p.root.relative_to(root)}' for p in with_backends)}); "
                    f"pass --project {with_backends[0].root.relative_to(root)} (or cd there)"
                )
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise UvextraError(f"{root / PYPROJECT}: unexpected structure ({exc}); check [project] and [tool.uv]") from None
    return project
