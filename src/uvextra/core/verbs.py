"""The operations behind every surface: status, check, switch, repair, probe. Each returns one Report.

Nothing here imports IPython or ipywidgets; the CLI, the magic and the widgets only render what comes back.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .drift import classify
from .environment import Environment, interpreter_info, resolve_environment
from .errors import Interrupted, UvextraError
from .installed import FileCheck, Installed, check_files, scan
from .lock import (
    LockInfo,
    LockUnknown,
    NeedsDownload,
    Wanted,
    export_pylock,
    read_uv_lock,
    stale_lock,
    wanted_from_pylock,
    wanted_offline,
)
from .progress import PROBING, PROBING_FIRST, say, watch_sync
from .project import EXTRA, GROUP, Backend, Project, kind_of, load_project, name_unreadable
from .protect import kernel_closure, project_owned, removable
from .report import Change, Report
from .state import Provenance, State, load_state, save_state, switch_lock
from .uv import MIN_EXPORT, Uv, UvResult, find_uv, run_uv

if TYPE_CHECKING:  # imported when a probe starts: most calls never need it
    from .cuda_probe import ProbeHandle

LineCallback = Callable[[str], None]
AUTO = "auto"


@dataclass
class Context:
    """What every verb works on: the project, the target venv, and the uv that syncs it."""

    project: Project
    env: Environment
    uv: Uv

    def _of_features(self, members: Sequence[str]) -> bool:
        offered = {(str(b), b.kind) for b in self.project.offered}
        return not any((str(m), kind_of(m) or EXTRA) in offered for m in members)

    def new_report(self, command: str) -> Report:
        """An empty report for ``command`` that already says where (project, venv, python, uv)."""
        report = Report(
            command=command,
            project=str(self.project.root),
            project_name=self.project.name,
            environment=str(self.env.prefix),
            environment_source=self.env.source,
            python=str(self.env.python),
            uv=self.uv.to_dict(),
            available_extras=list(self.project.offered),
            features=list(self.project.features),
            # the sets of backends first: a surface that offers "the" set (the toggle) offers a backend set
            conflict_sets=[list(s) for s in sorted(self.project.conflict_sets, key=self._of_features)],
            workspace=str(self.project.workspace) if self.project.workspace else None,
        )
        if self.uv.warning:
            report.warnings.append(self.uv.warning)
        report.read_only = not self.env.writable()
        return report


def open_context(
    project: str | os.PathLike[str] | None = None, python: str | os.PathLike[str] | None = None
) -> Context:
    """Find the project, the target venv and uv; every problem is a one-line UvextraError."""
    try:
        env = resolve_environment(python)
    except UvextraError:
        name_unreadable(Path(project) if project is not None else None)  # a malformed pyproject.toml is named first
        raise
    proj = load_project(Path(project) if project is not None else None)
    if proj.lockfile.is_file():
        read_uv_lock(proj, env, store=False)  # a malformed lock is named (file and line) before uv is run at all
    uv = find_uv(env.state_dir)  # its version is kept in the venv: no `uv --version` on every call
    if uv.version < MIN_EXPORT:  # refuse before running it: an old uv would sync, then fail to export
        raise UvextraError(
            f"uv {uv.version} at {uv.path} is too old to read this project's lock: it has no "
            f"`uv export --format pylock.toml` (added in uv {MIN_EXPORT}); install a newer one: "
            "`pip install 'uv>=0.9.24'`, or unset UVEXTRA_UV"
        )
    return Context(project=proj, env=env, uv=uv)


def _default_groups(ctx: Context, asked: bool | None, state: State | None = None) -> None:
    """uv's ``--no-default-groups``: as asked, else as the last switch ran it (check and repair aim at what it synced)."""
    flag = asked if asked is not None else bool(state is not None and state.no_default_groups)
    if flag != ctx.project.no_default_groups:
        ctx.project = replace(ctx.project, no_default_groups=flag)  # sync and export both say it (selection_args)


# ---------------------------------------------------------------------------------------------------- extras


@dataclass(frozen=True)
class Chosen:
    """Which extras an operation aims at, how uvextra knew, and — for inference — whether it could tell at all."""

    extras: tuple[str, ...]
    source: str
    unknown: str | None = None  # "none" (almost nothing of the project installed) or "tie"
    # backends inference could not read here (the network, no wheel for this Python …): (name, why); judged without
    unreadable: tuple[tuple[str, str], ...] = ()


def _resolve_extras(ctx: Context, extras: Sequence[str] | None, state: State) -> Chosen:
    if extras:
        if list(extras) == [AUTO]:
            return Chosen(*_auto_extra(ctx))
        return Chosen(ctx.project.validate_extras(list(extras)), "given")
    mine = state.project == str(ctx.project.root)
    asked = _still_declared(ctx, state.requested)
    asked_ok = mine and asked and len(asked) == len(state.requested)
    recorded = _still_declared(ctx, state.extras)
    recorded_ok = mine and recorded and len(recorded) == len(state.extras)
    why = f" ({state.requested_failure})" if state.requested_failure else ""
    if asked_ok and (state.requested_changed or not recorded_ok):
        last = f"; the last successful switch was to {', '.join(state.extras)}" if state.extras else ""
        return Chosen(tuple(asked), f"asked for by the last switch, which did not finish{why}{last}")
    if recorded_ok:
        after = (
            f"; the switch to {', '.join(asked)} after it did not finish and changed nothing{why}" if asked_ok else ""
        )
        return Chosen(tuple(recorded), f"recorded by the last switch ({ctx.env.state_dir / 'state.json'}){after}")
    return _infer_extras(ctx)


