"""The operations behind every surface: status, check, switch, repair, probe. Each returns one Report.

Nothing here imports IPython or ipywidgets; the CLI, the magic and the widgets only render what comes back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .drift import classify
from .environment import Environment, interpreter_info, resolve_environment
from .errors import Interrupted, UvextraError
from .installed import Installed, scan
from .lock import LockInfo, Wanted, export_pylock, read_uv_lock, wanted_from_pylock
from .project import Project, load_project
from .protect import kernel_closure
from .report import Change, Report
from .state import Provenance, State, load_state, save_state, switch_lock
from .uv import MIN_EXPORT, Uv, find_uv, run_uv

LineCallback = Callable[[str], None]
AUTO = "auto"


@dataclass
class Context:
    project: Project
    env: Environment
    uv: Uv

    def new_report(self, command: str) -> Report:
        report = Report(
            command=command, project=str(self.project.root), project_name=self.project.name,
            environment=str(self.env.prefix), python=str(self.env.python), uv=self.uv.to_dict(),
            available_extras=list(self.project.extras), conflict_sets=[list(s) for s in self.project.conflict_sets],
        )
        if self.uv.warning:
            report.warnings.append(self.uv.warning)
        report.read_only = not self.env.writable()
        return report


def open_context(project: str | os.PathLike[str] | None = None, python: str | os.PathLike[str] | None = None) -> Context:
    """Find the project, the target venv and uv; every problem is a one-line UvextraError."""
    env = resolve_environment(python)
    proj = load_project(Path(project) if project is not None else None)
    if proj.lockfile.is_file():
        read_uv_lock(proj, env, store=False)  # a malformed lock is named (file and line) before uv is run at all
    uv = find_uv()
    if uv.version < MIN_EXPORT:  # refuse before running it: an old uv would sync, then fail to export
        raise UvextraError(
            f"uv {uv.version} at {uv.path} is too old to read this project's lock (uvextra needs uv >= {MIN_EXPORT} "
            "for `uv export --format pylock.toml`); install a newer one: `pip install 'uv>=0.9.24'`, or unset UVEXTRA_UV"
        )
    return Context(project=proj, env=env, uv=uv)


# ---------------------------------------------------------------------------------------------------- extras

def _resolve_extras(ctx: Context, extras: Sequence[str] | None, state: State) -> tuple[tuple[str, ...], str]:
    if extras:
        if list(extras) == [AUTO]:
            return _auto_extra(ctx)
        return ctx.project.validate_extras(list(extras)), "given"
    recorded = [e for e in state.extras if e in ctx.project.extras]
    if recorded and state.project == str(ctx.project.root) and len(recorded) == len(state.extras):
        return tuple(recorded), f"recorded by the last switch ({ctx.env.state_dir / 'state.json'})"
    return _infer_extras(ctx)


def _auto_extra(ctx: Context) -> tuple[tuple[str, ...], str]:
    from .accelerators import choose_extra, detect_rocm, read_driver_version

    driver, _where = read_driver_version()
    try:
        extra, reason = choose_extra(list(ctx.project.extras), driver, detect_rocm())
    except ValueError as exc:
        raise UvextraError(f"`auto` cannot choose: {exc}") from None
    return (extra,), f"auto: {reason}"


def _infer_extras(ctx: Context) -> tuple[tuple[str, ...], str]:
    if not ctx.project.conflict_sets:
        return (), "no extras recorded; checking the base dependencies"
    installed = scan(ctx.env)
    chosen: list[str] = []
    why: list[str] = []
    for group in ctx.project.conflict_sets:
        scores = {}
        for extra in group:
            wanted = _wanted(ctx, (extra,))
            scores[extra] = sum(
                1 for name, w in wanted.items() if name not in installed or installed[name].version != w.version
            )
        best = min(group, key=lambda e: (scores[e], group.index(e)))
        chosen.append(best)
        others = ", ".join(f"{e}: {scores[e]}" for e in group if e != best)
        why.append(f"{best} matches what is installed ({scores[best]} differences; {others})")
    return tuple(chosen), "inferred: " + "; ".join(why)


# ---------------------------------------------------------------------------------------------------- pieces

def _wanted(ctx: Context, extras: Sequence[str]) -> dict[str, Wanted]:
    return wanted_from_pylock(export_pylock(ctx.project, ctx.env, ctx.uv, extras), ctx.project, ctx.env)


def _lock_info(ctx: Context) -> LockInfo:
    return read_uv_lock(ctx.project, ctx.env)


def _protected(ctx: Context, installed: Mapping[str, Installed]) -> set[str]:
    return kernel_closure(installed, interpreter_info(str(ctx.env.python)).marker_env)


def _diff(before: Mapping[str, Installed], after: Mapping[str, Installed]) -> tuple[list[Change], list[Change], set[str]]:
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


def _start_probe(ctx: Context, extras: Sequence[str]):
    from .probe import probe_timeout, start_probe

    return start_probe(str(ctx.env.python), selected_extras=list(extras), timeout=probe_timeout())


def _check_into(
    ctx: Context, report: Report, extras: Sequence[str], *, fresh: set[str] = frozenset(), state: State | None = None
) -> tuple[dict[str, Wanted], dict[str, Installed], State]:
    state = state if state is not None else load_state(ctx.env)
    wanted = _wanted(ctx, extras)
    installed = scan(ctx.env)
    protected = _protected(ctx, installed)
    report.kernel_protected = sorted(n for n in protected if n not in wanted)
    report.drift, report.unverified = classify(
        wanted, installed, records=state.packages, lock=_lock_info(ctx), protected=protected, fresh=fresh
    )
    return wanted, installed, state


def _record(ctx: Context, report: Report, state: State, extras: Sequence[str],
            wanted: Mapping[str, Wanted], installed: Mapping[str, Installed]) -> None:
    """Remember the provenance of every package that is now proven to be what the lock wants."""
    doubtful = {d.package for d in report.drift} | {u.package for u in report.unverified}
    for name, want in wanted.items():
        inst = installed.get(name)
        if inst is None or name in doubtful:
            continue
        state.packages[name] = Provenance(
            version=inst.version, source=want.kind, index=want.index, wheel=want.wheel, sha256=want.wheel_hash,
            fingerprint=inst.fingerprint,
        )
    for name in list(state.packages):
        if name not in installed:
            del state.packages[name]
    state.extras = list(extras)
    state.project = str(ctx.project.root)
    report.state_saved = save_state(ctx.env, state)
    if not report.state_saved:
        report.warnings.append(f"could not write {ctx.env.state_dir}; build drift cannot be tracked in this venv")


def _sync_args(ctx: Context, extras: Sequence[str], reinstall: Sequence[str] = (), frozen: bool = False,
               locked: bool = False) -> list[str]:
    args = ["sync", "--inexact", "--project", str(ctx.project.root), "--python", str(ctx.env.python)]
    if frozen:
        args.append("--frozen")
    elif locked:
        args.append("--locked")
    for extra in extras:
        args += ["--extra", extra]
    for name in reinstall:
        args += ["--reinstall-package", name]
    return args


def _require_writable(ctx: Context) -> None:
    if not ctx.env.writable():
        raise UvextraError(
            f"the environment {ctx.env.prefix} is read-only; uvextra changes nothing there — "
            "create your own venv (`uv venv`), install ipykernel into it and start the kernel from it"
        )


def _run_sync(ctx: Context, report: Report, args: list[str], on_line: LineCallback | None) -> bool:
    def collect(line: str) -> None:
        report.log.append(line)
        if on_line is not None:
            on_line(line)

    result = run_uv(ctx.uv, args, ctx.env, cwd=ctx.project.root, on_line=collect)
    if result.returncode != 0:
        tail = [ln.strip() for ln in result.output if ln.strip()][-3:]
        report.failure = f"uv {args[0]} failed (exit {result.returncode}): " + (" ".join(tail) or "no output")
        return False
    return True


# ---------------------------------------------------------------------------------------------------- verbs

def check(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    extras: Sequence[str] | None = None,
    *,
    probe: bool = False,
    command: str = "check",
) -> Report:
    """Compare the venv with what the lock wants for ``extras`` (default: recorded, else inferred)."""
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report(command)
    state = load_state(ctx.env)
    chosen, report.extras_source = _resolve_extras(ctx, extras, state)
    report.extras = list(chosen)
    handle = _start_probe(ctx, chosen) if probe else None
    _check_into(ctx, report, chosen, state=state)
    if handle is not None:
        report.probe = handle.result()
    report.elapsed_s = time.perf_counter() - started
    return report


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
    repair: bool = False,
    frozen: bool = False,
    locked: bool = False,
    on_line: LineCallback | None = None,
    on_wait: LineCallback | None = None,
) -> Report:
    """``uv sync --extra …`` into the target venv, keeping the kernel's own packages, then check (and probe).

    A missing ``uv.lock`` is created as ``uv sync`` would; ``frozen`` (use the lock as it is) and ``locked``
    (refuse a lock that is out of date) refuse instead.
    """
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report("switch")
    if not extras:
        raise UvextraError(f"name an extra to switch to: {', '.join(ctx.project.extras) or '(none declared)'}, or auto")
    chosen, report.extras_source = _resolve_extras(ctx, extras, State())
    report.extras = list(chosen)
    if (frozen or locked) and not ctx.project.lockfile.is_file():
        flag = "--frozen" if frozen else "--locked"
        raise UvextraError(f"no uv.lock in {ctx.project.root}, and {flag} never creates one: run `uv lock` first, "
                           f"or switch without {flag} (uvextra then locks as `uv sync` does)")
    _require_writable(ctx)
    handle = None
    try:
        with switch_lock(ctx.env, on_wait):
            before = scan(ctx.env)
            state = load_state(ctx.env)
            sync_args = _sync_args(ctx, chosen, frozen=frozen, locked=locked)
            kernel_needs = _protected(ctx, before)
            if not keep_extraneous and not kernel_needs:
                # No kernel here to protect (no ipykernel, ipywidgets or uvextra installed): uv's exact sync removes
                # what the lock lacks in the same run — one uv process instead of `sync --inexact` + `pip uninstall`.
                sync_args.remove("--inexact")
            if _run_sync(ctx, report, sync_args, on_line):
                wanted = _wanted(ctx, chosen)
                mid = scan(ctx.env)
                protected = _protected(ctx, mid)
                extraneous = sorted(n for n in mid if n not in wanted and n not in protected)
                if extraneous and not keep_extraneous:
                    _run_sync(ctx, report, ["pip", "uninstall", "--python", str(ctx.env.python), *extraneous], on_line)
                elif extraneous:
                    report.changes.kept.extend(extraneous)
            after = scan(ctx.env)
            report.changes.installed, report.changes.removed, fresh = _diff(before, after)
            replaced = sorted(fresh & kernel_needs)
            if replaced:  # the lock itself pins something the running kernel imports: it keeps the old copy in memory
                report.warnings.append(
                    f"the lock replaced {', '.join(replaced)}, which the kernel itself uses; restart the kernel "
                    "before relying on it")
            if probe:
                handle = _start_probe(ctx, chosen)
            wanted, installed, state = _check_into(ctx, report, chosen, fresh=fresh, state=state)
            report.changes.kept = sorted(set(report.changes.kept) | set(report.kernel_protected))
            if repair and report.failure is None and (report.errors or report.unverified):
                _repair_locked(ctx, report, chosen, state, on_line)
                wanted, installed, state = _check_into(ctx, report, chosen, fresh=set(report.repaired), state=state)
            if report.failure is None:
                _record(ctx, report, state, chosen, wanted, installed)
    except Interrupted:
        report.interrupted = True
        report.failure = "interrupted: uv was stopped before it finished; the environment was checked again"
        _recheck_quietly(ctx, report, chosen)
    if handle is not None:
        report.probe = handle.result()
    report.elapsed_s = time.perf_counter() - started
    return report


def _recheck_quietly(ctx: Context, report: Report, extras: Sequence[str]) -> None:
    try:
        _check_into(ctx, report, extras)
    except UvextraError as exc:
        report.warnings.append(f"could not re-check the environment: {exc}")


def _repair_locked(ctx: Context, report: Report, extras: Sequence[str], state: State,
                   on_line: LineCallback | None) -> None:
    targets = sorted({d.package for d in report.errors} | {u.package for u in report.unverified})
    before = scan(ctx.env)
    if _run_sync(ctx, report, _sync_args(ctx, extras, reinstall=targets, frozen=True), on_line):
        after = scan(ctx.env)
        installed, removed, fresh = _diff(before, after)
        report.changes.installed += installed
        report.changes.removed += removed
        report.repaired = sorted(fresh & set(targets))
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
) -> Report:
    """Reinstall exactly the drifted (and unverified) packages, then check again."""
    started = time.perf_counter()
    ctx = open_context(project, python)
    report = ctx.new_report("repair")
    state = load_state(ctx.env)
    chosen, report.extras_source = _resolve_extras(ctx, extras, state)
    report.extras = list(chosen)
    handle = None
    try:
        _check_into(ctx, report, chosen, state=state)
        if report.errors or report.unverified:
            _require_writable(ctx)
            with switch_lock(ctx.env, on_wait):
                _repair_locked(ctx, report, chosen, state, on_line)
                if probe:
                    handle = _start_probe(ctx, chosen)
                wanted, installed, state = _check_into(ctx, report, chosen, fresh=set(report.repaired), state=state)
                if report.failure is None:
                    _record(ctx, report, state, chosen, wanted, installed)
                for d in report.errors:
                    if d.package in report.repaired:
                        d_note = "uv reinstalled it but it still differs from the lock"
                        report.warnings.append(f"{d.package}: {d_note}")
        elif probe:
            handle = _start_probe(ctx, chosen)
    except Interrupted:
        report.interrupted = True
        report.failure = "interrupted: uv was stopped before it finished; the environment was checked again"
        _recheck_quietly(ctx, report, chosen)
    if handle is not None:
        report.probe = handle.result()
    report.elapsed_s = time.perf_counter() - started
    return report


def probe(python: str | os.PathLike[str] | None = None, extras: Sequence[str] = ()) -> Report:
    """Only the CUDA probe of the target interpreter, in a fresh process."""
    started = time.perf_counter()
    env = resolve_environment(python)
    report = Report(command="probe", environment=str(env.prefix), python=str(env.python), extras=list(extras))
    if not extras:
        report.extras = load_state(env).extras
    from .probe import probe_timeout, start_probe

    report.probe = start_probe(str(env.python), selected_extras=report.extras, timeout=probe_timeout()).result()
    report.elapsed_s = time.perf_counter() - started
    return report
