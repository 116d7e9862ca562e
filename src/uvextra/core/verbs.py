"""The operations behind every surface: status, check, switch, repair, probe. Each returns one Report.

Nothing here imports IPython or ipywidgets; the CLI, the magic and the widgets only render what comes back. Where
the verbs stand: :mod:`.context` (what they work on), :mod:`.aim` (which backends they aim at), :mod:`.uv_failure`
(why uv failed), :mod:`.progress` (the one sink they speak to).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import aim as _aim
from .context import Context, open_context
from .drift import Drift, Unverified, classify
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
from .progress import PROBING, PROBING_FIRST, Progress, watch_sync
from .protect import kernel_closure, project_owned, removable
from .report import Change, Changes, Report
from .state import Provenance, State, load_state, save_state, switch_lock
from .uv import run_uv
from .uv_failure import INTERRUPTED, Failure, follow_up
from .uv_failure import classify as classify_failure
from .vocabulary import Backend, FailureKind, Selection

if TYPE_CHECKING:  # imported when a probe starts, or the stack is checked: most calls never need them
    from .cuda_probe import ProbeHandle
    from .probe_verdict import ProbeResult
    from .stack import Misroute, StackEntry

__all__ = ["Context", "check", "open_context", "probe", "repair", "status", "switch"]

AUTO = _aim.AUTO
LineCallback = Callable[[str], None]
# What a surface knows about the target environment, said on the report: the session's "the hub's server runs from
# this venv" and "a switch here lasts until the server restarts"
Remarks = Callable[[Environment], Sequence[str]]
Backends = Sequence[Backend | str]  # what a caller names: backends, or plain names the project resolves


# ---------------------------------------------------------------------------------------------------- the aim


def _aim_at(ctx: Context, extras: Backends | None, state: State, no_default_groups: bool) -> _aim.Aim:
    """Which backends the operation aims at: said (``auto`` chooses by the machine), else the record, else inferred."""
    if extras:
        if [str(e) for e in extras] == [AUTO]:
            from .accelerators import detect_rocm, read_driver_version

            driver, _where = read_driver_version()
            return _aim.auto(ctx.project, driver, detect_rocm())
        return _aim.given(ctx.project, extras)
    record = _aim.Recorded(
        project=state.project,
        extras=tuple(state.extras),
        requested=tuple(state.requested),
        requested_failure=state.requested_failure,
        requested_changed=state.requested_changed,
        where=str(ctx.env.state_dir / "state.json"),
    )
    return _aim.from_record(ctx.project, record) or _infer(ctx, no_default_groups)


def _infer(ctx: Context, no_default_groups: bool) -> _aim.Aim:
    """Gather what inference reads (the lock per backend alone, what is installed), then infer from it."""
    reads = _aim.to_read(ctx.project)
    if not reads:  # no backend to infer: the base
        return _aim.infer(ctx.project, _aim.Evidence(), no_default_groups=no_default_groups)
    installed = scan(ctx.env)
    wanted: dict[Backend, dict[str, str]] = {}
    unreadable: dict[Backend, str] = {}
    for backend in reads:  # one that cannot be read here (no wheel for this Python …) is judged without
        try:
            wanted[backend] = _pins(_wanted(ctx, Selection((backend,), no_default_groups)))
        except UvextraError as exc:
            unreadable[backend] = str(exc)
    base = None
    if _aim.needs_base(ctx.project, wanted):
        base = _pins(_wanted(ctx, Selection((), no_default_groups)))
    from .project import _load_toml

    try:
        data = _load_toml(ctx.project.pyproject)
    except UvextraError:
        data = {}
    evidence = _aim.Evidence(
        installed={n: d.version for n, d in installed.items()},
        wanted=wanted,
        unreadable=unreadable,
        base=base,
        asks=_aim.asks_for(data, [b for s in ctx.project.conflict_sets for b in s]),
    )
    return _aim.infer(ctx.project, evidence, no_default_groups=no_default_groups)


def _pins(wanted: Mapping[str, Wanted]) -> dict[str, str]:
    return {n: w.version for n, w in wanted.items()}


# ---------------------------------------------------------------------------------------------------- pieces


def _wanted(ctx: Context, extras: Selection | Backends) -> dict[str, Wanted]:
    """What the lock wants for a selection here (plain names: with the project's default-groups choice)."""
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


def _start_probe(ctx: Context, extras: Selection) -> ProbeHandle:
    from .cuda_probe import probe_timeout, start_probe
    from .stack import import_names

    return start_probe(
        str(ctx.env.python),
        selected_extras=extras.names,
        timeout=probe_timeout(),
        companions=import_names(scan(ctx.env)),
    )


def _owned(ctx: Context, state: State, lock: LockInfo | None = None) -> set[str]:
    """What this project put (or may put) here: every name its uv.lock locks, and what uvextra recorded installing."""
    lock = lock if lock is not None else _lock_info(ctx)
    return project_owned((name for name, _version in lock.sources), state.owned)


@dataclass(frozen=True)
class _Findings:
    """What one check of the venv against the lock found: what the report says of it, and what a record is made of
    (``wanted``, ``installed``, ``state``)."""

    wanted: Mapping[str, Wanted]
    installed: Mapping[str, Installed]
    state: State
    kernel_protected: list[str]
    drift: list[Drift]
    unverified: list[Unverified]
    missing_sources: dict[str, str]
    stack: list[StackEntry]
    routing: list[Misroute]
    verified: dict[str, float] | None

    def said(self) -> dict[str, Any]:
        """The report's fields for it."""
        return {
            "kernel_protected": self.kernel_protected,
            "drift": self.drift,
            "unverified": self.unverified,
            "missing_sources": self.missing_sources,
            "stack": self.stack,
            "routing": self.routing,
            **({"verified": self.verified} if self.verified is not None else {}),
        }


def _examine(
    ctx: Context,
    extras: Selection,
    wanted: Mapping[str, Wanted],
    *,
    fresh: AbstractSet[str] = frozenset(),
    state: State | None = None,
    verify: bool = False,
) -> _Findings:
    """Check the venv against what the lock wants for ``extras`` (``wanted``, read by the caller)."""
    state = state if state is not None else load_state(ctx.env)
    installed = scan(ctx.env)
    files, verified = _files(wanted, installed, verify)
    kernel = _protected(ctx, installed)
    lock = _lock_info(ctx)
    owned = _owned(ctx, state, lock)
    not_ours = {n for n in installed if n not in owned}  # never "extraneous": a switch would never remove them
    drift, unverified = classify(
        wanted,
        installed,
        records=state.packages,
        lock=lock,
        protected=kernel | not_ours,
        fresh=fresh,
        marker_env=interpreter_info(str(ctx.env.python)).marker_env,
        files=files,
    )
    gone = _missing_sources(wanted)
    stack, routing = _stack(ctx, extras, wanted, installed)
    return _Findings(
        wanted=wanted,
        installed=installed,
        state=state,
        kernel_protected=sorted(n for n in kernel if n not in wanted),
        drift=_said_missing(drift, gone, wanted),
        unverified=unverified,
        missing_sources=gone,
        stack=stack,
        routing=routing,
        verified=verified,
    )


@dataclass
class _Sofar:
    """What a verb that changes the venv has done and found so far: what its Report is assembled from, once, at the
    end — an interrupt keeps what came before it. The helpers return values; the verb puts them here."""

    changes: Changes = field(default_factory=Changes)
    found: _Findings | None = None  # the last check's findings
    lock_unread: str | None = None  # why the last check could not read the lock
    repaired: list[str] = field(default_factory=list)
    repaired_from: dict[str, str] = field(default_factory=dict)
    repaired_notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None
    failure_kind: FailureKind | None = None
    uv_error: str | None = None
    interrupted: bool = False
    log: list[str] = field(default_factory=list)  # uv's lines, as they come
    state_saved: bool = False

    @property
    def errors(self) -> list[Drift]:
        return [d for d in self.found.drift if d.is_error] if self.found is not None else []

    @property
    def unverified(self) -> list[Unverified]:
        return self.found.unverified if self.found is not None else []

    @property
    def missing_source_errors(self) -> bool:
        return any(d.package in self.found.missing_sources for d in self.errors) if self.found is not None else False

    def fail(self, failure: Failure) -> None:
        """The operation did not complete: its kind, its line and (where uv failed) uv's words."""
        for name, value in _failure_said(failure).items():
            setattr(self, name, value)

    def follow_up_failed(self, exc: UvextraError) -> None:
        if self.failure is None:
            self.fail(follow_up(str(exc)))
        else:
            self.warnings.append(str(exc))

    def saved(self, could_not: str | None) -> None:
        """A record written (or the line that says it could not be)."""
        self.state_saved = could_not is None
        if could_not is not None:
            self.warnings.append(could_not)

    def said(self) -> dict[str, Any]:
        """The report's fields for it."""
        return {
            **(self.found.said() if self.found is not None else {}),
            "lock_unread": self.lock_unread,
            "changes": self.changes,
            "repaired": self.repaired,
            "repaired_from": self.repaired_from,
            "repaired_notes": self.repaired_notes,
            "failure": self.failure,
            "failure_kind": self.failure_kind,
            "uv_error": self.uv_error,
            "interrupted": self.interrupted,
            "log": self.log,
            "state_saved": self.state_saved,
        }


def _check(
    ctx: Context, sofar: _Sofar, extras: Selection, *, fresh: AbstractSet[str] = frozenset(), state: State | None = None
) -> _Findings:
    """A check within a verb that changes the venv: its findings are the last ones; a lock that cannot be read is
    said (never "drift: none" for it) and raises."""
    state = state if state is not None else load_state(ctx.env)
    try:
        wanted = _wanted(ctx, extras)
    except UvextraError as exc:
        sofar.lock_unread = str(exc)
        raise
    sofar.lock_unread = None
    sofar.found = _examine(ctx, extras, wanted, fresh=fresh, state=state)
    return sofar.found


def _missing_sources(wanted: Mapping[str, Wanted]) -> dict[str, str]:
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
    return gone


def _said_missing(drift: Sequence[Drift], gone: Mapping[str, str], wanted: Mapping[str, Wanted]) -> list[Drift]:
    """The drift of a package whose source folder is gone, in those words."""
    return [
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
        for d in drift
    ]


def _files(
    wanted: Mapping[str, Wanted], installed: Mapping[str, Installed], verify: bool
) -> tuple[dict[str, FileCheck], dict[str, float] | None]:
    """Every package the check judges, held against its RECORD (``verify``: each file's sha256 too, timed)."""
    started = time.perf_counter()
    files = {name: check_files(installed[name], verify=verify) for name in wanted if name in installed}
    if not verify:
        return files, None
    took = time.perf_counter() - started
    checked = sum(f.hashes_checked for f in files.values())
    return files, {"files": checked, "seconds": round(took, 2)}


def _stack(
    ctx: Context,
    extras: Selection,
    wanted: Mapping[str, Wanted],
    installed: Mapping[str, Installed],
) -> tuple[list[StackEntry], list[Misroute]]:
    """The static stack check (files only) and the project lint; the probe adds its dynamic evidence later."""
    from .stack import check_stack, lint_routing

    where = {n: w.index or w.location for n, w in wanted.items()}
    stack = check_stack(installed, where)
    return stack, lint_routing(ctx.project.pyproject, extras.backends, where, (e.package for e in stack))


def _record(ctx: Context, state: State, extras: Selection, found: _Findings) -> str | None:
    """Remember the provenance of every package that is now proven to be what the lock wants (``found``); the line
    that says the record could not be written, if it could not."""
    doubtful = {d.package for d in found.drift} | {u.package for u in found.unverified}
    for name, want in found.wanted.items():
        inst = found.installed.get(name)
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
        if name not in found.installed:
            del state.packages[name]
    state.extras = list(extras.backends)
    state.no_default_groups = extras.no_default_groups
    state.requested, state.requested_failure = [], None
    state.project = str(ctx.project.root)
    return _save(ctx, state)


def _record_failure(
    ctx: Context, state: State, extras: Selection, failure: str | None, *, changed: bool = True
) -> str | None:
    """A switch that did not finish: remember what was asked, so check and repair aim at it — or, when it changed
    nothing, at the last successful switch's extras, saying so; never at a third extra inferred from a half-way venv.
    """
    state.requested = list(extras.backends)
    state.requested_failure = failure
    state.requested_changed = changed
    state.project = str(ctx.project.root)
    return _save(ctx, state)


def _save(ctx: Context, state: State) -> str | None:
    """Write the record; the line that says it could not be written, if it could not."""
    if save_state(ctx.env, state):
        return None
    return f"could not write {ctx.env.state_dir}; build drift cannot be tracked in this venv"


def _note_owned(state: State, fresh: set[str], after: Mapping[str, Installed]) -> None:
    """What uvextra's uv just installed is the project's; what is gone is nobody's any more."""
    state.owned = sorted((set(state.owned) | fresh) & set(after))


def _sync_args(
    ctx: Context,
    extras: Selection,
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


def _require_lock(ctx: Context, extras: Backends) -> None:
    if not ctx.project.lockfile.is_file():
        extra = " ".join(map(str, extras)) or (ctx.project.offered[0].name if ctx.project.offered else "EXTRA")
        raise UvextraError(
            f"no uv.lock in {ctx.project.lock_root}, so there is nothing to compare with: "
            f"run `uvextra switch {extra}` (it locks) or `uv lock`"
        )


def _run_sync(ctx: Context, log: list[str], args: list[str], on_line: LineCallback | None) -> Failure | None:
    """Run uv (its lines to ``log`` as they come, and to ``on_line``); why it failed, classified, if it did."""

    def collect(line: str) -> None:
        log.append(line)
        if on_line is not None:
            on_line(line)

    result = run_uv(ctx.uv, args, ctx.env, cwd=ctx.project.root, on_line=collect)
    if result.returncode != 0:
        return classify_failure(args, result, ctx.env.prefix)
    return None


# ---------------------------------------------------------------------------------------------------- verbs


def check(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    extras: Backends | None = None,
    *,
    probe: bool = False,
    command: str = "check",
    no_default_groups: bool | None = None,
    verify: bool = False,
    progress: Progress | None = None,
    remarks: Remarks | None = None,
    interrupted: str | None = None,
) -> Report:
    """Compare the venv with what the lock wants for ``extras`` (default: recorded, else inferred): versions, builds,
    sources, and every file each package's RECORD lists (``verify``: their sha256 too). ``no_default_groups``
    None: as the last switch ran uv. ``interrupted``: this check follows the caller's operation that was interrupted
    (the words for it); the report says so."""
    started = time.perf_counter()
    ctx = open_context(project, python, progress)
    state = load_state(ctx.env)
    groups_off = state.no_default_groups if no_default_groups is None else no_default_groups
    _require_lock(ctx, extras or ())
    aim = _aim_at(ctx, extras, state, groups_off)
    chosen = Selection(aim.backends, groups_off)
    warnings: list[str] = []
    try:
        stale = stale_lock(ctx.project, ctx.env, ctx.uv)
    except LockUnknown as exc:
        stale = None
        warnings.append(str(exc))
    # never "matches the lock" when the lock no longer says what the project declares
    failure = Failure("stale-lock", stale) if stale else None
    with _probing(ctx, chosen, probe) as probing:
        probing.start()
        found = _examine(ctx, chosen, _wanted(ctx, chosen), state=state, verify=verify)
    if probing.result is not None:
        _merge_probe(found.stack, probing.result)
    failed = _failure_said(failure)
    if interrupted is not None:
        failed.update(interrupted=True, failure=interrupted)
    return ctx.new_report(
        command,
        **_aim_said(aim, groups_off),
        **found.said(),
        probe=probing.result,
        **failed,
        warnings=_remarked(warnings, ctx, remarks),
        elapsed_s=time.perf_counter() - started,
    )


class _Probe:
    """The probe of one verb: ``start`` it when the venv will not change any more; its ``result`` once collected."""

    def __init__(self, ctx: Context, extras: Selection, wanted: bool, handles: ExitStack) -> None:
        self._ctx, self._extras, self._wanted, self._handles = ctx, extras, wanted, handles
        self.handle: ProbeHandle | None = None
        self.result: ProbeResult | None = None

    def start(self) -> None:
        if self._wanted and self.handle is None:
            self.handle = self._handles.enter_context(_start_probe(self._ctx, self._extras))


@contextmanager
def _probing(ctx: Context, extras: Selection, wanted: bool, changes: Changes | None = None) -> Iterator[_Probe]:
    """Start the probe when the caller says the venv will not change any more; collect it; never leak its process.

    The handle is closed on every way out (an error beside the probe, an interrupt while it is awaited): no child
    outlives the verb that started it. ``changes``: what the verb changed, read when the probe is awaited (a torch
    it installed is slow to import the first time).
    """
    with ExitStack() as handles:
        probing = _Probe(ctx, extras, wanted, handles)
        yield probing
        if probing.handle is not None:
            if not probing.handle.done():
                fresh_torch = changes is not None and any(c.name == "torch" for c in changes.installed)
                ctx.progress.say(PROBING_FIRST if fresh_torch else PROBING)
            probing.result = probing.handle.result()


def _merge_probe(stack: list[StackEntry], result: ProbeResult) -> None:
    """The probe's dynamic evidence on the static stack check."""
    from .stack import merge_dynamic

    merge_dynamic(stack, result.companions)


def _failure_said(failure: Failure | None) -> dict[str, Any]:
    """The report's fields for a failure: its kind, its line and (where uv failed) uv's words."""
    if failure is None:
        return {}
    said: dict[str, Any] = {"failure_kind": failure.kind, "failure": failure.failure}
    if failure.kind in ("uv", "network", "killed", "disk-full"):
        said["uv_error"] = failure.uv_error
    return said


def _aim_said(aim: _aim.Aim, no_default_groups: bool) -> dict[str, Any]:
    """The report's fields for the aim: its selection, how it was known."""
    return {
        "extras": list(aim.backends),
        "no_default_groups": no_default_groups,
        "extras_source": aim.source,
        "extras_unknown": aim.unknown,
        "unreadable": dict(aim.unreadable),
    }


def _remarked(warnings: Sequence[str], ctx: Context, remarks: Remarks | None) -> list[str]:
    """The warnings, then the surface's remarks on the environment (each once, after uv's own)."""
    said = [ctx.uv.warning] if ctx.uv.warning else []
    said += warnings
    for line in remarks(ctx.env) if remarks is not None else ():
        if line and line not in said:
            said.append(line)
    return said[1:] if ctx.uv.warning else said


def status(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    remarks: Remarks | None = None,
) -> Report:
    """The current extras, drift and CUDA verdict of the venv."""
    return check(project, python, None, probe=True, command="status", progress=progress, remarks=remarks)


def switch(
    extras: Backends,
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    *,
    probe: bool = True,
    keep_extraneous: bool = False,
    exact: bool = False,
    repair: bool = False,
    frozen: bool = False,
    locked: bool = False,
    no_default_groups: bool = False,
    space_check: bool = True,
    progress: Progress | None = None,
    extras_source: str | None = None,
    remarks: Remarks | None = None,
) -> Report:
    """``uv sync --inexact --extra …`` into the target venv, then remove what only this project put there; check.

    Removed: what the new selection does not want, the running kernel does not need and this project installed
    (its uv.lock locks it, or uvextra's records say it installed it). Kept and reported: everything else (pip,
    setuptools, hand installs, the server stack). ``exact`` is uv's exact sync, the kernel closure still kept;
    ``keep_extraneous`` removes nothing. A missing ``uv.lock`` is created as ``uv sync`` would; ``frozen`` (use
    the lock as it is) and ``locked`` (refuse a lock that is out of date) refuse instead. The probe runs after the
    last change. ``space_check`` refuses (exit 1, nothing changed) when the lock's wheels cannot fit on the venv's or
    uv's cache's filesystem. ``no_default_groups`` is uv's, recorded for check and repair; ``progress`` hears the
    phases, uv's lines and a wait for another uvextra; ``extras_source`` says why these extras when the caller
    knows (a notebook's record); ``remarks`` adds what the caller knows about the environment.
    """
    started = time.perf_counter()
    ctx = open_context(project, python, progress)
    if not extras:
        offered = ", ".join(b.name for b in ctx.project.offered)
        raise UvextraError(f"name an extra to switch to: {offered or '(none declared)'}, or auto")
    aim = _aim_at(ctx, extras, State(), no_default_groups)
    chosen = Selection(aim.backends, no_default_groups)
    if (frozen or locked) and not ctx.project.lockfile.is_file():
        flag = "--frozen" if frozen else "--locked"
        raise UvextraError(
            f"no uv.lock in {ctx.project.lock_root}, and {flag} never creates one: run `uv lock` first, "
            f"or switch without {flag} (uvextra then locks as `uv sync` does)"
        )
    _require_writable(ctx)
    sofar = _Sofar()
    probing = None
    try:
        with switch_lock(ctx.env, ctx.progress.waiting), _probing(ctx, chosen, probe, sofar.changes) as probing:
            _switch_locked(
                ctx,
                sofar,
                chosen,
                keep_extraneous=keep_extraneous,
                exact=exact,
                repair=repair,
                frozen=frozen,
                locked=locked,
                space_check=space_check,
            )
            probing.start()  # after the last change: the verdict describes what is installed now
    except Interrupted:
        _interrupted(ctx, sofar, chosen)
        sofar.saved(_record_failure(ctx, load_state(ctx.env), chosen, sofar.failure))
    return _assemble(ctx, "switch", aim, chosen, sofar, probing, extras_source, remarks, started)


def _interrupted(ctx: Context, sofar: _Sofar, chosen: Selection) -> None:
    """An interrupt: said, and the venv checked again as it is now (quietly: a check that fails is a warning)."""
    sofar.interrupted = True
    sofar.fail(Failure("interrupted", INTERRUPTED))
    try:
        _check(ctx, sofar, chosen)
    except UvextraError as exc:
        sofar.warnings.append(f"could not re-check the environment: {exc}")


def _assemble(
    ctx: Context,
    command: str,
    aim: _aim.Aim,
    chosen: Selection,
    sofar: _Sofar,
    probing: _Probe | None,
    extras_source: str | None,
    remarks: Remarks | None,
    started: float,
) -> Report:
    """The Report of a verb that changes the venv, once: where, the aim, what it did and found, the probe's verdict
    (its dynamic evidence on the last check's stack), the surface's remarks, how long it took."""
    result = probing.result if probing is not None else None
    said = sofar.said()
    if result is not None:
        said.setdefault("stack", [])
        _merge_probe(said["stack"], result)
    aimed = _aim_said(aim, chosen.no_default_groups)
    if extras_source:
        aimed["extras_source"] = extras_source
    return ctx.new_report(
        command,
        **aimed,
        **said,
        probe=result,
        warnings=_remarked(sofar.warnings, ctx, remarks),
        elapsed_s=time.perf_counter() - started,
    )


def _switch_locked(
    ctx: Context,
    sofar: _Sofar,
    chosen: Selection,
    *,
    keep_extraneous: bool,
    exact: bool,
    repair: bool,
    frozen: bool,
    locked: bool,
    space_check: bool = True,
) -> None:
    before = scan(ctx.env)
    state = load_state(ctx.env)
    kernel_needs = _protected(ctx, before)
    # uv's exact sync only where asked for and no kernel lives here; otherwise inexact, then remove what is ours.
    exact_sync = exact and not keep_extraneous and not kernel_needs
    if space_check:  # refused here, nothing has changed yet (not even the record of what was asked)
        sofar.warnings += _space_warnings(ctx, _plan(ctx, chosen, before))
    # until it finishes, the venv is on its way to `chosen`
    sofar.saved(_record_failure(ctx, state, chosen, sofar.failure))
    with watch_sync(ctx, chosen, before, ctx.progress) as sync_line:  # names the phases, counts the downloads
        failed = _run_sync(
            ctx, sofar.log, _sync_args(ctx, chosen, frozen=frozen, locked=locked, exact=exact_sync), sync_line
        )
    if failed is not None:
        sofar.fail(failed)
    else:
        try:
            _remove_what_is_ours(ctx, sofar, chosen, state, keep_extraneous=keep_extraneous, exact=exact)
        except Interrupted:
            raise  # in any phase an interrupt is one (exit 130), re-checked by switch()
        except UvextraError as exc:
            sofar.follow_up_failed(exc)
    after = scan(ctx.env)
    sofar.changes.installed, sofar.changes.removed, fresh = _diff(before, after)
    changed = bool(sofar.changes.installed or sofar.changes.removed)
    _note_owned(state, fresh, after)
    replaced = sorted(fresh & kernel_needs)
    if replaced:  # the lock itself pins something the running kernel imports: it keeps the old copy in memory
        sofar.warnings.append(
            f"the lock replaced {', '.join(replaced)}, which the kernel itself uses; restart the kernel "
            "before relying on it"
        )
    if not ctx.project.lockfile.is_file():  # uv failed before it could lock: nothing to compare with
        sofar.warnings.append(
            f"no uv.lock in {ctx.project.lock_root} yet (uv did not get as far as locking); "
            "nothing to compare the environment with"
        )
        sofar.saved(_record_failure(ctx, state, chosen, sofar.failure, changed=changed))
        return
    found: _Findings | None = None
    try:
        ctx.progress.say("checking the environment against the lock")
        found = _check(ctx, sofar, chosen, fresh=fresh, state=state)
        sofar.changes.kept = sorted(set(sofar.changes.kept) | set(found.kernel_protected))
        # uv takes a half-installed package (a killed or disk-full install) for a whole one ("Checked 10 packages"):
        # a switch that finds one reinstalls it, as a repair would, and checks again; never where uv cannot install
        # a missing source folder
        broken = sorted(d.package for d in sofar.errors if d.kind == "files")
        if (
            sofar.failure is None
            and not sofar.missing_source_errors
            and (broken or (repair and (sofar.errors or sofar.unverified)))
        ):
            _repair_locked(ctx, sofar, chosen, state, only=None if repair else broken)
            found = _check(ctx, sofar, chosen, fresh=set(sofar.repaired), state=state)
            sofar.repaired_notes += _whole_again(sofar)
    except Interrupted:
        raise
    except UvextraError as exc:
        sofar.follow_up_failed(exc)
    if sofar.failure is None and found is not None:
        sofar.saved(_record(ctx, state, chosen, found))
    else:  # what a repair reinstalled counts too
        changed = bool(sofar.changes.installed or sofar.changes.removed)
        sofar.saved(_record_failure(ctx, state, chosen, sofar.failure, changed=changed))


def _remove_what_is_ours(
    ctx: Context, sofar: _Sofar, chosen: Selection, state: State, *, keep_extraneous: bool, exact: bool
) -> None:
    wanted = _wanted(ctx, chosen)
    mid = scan(ctx.env)
    remove, foreign = removable(mid, wanted, _protected(ctx, mid), _owned(ctx, state), exact=exact)
    sofar.changes.kept_foreign = foreign
    if remove and not keep_extraneous:
        ctx.progress.say(
            f"removing {len(remove)} package{'s' if len(remove) != 1 else ''} the new extras do not want: "
            f"{', '.join(remove[:6])}{', …' if len(remove) > 6 else ''}"
        )
        failed = _run_sync(
            ctx, sofar.log, ["pip", "uninstall", "--python", str(ctx.env.python), *remove], ctx.progress.uv_line
        )
        if failed is not None:
            sofar.fail(failed)
    elif remove:
        sofar.changes.kept.extend(remove)


def _record_identity(dist: Installed) -> tuple[int, int] | None:
    try:
        st = (dist.dist_info / "RECORD").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _plan(ctx: Context, chosen: Selection, before: Mapping[str, Installed]) -> list[Wanted]:
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


def _space_warnings(ctx: Context, plan: Sequence[Wanted]) -> list[str]:
    """Refuse (exit 1, before anything changes) when what uv will write cannot fit; the lines that warn when it may
    not."""
    if not plan:
        return []
    from .space import human, needs

    cache_dir = _uv_cache_dir(ctx)
    if cache_dir is None:
        return []
    warnings = []
    for need in needs(plan, ctx.env.prefix, cache_dir):
        if need.refused:
            raise UvextraError(
                f"not enough disk space: this needs about {human(need.estimate)} on {need.mount} ({need.why}; at "
                f"least {human(need.certain)}), {human(need.free)} free — free space there, or point UV_CACHE_DIR "
                "at a roomier disk; nothing was changed (--no-space-check goes ahead anyway)",
                exit_code=1,
            )
        if need.tight:
            warnings.append(
                f"disk space is tight: this may need about {human(need.estimate)} on {need.mount} ({need.why}), "
                f"{human(need.free)} free"
            )
    return warnings


def _repair_locked(
    ctx: Context, sofar: _Sofar, extras: Selection, state: State, only: Sequence[str] | None = None
) -> None:
    targets = (
        sorted(only)
        if only is not None
        else sorted({d.package for d in sofar.errors} | {u.package for u in sofar.unverified})
    )
    sofar.repaired_from = {d.package: d.detail for d in sofar.errors if d.kind == "files" and d.package in targets}
    wanted = _wanted(ctx, extras)
    sofar.warnings += _space_warnings(ctx, [wanted[n] for n in targets if n in wanted])
    before = scan(ctx.env)
    written = {n: _record_identity(before[n]) for n in targets if n in before}
    with watch_sync(ctx, extras, {n: d for n, d in before.items() if n not in targets}, ctx.progress) as sync_line:
        failed = _run_sync(ctx, sofar.log, _sync_args(ctx, extras, reinstall=targets, frozen=True), sync_line)
    if failed is not None:
        sofar.fail(failed)
        return
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
    sofar.changes.installed += installed
    sofar.changes.removed += removed
    sofar.repaired = sorted(fresh & set(targets))
    _note_owned(state, fresh, after)
    for name in targets:  # their old records described the wrong build
        if name in fresh:
            state.packages.pop(name, None)


def repair(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    extras: Backends | None = None,
    *,
    probe: bool = False,
    no_default_groups: bool | None = None,
    progress: Progress | None = None,
    extras_source: str | None = None,
    remarks: Remarks | None = None,
) -> Report:
    """Reinstall exactly the drifted (and unverified) packages, then check again.

    Without ``extras``: those the user asked for last (a switch that did not finish), else the last successful
    switch's, else inferred; when inference cannot tell (nothing of the project installed, or a tie) nothing is
    installed and the error says to switch. ``no_default_groups`` None: as the last switch ran uv.
    """
    started = time.perf_counter()
    ctx = open_context(project, python, progress)
    state = load_state(ctx.env)
    groups_off = state.no_default_groups if no_default_groups is None else no_default_groups
    _require_lock(ctx, extras or ())
    aim = _aim_at(ctx, extras, state, groups_off)
    if aim.unknown:
        raise UvextraError(
            f"cannot tell which extras to repair ({aim.source.removeprefix('inferred: ')}); "
            f"run `uvextra switch {' | '.join(b.name for b in ctx.project.offered)}`, or pass --extra NAME"
        )
    chosen = Selection(aim.backends, groups_off)
    sofar = _Sofar()
    probing = None
    try:
        with _probing(ctx, chosen, probe, sofar.changes) as probing:
            found = _check(ctx, sofar, chosen, state=state)
            if (sofar.errors or sofar.unverified) and not sofar.missing_source_errors:  # uv would fail on those
                _require_writable(ctx)
                with switch_lock(ctx.env, ctx.progress.waiting):
                    _repair_and_recheck(ctx, sofar, chosen, state)
            elif (
                state.requested
                and list(state.requested) == list(chosen.backends)
                and sofar.failure is None
                and ctx.env.writable()
            ):
                # the switch that did not finish left the venv as its extras want it: say so from now on
                with switch_lock(ctx.env, ctx.progress.waiting):
                    sofar.saved(_record(ctx, state, chosen, found))
            probing.start()
    except Interrupted:
        _interrupted(ctx, sofar, chosen)
    return _assemble(ctx, "repair", aim, chosen, sofar, probing, extras_source, remarks, started)


def _repair_and_recheck(ctx: Context, sofar: _Sofar, extras: Selection, state: State) -> None:
    _repair_locked(ctx, sofar, extras, state)
    try:
        found = _check(ctx, sofar, extras, fresh=set(sofar.repaired), state=state)
    except UvextraError as exc:
        sofar.follow_up_failed(exc)
        sofar.saved(_save(ctx, state))
        return
    if sofar.failure is None:
        sofar.saved(_record(ctx, state, extras, found))
    else:
        sofar.saved(_save(ctx, state))
    for d in sofar.errors:
        if d.package in sofar.repaired:
            sofar.warnings.append(f"{d.package}: uv reinstalled it but it still differs from the lock")
    sofar.repaired_notes += _whole_again(sofar)


def _whole_again(sofar: _Sofar) -> list[str]:
    """What was broken on disk and is whole now, in words (the re-check after the reinstall verified its files)."""
    still = {d.package for d in sofar.errors}
    return [
        f"{name}: was {was.split(' — ')[0]}; reinstalled, every file there now"
        for name, was in sofar.repaired_from.items()
        if name in sofar.repaired and name not in still
    ]


def probe(python: str | os.PathLike[str] | None = None, extras: Backends = ()) -> Report:
    """Only the CUDA probe of the target interpreter, in a fresh process."""
    started = time.perf_counter()
    env = resolve_environment(python)
    aimed = [b if isinstance(b, Backend) else Backend(b) for b in extras] if extras else load_state(env).extras
    from .cuda_probe import probe_timeout, start_probe
    from .stack import check_stack, import_names

    installed = scan(env)
    with start_probe(
        str(env.python),
        selected_extras=[e.name for e in aimed],
        timeout=probe_timeout(),
        companions=import_names(installed),
    ) as handle:
        result = handle.result()
    stack = check_stack(installed)
    _merge_probe(stack, result)
    return Report(
        command="probe",
        environment=str(env.prefix),
        environment_source=env.source,
        python=str(env.python),
        extras=aimed,
        probe=result,
        stack=stack,
        elapsed_s=time.perf_counter() - started,
    )