def _still_declared(ctx: Context, names: Sequence[str]) -> list[Backend]:
    """The recorded backends this project still declares, as the same kind (extra or group)."""
    return [b for n in names for b in ctx.project.backends if str(b) == str(n) and b.kind == (kind_of(n) or EXTRA)]


def _auto_extra(ctx: Context) -> tuple[tuple[str, ...], str]:
    from .accelerators import choose_extra, detect_rocm, read_driver_version

    driver, _where = read_driver_version()
    backends = ctx.project.offered
    try:
        extra, reason = choose_extra(list(dict.fromkeys(str(b) for b in backends)), driver, detect_rocm())
    except ValueError as exc:
        raise UvextraError(f"`auto` cannot choose: {exc}") from None
    return ctx.project.validate_extras([extra]), f"auto: {reason}"


def _infer_extras(ctx: Context) -> Chosen:
    """Per conflict set, the extra (or group) whose own packages (those not shared by every member of the set) are
    installed; then each backend outside every set whose own packages (beyond the base) are all installed.

    Nothing of a set's own packages installed is not a match, and two extras matching equally well is a tie: both
    are said as they are, never turned into a guess. Nor is a stray package a match (a ``triton`` or ``nvidia-*``
    that something else installed, and no torch): an extra matches only with real evidence — what it asks for
    itself (its torch, at the locked version) or most of its own packages installed.
    """
    in_sets = {(str(b), kind_of(b) or EXTRA) for s in ctx.project.conflict_sets for b in s}
    loose = [b for b in ctx.project.backends if (str(b), b.kind) not in in_sets]
    if not ctx.project.conflict_sets and not loose:
        return Chosen((), "no extras recorded; checking the base dependencies")
    installed = scan(ctx.env)
    chosen: list[str] = []
    why: list[str] = []
    unknown: str | None = None
    unreadable: dict[str, str] = {}
    for whole in ctx.project.conflict_sets:
        wanted = _readable(ctx, whole, unreadable)
        group = tuple(e for e in whole if e in wanted)
        if not group:  # nothing of this set can be read here (each named with why): judged from the other sets;
            why.append(f"none of {', '.join(whole)} can be read here")  # a check of the base still says it fails
            continue
        pinned = {e: {(n, w.version) for n, w in wanted[e].items()} for e in group}
        if len(group) > 1:
            shared = set.intersection(*pinned.values())
        else:  # one backend readable: what it shares with the base is not its own
            shared = pinned[group[0]] & {(n, w.version) for n, w in _wanted(ctx, ()).items()}
        own = {e: pinned[e] - shared for e in group}
        scores = {e: sum(1 for n, v in own[e] if n in installed and installed[n].version == v) for e in group}
        best = max(scores.values())
        # the share of its own packages installed ranks first: a loose extra may bring one of a CUDA extra's
        # packages (nvidia-*), which must not outweigh the CPU extra's whole (one-package) own set
        rank = {e: (scores[e] / len(own[e]) if own[e] else 0.0, scores[e]) for e in group}
        asks = {e: names | {"torch"} for e, names in _asks_for(ctx, group).items()}
        # real evidence: what the extra asks for itself is installed (at its locked version), or most of its own
        evident = [
            e
            for e in group
            if 2 * scores[e] > len(own[e])
            or any(n in asks[e] and n in installed and installed[n].version == v for n, v in own[e])
        ]
        leaders = [e for e in evident if rank[e] == max(rank[c] for c in evident)]
        counts = ", ".join(f"{e}: {scores[e]} of {len(own[e])}" for e in group)
        members = {(str(b), kind_of(b) or EXTRA) for b in group}
        default = next(
            (
                d
                for d in ctx.project.default_backends
                if (str(d), GROUP) in members and not ctx.project.no_default_groups
            ),
            None,
        )
        same = not any(own.values()) and any(n in installed and installed[n].version == v for n, v in shared)
        if same:  # every extra of the set pins the same versions: what is installed fits all of them alike
            unknown = "tie"
            why.append(f"a tie: {' and '.join(group)} lock the same versions, and those are installed")
        elif best == 0 and default is not None:  # what a plain `uv sync` installs: the project's own default
            chosen.append(default)
            why.append(
                f"none of {', '.join(group)} is installed; {default} is the project's default "
                "([tool.uv] default-groups), what `uv sync` installs"
            )
        elif best == 0:
            unknown = unknown or "none"
            why.append(f"none of {', '.join(group)} is installed (their own packages installed: {counts})")
        elif not evident:
            unknown = unknown or "none"
            stray = "; ".join(
                f"{e}'s {', '.join(f'{n} {v}' for n, v in sorted(own[e]) if n in installed and installed[n].version == v)}"
                for e in group
                if scores[e]
            )
            needs = " or ".join(sorted({n for e in group for n, _v in own[e] if n in asks[e]})) or "torch"
            why.append(
                f"none of {', '.join(group)} is installed: only stray packages ({stray}), without {needs} "
                f"or most of an extra's own packages (their own packages installed: {counts})"
            )
        elif len(leaders) > 1:
            unknown = "tie"
            why.append(f"a tie: {' and '.join(leaders)} match what is installed equally well ({counts})")
        else:
            chosen.append(leaders[0])
            why.append(f"{leaders[0]} matches what is installed ({counts} of their own packages installed)")
    if loose:
        base = {(n, w.version) for n, w in _wanted(ctx, ()).items()}
        readable = _readable(ctx, loose, unreadable)
        for backend in loose:
            if backend not in readable:
                continue
            loose_own = {(n, w.version) for n, w in readable[backend].items()} - base
            if loose_own and all(n in installed and installed[n].version == v for n, v in loose_own):
                chosen.append(backend)
                why.append(
                    f"{backend} (outside every conflict set) is installed ({len(loose_own)} of its own packages)"
                )
        if not ctx.project.conflict_sets and not chosen:
            why.append(
                "no extras recorded, and none outside a conflict set is installed; checking the base dependencies"
            )
            return Chosen((), "; ".join(why), unreadable=tuple(unreadable.items()))
    return Chosen(tuple(chosen), "inferred: " + "; ".join(why), unknown, tuple(unreadable.items()))


def _readable(ctx: Context, backends: Sequence[str], unreadable: dict[str, str]) -> dict[str, dict[str, Wanted]]:
    """What the lock wants for each backend alone; one that cannot be read here (it has no wheel for this Python, uv
    cannot export it) goes into ``unreadable`` with why, and inference judges from the others."""
    out: dict[str, dict[str, Wanted]] = {}
    for backend in backends:
        try:
            out[backend] = _wanted(ctx, (backend,))
        except UvextraError as exc:
            unreadable[backend] = str(exc)
    return out


def _asks_for(ctx: Context, backends: Sequence[str]) -> dict[str, set[str]]:
    """Per backend, the names its own table in pyproject.toml lists (what it asks for itself, not what those bring)."""
    from .names import canonicalize_name
    from .project import _load_toml

    try:
        data = _load_toml(ctx.project.pyproject)
    except UvextraError:
        data = {}
    out: dict[str, set[str]] = {}
    for backend in backends:
        if (kind_of(backend) or EXTRA) == EXTRA:
            tables = (data.get("project") or {}).get("optional-dependencies") or {}
        else:
            tables = data.get("dependency-groups") or {}
        names = out.setdefault(backend, set())
        for key, requirements in tables.items() if isinstance(tables, dict) else ():
            if canonicalize_name(str(key)) != str(backend) or not isinstance(requirements, list):
                continue
            for req in requirements:  # a group's {include-group = ...} is not a package: skipped
                match = _REQUIREMENT_NAME.match(req) if isinstance(req, str) else None
                if match:
                    names.add(canonicalize_name(match.group(0)))
    return out


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


# ---------------------------------------------------------------------------------------------------- pieces


def _wanted(ctx: Context, extras: Sequence[str]) -> dict[str, Wanted]:
    try:
        text = export_pylock(ctx.project, ctx.env, ctx.uv, extras)
    except NeedsDownload:  # the lock lacks hashes uv would download wheels for: read it without the network
        return wanted_offline(ctx.project, ctx.env, ctx.uv, extras)
    return wanted_from_pylock(text, ctx.project, ctx.env)


def _lock_info(ctx: Context) -> LockInfo:
    return read_uv_lock(ctx.project, ctx.env)


def _protected(ctx: Context, installed: Mapping[str, Installed]) -> set[str]:
    return kernel_closure(installed, interpreter_info(str(ctx.env.python)).marker_env)


def _diff(
    before: Mapping[str, Installed], after: Mapping[str, Installed]
) -> tuple[list[Change], list[Change], set[str]]:
    installed, removed, fresh = [], [], set()
    for name, dist in sorted(after.items()):
        old = before.get(name)
        if old is None:
            installed.append(Change(name, None, dist.version))
            fresh.add(name)
        elif old.version != dist.version or old.fingerprint != dist.fingerprint:
            installed.append(Change(name, old.version, dist.version))
            fresh.add(name)
    for name, dist in sorted(before.items()):
        if name not in after:
            removed.append(Change(name, dist.version, None))
    return installed, removed, fresh


def _start_probe(ctx: Context, extras: Sequence[str]) -> ProbeHandle:
    from .cuda_probe import probe_timeout, start_probe
    from .stack import import_names

    return start_probe(
        str(ctx.env.python),
        selected_extras=list(extras),
        timeout=probe_timeout(),
        companions=import_names(scan(ctx.env)),
    )


def _owned(ctx: Context, state: State, lock: LockInfo | None = None) -> set[str]:
    """What this project put (or may put) here: every name its uv.lock locks, and what uvextra recorded installing."""
    lock = lock if lock is not None else _lock_info(ctx)
    return project_owned((name for name, _version in lock.sources), state.owned)


def _check_into(
    ctx: Context,
    report: Report,
    extras: Sequence[str],
    *,
    fresh: AbstractSet[str] = frozenset(),
    state: State | None = None,
    verify: bool = False,
) -> tuple[dict[str, Wanted], dict[str, Installed], State]:
    state = state if state is not None else load_state(ctx.env)
    try:
        wanted = _wanted(ctx, extras)
    except UvextraError as exc:  # never "drift: none" for a lock that could not be read
        report.lock_unread = str(exc)
        raise
    report.lock_unread = None
    installed = scan(ctx.env)
    files = _files(report, wanted, installed, verify)
    kernel = _protected(ctx, installed)
    lock = _lock_info(ctx)
    owned = _owned(ctx, state, lock)
    report.kernel_protected = sorted(n for n in kernel if n not in wanted)
    not_ours = {n for n in installed if n not in owned}  # never "extraneous": a switch would never remove them
    report.drift, report.unverified = classify(
        wanted,
        installed,
        records=state.packages,
        lock=lock,
        protected=kernel | not_ours,
        fresh=fresh,
        marker_env=interpreter_info(str(ctx.env.python)).marker_env,
        files=files,
    )
    _missing_sources_into(report, wanted)
    _stack_into(ctx, report, extras, wanted, installed)
    return wanted, installed, state


def _missing_sources_into(report: Report, wanted: Mapping[str, Wanted]) -> None:
    """A path or editable dependency whose folder is missing or empty (a git submodule not checked out): said as
    such, and no repair offered — uv fails on it too ("Distribution not found")."""
    gone: dict[str, str] = {}
    for name, w in wanted.items():
        if w.kind not in ("editable", "directory") or not w.location:
            continue
        folder = Path(os.path.normpath(w.location))
        if not folder.is_dir():
            gone[name] = f"its source folder {folder} does not exist"
        elif not any((folder / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
            gone[name] = f"its source folder {folder} is empty (no pyproject.toml or setup.py)"
    report.missing_sources = gone
    report.drift = [
        replace(
            d,
            wanted=d.wanted or wanted[d.package].kind,
            detail=(
                f"{gone[d.package]}: a git submodule not checked out? (`git submodule update --init`); uv cannot install it "
                "either"
            ),
        )
        if d.package in gone and d.is_error
        else d
        for d in report.drift
    ]


def _files(
    report: Report, wanted: Mapping[str, Wanted], installed: Mapping[str, Installed], verify: bool
) -> dict[str, FileCheck]:
    """Every package the check judges, held against its RECORD (``verify``: each file's sha256 too, timed)."""
    started = time.perf_counter()
    files = {name: check_files(installed[name], verify=verify) for name in wanted if name in installed}
    if verify:
        took = time.perf_counter() - started
        checked = sum(f.hashes_checked for f in files.values())
        report.verified = {"files": checked, "seconds": round(took, 2)}
    return files


def _stack_into(
    ctx: Context,
    report: Report,
    extras: Sequence[str],
    wanted: Mapping[str, Wanted],
    installed: Mapping[str, Installed],
) -> None:
    """The static stack check (files only) and the project lint; the probe adds its dynamic evidence later."""
    from .stack import check_stack, lint_routing

    where = {n: w.index or w.location for n, w in wanted.items()}
    report.stack = check_stack(installed, where)
    report.routing = lint_routing(ctx.project.pyproject, extras, where, (e.package for e in report.stack))


def _record(
    ctx: Context,
    report: Report,
    state: State,
    extras: Sequence[str],
    wanted: Mapping[str, Wanted],
    installed: Mapping[str, Installed],
) -> None:
    """Remember the provenance of every package that is now proven to be what the lock wants."""
    doubtful = {d.package for d in report.drift} | {u.package for u in report.unverified}
    for name, want in wanted.items():
        inst = installed.get(name)
        if inst is None or name in doubtful:
            continue
        state.packages[name] = Provenance(
            version=inst.version,
            source=want.kind,
            index=want.index,
            wheel=want.wheel,
            sha256=want.wheel_hash,
            fingerprint=inst.fingerprint,
        )
    for name in list(state.packages):
        if name not in installed:
            del state.packages[name]
    state.extras = list(extras)
    state.no_default_groups = ctx.project.no_default_groups
    state.requested, state.requested_failure = [], None
    state.project = str(ctx.project.root)
    _save(ctx, report, state)


def _record_failure(ctx: Context, report: Report, state: State, extras: Sequence[str], *, changed: bool = True) -> None:
    """A switch that did not finish: remember what was asked, so check and repair aim at it — or, when it changed
    nothing, at the last successful switch's extras, saying so; never at a third extra inferred from a half-way venv.
    """
    state.requested = list(extras)
    state.requested_failure = report.failure
    state.requested_changed = changed
    state.project = str(ctx.project.root)
    _save(ctx, report, state)


def _save(ctx: Context, report: Report, state: State) -> None:
    report.state_saved = save_state(ctx.env, state)
    if not report.state_saved:
        report.warnings.append(f"could not write {ctx.env.state_dir}; build drift cannot be tracked in this venv")


def _note_owned(state: State, fresh: set[str], after: Mapping[str, Installed]) -> None:
    """What uvextra's uv just installed is the project's; what is gone is nobody's any more."""
    state.owned = sorted((set(state.owned) | fresh) & set(after))


def _sync_args(
    ctx: Context,
    extras: Sequence[str],
    reinstall: Sequence[str] = (),
    frozen: bool = False,
    locked: bool = False,
    exact: bool = False,
) -> list[str]:
    args = ["sync", *ctx.project.uv_project_args(), "--python", str(ctx.env.python)]
    if not exact:
        args.insert(1, "--inexact")
    if frozen:
        args.append("--frozen")
    elif locked:
        args.append("--locked")
    args += ctx.project.selection_args(extras)  # --extra X / --group X, as the project declares it
    for name in reinstall:
        args += ["--reinstall-package", name]
    return args


def _require_writable(ctx: Context) -> None:
    if not ctx.env.writable():
        raise UvextraError(
            f"the environment {ctx.env.prefix} is read-only; uvextra changes nothing there — "
            "create your own venv (`uv venv`), install ipykernel into it and start the kernel from it"
        )


def _require_lock(ctx: Context, extras: Sequence[str]) -> None:
    if not ctx.project.lockfile.is_file():
        extra = " ".join(extras) or (ctx.project.offered[0] if ctx.project.offered else "EXTRA")
        raise UvextraError(
            f"no uv.lock in {ctx.project.lock_root}, so there is nothing to compare with: "
            f"run `uvextra switch {extra}` (it locks) or `uv lock`"
        )


# uv's words when it could not reach an index (connection, DNS, TLS, timeouts, a server error).
_UNREACHABLE = re.compile(
    r"connection refused|error sending request|dns error|failed to lookup address|could not connect|"
    r"tcp connect error|connection reset|network is unreachable|timed out|operation timed out|"
    r"server error|status code 5\d\d|50[234] |certificate|client error \(connect\)",
    re.IGNORECASE,
)


def _uv_error(output: Sequence[str]) -> str:
    """uv's own error text: from its first ``error:`` line on (else its last lines), as uv wrote it."""
    lines = [ln.rstrip() for ln in output if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("error:")), None)
    picked = lines[first:] if first is not None else lines[-5:]
    return "\n".join(picked[:40])


_DISK_FULL = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122", re.IGNORECASE)


def _fail_with_uv(ctx: Context, report: Report, args: Sequence[str], result: UvResult) -> None:
    text = _uv_error(result.output)
    report.uv_error = text or None
    summary = " ".join(ln.strip() for ln in text.splitlines()[:4]) or "no output"
    if result.returncode < 0:  # killed by a signal: nothing of uv's own says so
        import signal

        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        why = " — out of memory? (the OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        report.failure_kind = "killed"
        report.failure = (
            f"uv was killed ({name}){why} before `uv {args[0]}` finished; packages it was writing "
            f"may be half-installed (the check below holds every file against its RECORD). "
            f"Its last words: {summary}"
        )
        return
    if _DISK_FULL.search(text):
        from .space import mount_of

        where = mount_of(_path_in(text) or ctx.env.prefix)
        report.failure_kind = "disk-full"
        report.failure = f"disk full on {where}: uv {args[0]} failed (exit {result.returncode}): {summary}"
        return
    report.failure_kind = "network" if _UNREACHABLE.search(text) else "uv"
    report.failure = f"uv {args[0]} failed (exit {result.returncode}): {summary}"


def _path_in(text: str) -> Path | None:
    """The first absolute path uv names in backticks (the file it could not write)."""
    for match in re.finditer(r"`(/[^`]+)`", text):
        return Path(match.group(1))
    return None


def _run_sync(ctx: Context, report: Report, args: list[str], on_line: LineCallback | None) -> bool:
    def collect(line: str) -> None:
        report.log.append(line)
        if on_line is not None:
            on_line(line)

    result = run_uv(ctx.uv, args, ctx.env, cwd=ctx.project.root, on_line=collect)
    if result.returncode != 0:
        _fail_with_uv(ctx, report, args, result)
        return False
    return True


def _follow_up_failed(report: Report, exc: UvextraError) -> None:
    if report.failure is None:
        report.failure = f"uv's sync ran, but what came after it failed: {exc}"
        report.failure_kind = "follow-up"
    else:
        report.warnings.append(str(exc))


# ---------------------------------------------------------------------------------------------------- verbs


def check(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    extras: Sequence[str] | None = None,
    *,
    probe: bool = False,
    command: str = "check",
    no_default_groups: bool | None = None,
    verify: bool = False,
) -> Report:
    """Compare the venv with what the lock wants for ``extras`` (default: recorded, else inferred): versions, builds,
    sources, and every file each package's RECORD lists (``verify``: their sha256 too)."""
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report(command)
    state = load_state(ctx.env)
    _default_groups(ctx, no_default_groups, state)
    _require_lock(ctx, extras or ())
    chosen = _resolve_extras(ctx, extras, state)
    report.extras, report.extras_source, report.extras_unknown = list(chosen.extras), chosen.source, chosen.unknown
    report.unreadable = dict(chosen.unreadable)
    try:
        stale = stale_lock(ctx.project, ctx.env, ctx.uv)
    except LockUnknown as exc:
        stale = None
        report.warnings.append(str(exc))
    if stale:  # never "matches the lock" when the lock no longer says what the project declares
        report.failure_kind = "stale-lock"
        report.failure = stale
    with _probing(ctx, report, chosen.extras, probe) as start:
        start()
        _check_into(ctx, report, chosen.extras, state=state, verify=verify)
    report.elapsed_s = time.perf_counter() - started
    return report


@contextmanager
def _probing(ctx: Context, report: Report, extras: Sequence[str], wanted: bool) -> Iterator[Callable[[], None]]:
    """Start the probe when the caller says the venv will not change any more; collect it; never leak its process.

    The handle is closed on every way out (an error beside the probe, an interrupt while it is awaited): no child
    outlives the verb that started it.
    """
    with ExitStack() as handles:
        started: list[ProbeHandle] = []

        def start() -> None:
            if wanted and not started:
                started.append(handles.enter_context(_start_probe(ctx, extras)))

        yield start
        if started:
            from .stack import merge_dynamic

            if not started[0].done():
                fresh_torch = any(c.name == "torch" for c in report.changes.installed)
                say(PROBING_FIRST if fresh_torch else PROBING)
            report.probe = started[0].result()
            merge_dynamic(report.stack, report.probe.companions)


def status(project: str | os.PathLike[str] | None = None, python: str | os.PathLike[str] | None = None) -> Report:
    """The current extras, drift and CUDA verdict of the venv."""
    return check(project, python, None, probe=True, command="status")


def switch(
    extras: Sequence[str],
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    *,
    probe: bool = True,
    keep_extraneous: bool = False,
    exact: bool = False,
    repair: bool = False,
    frozen: bool = False,
    locked: bool = False,
    on_line: LineCallback | None = None,
    on_wait: LineCallback | None = None,
    no_default_groups: bool = False,
    space_check: bool = True,
) -> Report:
    """``uv sync --inexact --extra …`` into the target venv, then remove what only this project put there; check.

    Removed: what the new selection does not want, the running kernel does not need and this project installed
    (its uv.lock locks it, or uvextra's records say it installed it). Kept and reported: everything else (pip,
    setuptools, hand installs, the server stack). ``exact`` is uv's exact sync, the kernel closure still kept;
    ``keep_extraneous`` removes nothing. A missing ``uv.lock`` is created as ``uv sync`` would; ``frozen`` (use
    the lock as it is) and ``locked`` (refuse a lock that is out of date) refuse instead. The probe runs after the
    last change. ``space_check`` refuses (exit 1, nothing changed) when the lock's wheels cannot fit on the venv's or
    uv's cache's filesystem.
    """
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report("switch")
    _default_groups(ctx, no_default_groups)  # uv's --no-default-groups, recorded for check and repair
    if not extras:
        raise UvextraError(
            f"name an extra to switch to: {', '.join(ctx.project.offered) or '(none declared)'}, or auto"
        )
    resolved = _resolve_extras(ctx, extras, State())
    chosen, report.extras_source = resolved.extras, resolved.source
    report.extras = list(chosen)
    if (frozen or locked) and not ctx.project.lockfile.is_file():
        flag = "--frozen" if frozen else "--locked"
        raise UvextraError(
            f"no uv.lock in {ctx.project.lock_root}, and {flag} never creates one: run `uv lock` first, "
            f"or switch without {flag} (uvextra then locks as `uv sync` does)"
        )
    _require_writable(ctx)
    try:
        with switch_lock(ctx.env, on_wait), _probing(ctx, report, chosen, probe) as start_probe:
            _switch_locked(
                ctx,
                report,
                chosen,
                keep_extraneous=keep_extraneous,
                exact=exact,
                repair=repair,
                frozen=frozen,
                locked=locked,
                on_line=on_line,
                space_check=space_check,
            )
            start_probe()  # after the last change: the verdict describes what is installed now
    except Interrupted:
        report.interrupted = True
        report.failure_kind = "interrupted"
        report.failure = "interrupted: uv was stopped before it finished; the environment was checked again"
        _recheck_quietly(ctx, report, chosen)
        _record_failure(ctx, report, load_state(ctx.env), chosen)
    report.elapsed_s = time.perf_counter() - started
    return report


def _switch_locked(
    ctx: Context,
    report: Report,
    chosen: Sequence[str],
    *,
    keep_extraneous: bool,
    exact: bool,
    repair: bool,
    frozen: bool,
    locked: bool,
    on_line: LineCallback | None,
    space_check: bool = True,
) -> None:
    before = scan(ctx.env)
    state = load_state(ctx.env)
    kernel_needs = _protected(ctx, before)
    # uv's exact sync only where asked for and no kernel lives here; otherwise inexact, then remove what is ours.
    exact_sync = exact and not keep_extraneous and not kernel_needs
    if space_check:  # refused here, nothing has changed yet (not even the record of what was asked)
        _ensure_space(ctx, report, _plan(ctx, chosen, before))
    _record_failure(ctx, report, state, chosen)  # until it finishes, the venv is on its way to `chosen`
    with watch_sync(ctx, chosen, before, on_line) as sync_line:  # names the phases, counts the downloads
        synced = _run_sync(
            ctx, report, _sync_args(ctx, chosen, frozen=frozen, locked=locked, exact=exact_sync), sync_line
        )
    if synced:
        try:
            _remove_what_is_ours(
                ctx, report, chosen, state, keep_extraneous=keep_extraneous, exact=exact, on_line=on_line
            )
        except Interrupted:
            raise  # in any phase an interrupt is one (exit 130), re-checked by switch()
        except UvextraError as exc:
            _follow_up_failed(report, exc)
    after = scan(ctx.env)
    report.changes.installed, report.changes.removed, fresh = _diff(before, after)
    _note_owned(state, fresh, after)
    replaced = sorted(fresh & kernel_needs)
    if replaced:  # the lock itself pins something the running kernel imports: it keeps the old copy in memory
        report.warnings.append(
            f"the lock replaced {', '.join(replaced)}, which the kernel itself uses; restart the kernel "
            "before relying on it"
        )
    if not ctx.project.lockfile.is_file():  # uv failed before it could lock: nothing to compare with
        report.warnings.append(
            f"no uv.lock in {ctx.project.lock_root} yet (uv did not get as far as locking); "
            "nothing to compare the environment with"
        )
        _record_failure(ctx, report, state, chosen, changed=bool(report.changes.installed or report.changes.removed))
        return
    try:
        say("checking the environment against the lock")
        wanted, installed, state = _check_into(ctx, report, chosen, fresh=fresh, state=state)
        report.changes.kept = sorted(set(report.changes.kept) | set(report.kernel_protected))
        # uv takes a half-installed package (a killed or disk-full install) for a whole one ("Checked 10 packages"):
        # a switch that finds one reinstalls it, as a repair would, and checks again; never where uv cannot install
        # a missing source folder
        broken = sorted(d.package for d in report.errors if d.kind == "files")
        if (
            report.failure is None
            and not report.missing_source_errors
            and (broken or (repair and (report.errors or report.unverified)))
        ):
            _repair_locked(ctx, report, chosen, state, on_line, only=None if repair else broken)
            wanted, installed, state = _check_into(ctx, report, chosen, fresh=set(report.repaired), state=state)
            _say_whole(report)
    except Interrupted:
        raise
    except UvextraError as exc:
        _follow_up_failed(report, exc)
    if report.failure is None:
        _record(ctx, report, state, chosen, wanted, installed)
    else:
        _record_failure(ctx, report, state, chosen, changed=bool(report.changes.installed or report.changes.removed))


def _remove_what_is_ours(
    ctx: Context,
    report: Report,
    chosen: Sequence[str],
    state: State,
    *,
    keep_extraneous: bool,
    exact: bool,
    on_line: LineCallback | None,
) -> None:
    wanted = _wanted(ctx, chosen)
    mid = scan(ctx.env)
    remove, foreign = removable(mid, wanted, _protected(ctx, mid), _owned(ctx, state), exact=exact)
    report.changes.kept_foreign = foreign
    if remove and not keep_extraneous:
        say(
            f"removing {len(remove)} package{'s' if len(remove) != 1 else ''} the new extras do not want: "
            f"{', '.join(remove[:6])}{', …' if len(remove) > 6 else ''}"
        )
        _run_sync(ctx, report, ["pip", "uninstall", "--python", str(ctx.env.python), *remove], on_line)
    elif remove:
        report.changes.kept.extend(remove)


def _record_identity(dist: Installed) -> tuple[int, int] | None:
    try:
        st = (dist.dist_info / "RECORD").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _plan(ctx: Context, chosen: Sequence[str], before: Mapping[str, Installed]) -> list[Wanted]:
    """What a sync to ``chosen`` will install, as the lock says (nothing when there is no lock yet to read)."""
    from .space import to_install

    if not ctx.project.lockfile.is_file():
        return []
    try:
        wanted = _wanted(ctx, chosen)
    except UvextraError:
        return []  # uv's own sync says what is wrong with the lock, in its words
    return to_install(wanted, {n: d.version for n, d in before.items()})


def _uv_cache_dir(ctx: Context) -> Path | None:
    if os.environ.get("UV_NO_CACHE"):
        return None
    configured = os.environ.get("UV_CACHE_DIR")
    if configured:
        return Path(configured)
    from .uv import capture_uv

    proc = capture_uv(ctx.uv, ["cache", "dir", *ctx.project.uv_project_args()], ctx.env, cwd=ctx.project.root)
    out = proc.stdout.strip()
    return Path(out) if proc.returncode == 0 and out else None


def _ensure_space(ctx: Context, report: Report, plan: Sequence[Wanted]) -> None:
    """Refuse (exit 1, before anything changes) when what uv will write cannot fit; warn when it may not."""
    if not plan:
        return
    from .space import human, needs

    cache_dir = _uv_cache_dir(ctx)
    if cache_dir is None:
        return
    for need in needs(plan, ctx.env.prefix, cache_dir):
        if need.refused:
            raise UvextraError(
                f"not enough disk space: this needs about {human(need.estimate)} on {need.mount} ({need.why}; at "
                f"least {human(need.certain)}), {human(need.free)} free — free space there, or point UV_CACHE_DIR "
                "at a roomier disk; nothing was changed (--no-space-check goes ahead anyway)",
                exit_code=1,
            )
        if need.tight:
            report.warnings.append(
                f"disk space is tight: this may need about {human(need.estimate)} on {need.mount} ({need.why}), "
                f"{human(need.free)} free"
            )


def _recheck_quietly(ctx: Context, report: Report, extras: Sequence[str]) -> None:
    try:
        _check_into(ctx, report, extras)
    except UvextraError as exc:
        report.warnings.append(f"could not re-check the environment: {exc}")


def _repair_locked(
    ctx: Context,
    report: Report,
    extras: Sequence[str],
    state: State,
    on_line: LineCallback | None,
    only: Sequence[str] | None = None,
) -> None:
    targets = (
        sorted(only)
        if only is not None
        else sorted({d.package for d in report.errors} | {u.package for u in report.unverified})
    )
    report.repaired_from = {d.package: d.detail for d in report.errors if d.kind == "files" and d.package in targets}
    wanted = _wanted(ctx, extras)
    _ensure_space(ctx, report, [wanted[n] for n in targets if n in wanted])
    before = scan(ctx.env)
    written = {n: _record_identity(before[n]) for n in targets if n in before}
    with watch_sync(ctx, extras, {n: d for n, d in before.items() if n not in targets}, on_line) as sync_line:
        synced = _run_sync(ctx, report, _sync_args(ctx, extras, reinstall=targets, frozen=True), sync_line)
    if synced:
        after = scan(ctx.env)
        installed, removed, fresh = _diff(before, after)
        # the same wheel again has the same RECORD (fingerprint): a reinstall still writes it anew
        again = {
            n
            for n in targets
            if n in after and n not in fresh and n in written and _record_identity(after[n]) != written[n]
        }
        installed += [Change(n, before[n].version, after[n].version) for n in sorted(again)]
        fresh |= again
        report.changes.installed += installed
        report.changes.removed += removed
        report.repaired = sorted(fresh & set(targets))
        _note_owned(state, fresh, after)
        for name in targets:  # their old records described the wrong build
            if name in fresh:
                state.packages.pop(name, None)


def repair(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    extras: Sequence[str] | None = None,
    *,
    probe: bool = False,
    on_line: LineCallback | None = None,
    on_wait: LineCallback | None = None,
    no_default_groups: bool | None = None,
) -> Report:
    """Reinstall exactly the drifted (and unverified) packages, then check again.

    Without ``extras``: those the user asked for last (a switch that did not finish), else the last successful
    switch's, else inferred; when inference cannot tell (nothing of the project installed, or a tie) nothing is
    installed and the error says to switch.
    """
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report("repair")
    state = load_state(ctx.env)
    _default_groups(ctx, no_default_groups, state)
    _require_lock(ctx, extras or ())
    chosen = _resolve_extras(ctx, extras, state)
    if chosen.unknown:
        raise UvextraError(
            f"cannot tell which extras to repair ({chosen.source.removeprefix('inferred: ')}); "
            f"run `uvextra switch {' | '.join(ctx.project.offered)}`, or pass --extra NAME"
        )
    report.extras, report.extras_source = list(chosen.extras), chosen.source
    report.unreadable = dict(chosen.unreadable)
    try:
        with _probing(ctx, report, chosen.extras, probe) as start_probe:
            wanted, installed, state = _check_into(ctx, report, chosen.extras, state=state)
            if (report.errors or report.unverified) and not report.missing_source_errors:  # uv would fail on those
                _require_writable(ctx)
                with switch_lock(ctx.env, on_wait):
                    _repair_and_recheck(ctx, report, chosen.extras, state, on_line)
            elif (
                state.requested
                and list(state.requested) == list(chosen.extras)
                and report.failure is None
                and not report.read_only
            ):
                # the switch that did not finish left the venv as its extras want it: say so from now on
                with switch_lock(ctx.env, on_wait):
                    _record(ctx, report, state, chosen.extras, wanted, installed)
            start_probe()
    except Interrupted:
        report.interrupted = True
        report.failure_kind = "interrupted"
        report.failure = "interrupted: uv was stopped before it finished; the environment was checked again"
        _recheck_quietly(ctx, report, chosen.extras)
    report.elapsed_s = time.perf_counter() - started
    return report


def _repair_and_recheck(
    ctx: Context, report: Report, extras: Sequence[str], state: State, on_line: LineCallback | None
) -> None:
    _repair_locked(ctx, report, extras, state, on_line)
    try:
        wanted, installed, state = _check_into(ctx, report, extras, fresh=set(report.repaired), state=state)
    except UvextraError as exc:
        _follow_up_failed(report, exc)
        _save(ctx, report, state)
        return
    if report.failure is None:
        _record(ctx, report, state, extras, wanted, installed)
    else:
        _save(ctx, report, state)
    for d in report.errors:
        if d.package in report.repaired:
            report.warnings.append(f"{d.package}: uv reinstalled it but it still differs from the lock")
    _say_whole(report)


def _say_whole(report: Report) -> None:
    """What was broken on disk and is whole now, in words (the re-check after the reinstall verified its files)."""
    still = {d.package for d in report.errors}
    for name, was in report.repaired_from.items():
        if name in report.repaired and name not in still:
            report.repaired_notes.append(f"{name}: was {was.split(' — ')[0]}; reinstalled, every file there now")


def probe(python: str | os.PathLike[str] | None = None, extras: Sequence[str] = ()) -> Report:
    """Only the CUDA probe of the target interpreter, in a fresh process."""
    started = time.perf_counter()
    env = resolve_environment(python)
    report = Report(
        command="probe",
        environment=str(env.prefix),
        environment_source=env.source,
        python=str(env.python),
        extras=list(extras),
    )
    if not extras:
        report.extras = load_state(env).extras
    from .cuda_probe import probe_timeout, start_probe
    from .stack import check_stack, import_names, merge_dynamic

    installed = scan(env)
    with start_probe(
        str(env.python), selected_extras=report.extras, timeout=probe_timeout(), companions=import_names(installed)
    ) as handle:
        report.probe = handle.result()
    report.stack = check_stack(installed)
    merge_dynamic(report.stack, report.probe.companions)
    report.elapsed_s = time.perf_counter() - started
    return report
