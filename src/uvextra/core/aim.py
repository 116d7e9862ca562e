"""Which backends an operation aims at, and how uvextra knew: a pure function over data, unit-tested branch by branch.

Said by the user (``given``, or ``auto`` from the machine's driver); else asked for by a switch that did not finish,
or recorded by the last one that did (``state.json``); else inferred from what is installed. The verbs gather the
data (the record, the lock's packages per backend, what is installed, the driver) and hand it in; nothing here runs
uv, reads a file or looks at the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UvextraError
from .names import canonicalize_name
from .vocabulary import EXTRA, GROUP, AimHow, Backend, ExtrasUnknown

if TYPE_CHECKING:
    from .project import Project

__all__ = ["Aim", "Evidence", "Recorded", "asks_for", "auto", "from_record", "given", "infer", "needs_base", "to_read"]

AUTO = "auto"  # the name that asks `auto` to choose by the machine's accelerator

Pins = Mapping[str, str]  # package name -> version (what the lock wants, what is installed)


@dataclass(frozen=True)
class Aim:
    """Which backends an operation aims at, how uvextra knew (``how``, and ``source`` in words), and — for
    inference — whether it could tell at all."""

    backends: tuple[Backend, ...]
    how: AimHow
    source: str
    unknown: ExtrasUnknown | None = None  # "none" (almost nothing of the project installed) or "tie"
    # backends inference could not read here (the network, no wheel for this Python …): (name, why); judged without
    unreadable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Recorded:
    """What ``state.json`` says about the last switches (:class:`uvextra.core.state.State`, the parts read here)."""

    project: str | None = None  # the project root the record belongs to
    extras: tuple[Backend, ...] = ()  # the last successful switch's backends
    requested: tuple[Backend, ...] = ()  # the last switch that did not finish
    requested_failure: str | None = None
    requested_changed: bool = True  # did that unfinished switch change the venv?
    where: str = "state.json"  # the file, as the words name it


@dataclass(frozen=True)
class Evidence:
    """What inference reads: the lock's packages per backend alone (and for the base), what is installed, and what
    each backend's own table in pyproject.toml lists."""

    installed: Pins = field(default_factory=dict)
    wanted: Mapping[Backend, Pins] = field(default_factory=dict)  # per backend alone
    unreadable: Mapping[Backend, str] = field(default_factory=dict)  # backends uv could not export here, with why
    base: Pins | None = None  # the base dependencies alone (read only when :func:`needs_base` says)
    asks: Mapping[Backend, frozenset[str]] = field(default_factory=dict)  # names its own table lists


# ---------------------------------------------------------------------------------------------------- said


def given(project: Project, extras: Sequence[Backend | str]) -> Aim:
    """The backends the user named (a one-line error for an unknown name or a conflict)."""
    return Aim(project.validate_extras(list(extras)), "given", "given")


def auto(project: Project, driver: str | None, rocm: bool) -> Aim:
    """``auto``: the backend that fits this machine's accelerator (the NVIDIA driver, a ROCm GPU)."""
    from .accelerators import choose_extra

    try:
        extra, reason = choose_extra(list(dict.fromkeys(b.name for b in project.offered)), driver, rocm)
    except ValueError as exc:
        raise UvextraError(f"`auto` cannot choose: {exc}") from None
    return Aim(project.validate_extras([extra]), "auto", f"auto: {reason}")


def from_record(project: Project, record: Recorded) -> Aim | None:
    """What the record says to aim at: the unfinished switch's backends when it changed the venv (or nothing was
    recorded before it), else the last successful switch's; None when the record has nothing for this project."""
    mine = record.project == str(project.root)
    asked = _still_declared(project, record.requested)
    asked_ok = mine and bool(asked) and len(asked) == len(record.requested)
    recorded = _still_declared(project, record.extras)
    recorded_ok = mine and bool(recorded) and len(recorded) == len(record.extras)
    why = f" ({record.requested_failure})" if record.requested_failure else ""
    if asked_ok and (record.requested_changed or not recorded_ok):
        last = f"; the last successful switch was to {', '.join(map(str, record.extras))}" if record.extras else ""
        return Aim(asked, "requested", f"asked for by the last switch, which did not finish{why}{last}")
    if recorded_ok:
        after = (
            f"; the switch to {', '.join(map(str, asked))} after it did not finish and changed nothing{why}"
            if asked_ok
            else ""
        )
        return Aim(recorded, "recorded", f"recorded by the last switch ({record.where}){after}")
    return None


def _still_declared(project: Project, backends: Sequence[Backend]) -> tuple[Backend, ...]:
    """The recorded backends this project still declares, as the same kind (extra or group)."""
    return tuple(b for n in backends for b in project.backends if (b.name, b.kind) == (n.name, n.kind))


# ---------------------------------------------------------------------------------------------------- inferred


def _loose(project: Project) -> list[Backend]:
    """The backends outside every conflict set."""
    in_sets = {(b.name, b.kind) for s in project.conflict_sets for b in s}
    return [b for b in project.backends if (b.name, b.kind) not in in_sets]


def to_read(project: Project) -> tuple[Backend, ...]:
    """The backends whose locked packages inference reads: every conflict set's members, then the loose ones."""
    seen = [b for s in project.conflict_sets for b in s]
    return tuple(_dedupe([*seen, *_loose(project)]))


def needs_base(project: Project, readable: Mapping[Backend, Pins]) -> bool:
    """Does inference need the base dependencies alone? For a loose backend (its own packages are those beyond the
    base), and for a conflict set of which only one member can be read (what it shares with the base is not its own).
    """
    if _loose(project):
        return True
    return any(sum(1 for b in s if b in readable) == 1 for s in project.conflict_sets)


def asks_for(data: Mapping[str, Any], backends: Sequence[Backend]) -> dict[Backend, frozenset[str]]:
    """Per backend, the names its own table in pyproject.toml (``data``) lists: what it asks for itself, not what
    those bring."""
    out: dict[Backend, frozenset[str]] = {}
    for backend in backends:
        if backend.kind == EXTRA:
            tables = (data.get("project") or {}).get("optional-dependencies") or {}
        else:
            tables = data.get("dependency-groups") or {}
        found: set[str] = set()
        for key, requirements in tables.items() if isinstance(tables, dict) else ():
            if canonicalize_name(str(key)) != backend.name or not isinstance(requirements, list):
                continue
            for req in requirements:  # a group's {include-group = ...} is not a package: skipped
                match = _REQUIREMENT_NAME.match(req) if isinstance(req, str) else None
                if match:
                    found.add(canonicalize_name(match.group(0)))
        out[backend] = frozenset(found)
    return out


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def infer(project: Project, evidence: Evidence, *, no_default_groups: bool = False) -> Aim:
    """Per conflict set, the extra (or group) whose own packages (those not shared by every member of the set) are
    installed; then each backend outside every set whose own packages (beyond the base) are all installed.

    Nothing of a set's own packages installed is not a match, and two extras matching equally well is a tie: both
    are said as they are, never turned into a guess. Nor is a stray package a match (a ``triton`` or ``nvidia-*``
    that something else installed, and no torch): an extra matches only with real evidence — what it asks for
    itself (its torch, at the locked version) or most of its own packages installed.
    """
    loose = _loose(project)
    if not project.conflict_sets and not loose:
        return Aim((), "base", "no extras recorded; checking the base dependencies")
    chosen: list[Backend] = []
    why: list[str] = []
    unknown: ExtrasUnknown | None = None
    unreadable: dict[str, str] = {}
    for whole in project.conflict_sets:
        found = _judge_set(project, evidence, whole, unreadable, no_default_groups=no_default_groups)
        if found.backend is not None:
            chosen.append(found.backend)
        if found.unknown == "tie" or (found.unknown == "none" and unknown is None):
            unknown = found.unknown
        why.append(found.why)
    if loose:
        base = _pairs(evidence.base or {})
        for backend in loose:
            if backend in evidence.unreadable:
                unreadable[backend.name] = evidence.unreadable[backend]
                continue
            own = _pairs(evidence.wanted.get(backend, {})) - base
            if own and all(_has(evidence.installed, n, v) for n, v in own):
                chosen.append(backend)
                why.append(f"{backend} (outside every conflict set) is installed ({len(own)} of its own packages)")
        if not project.conflict_sets and not chosen:
            why.append(
                "no extras recorded, and none outside a conflict set is installed; checking the base dependencies"
            )
            return Aim((), "base", "; ".join(why), unreadable=tuple(unreadable.items()))
    return Aim(tuple(chosen), "inferred", "inferred: " + "; ".join(why), unknown, tuple(unreadable.items()))


@dataclass(frozen=True)
class _Found:
    """One conflict set judged: the backend chosen (if any), why in words, and whether it could tell."""

    why: str
    backend: Backend | None = None
    unknown: ExtrasUnknown | None = None


def _judge_set(
    project: Project,
    evidence: Evidence,
    whole: Sequence[Backend],
    unreadable: dict[str, str],
    *,
    no_default_groups: bool,
) -> _Found:
    installed = evidence.installed
    for b in whole:
        if b in evidence.unreadable:
            unreadable[b.name] = evidence.unreadable[b]
    group = tuple(b for b in whole if b not in evidence.unreadable and b in evidence.wanted)
    if not group:  # nothing of this set can be read here (each named with why): judged from the other sets;
        return _Found(f"none of {_join(whole)} can be read here")  # a check of the base still says it fails
    pinned = {b: _pairs(evidence.wanted[b]) for b in group}
    # shared by every member; with one backend readable, what it shares with the base is not its own
    alone = pinned[group[0]] & _pairs(evidence.base or {})
    shared = set.intersection(*pinned.values()) if len(group) > 1 else alone
    own = {b: pinned[b] - shared for b in group}
    scores = {b: sum(1 for n, v in own[b] if _has(installed, n, v)) for b in group}
    best = max(scores.values())
    # the share of its own packages installed ranks first: a loose extra may bring one of a CUDA extra's
    # packages (nvidia-*), which must not outweigh the CPU extra's whole (one-package) own set
    rank = {b: (scores[b] / len(own[b]) if own[b] else 0.0, scores[b]) for b in group}
    asks = {b: evidence.asks.get(b, frozenset()) | {"torch"} for b in group}
    # real evidence: what the extra asks for itself is installed (at its locked version), or most of its own
    evident = [
        b
        for b in group
        if 2 * scores[b] > len(own[b]) or any(n in asks[b] and _has(installed, n, v) for n, v in own[b])
    ]
    leaders = [b for b in evident if rank[b] == max(rank[c] for c in evident)]
    counts = ", ".join(f"{b}: {scores[b]} of {len(own[b])}" for b in group)
    default = next(
        (d for d in project.default_backends if d in group and d.kind == GROUP and not no_default_groups), None
    )
    if not any(own.values()) and any(_has(installed, n, v) for n, v in shared):
        # every extra of the set pins the same versions: what is installed fits all of them alike
        return _Found(
            f"a tie: {' and '.join(map(str, group))} lock the same versions, and those are installed", None, "tie"
        )
    if best == 0 and default is not None:  # what a plain `uv sync` installs: the project's own default
        return _Found(
            f"none of {_join(group)} is installed; {default} is the project's default "
            "([tool.uv] default-groups), what `uv sync` installs",
            default,
        )
    if best == 0:
        return _Found(f"none of {_join(group)} is installed (their own packages installed: {counts})", None, "none")
    if not evident:
        stray = "; ".join(
            f"{b}'s {', '.join(f'{n} {v}' for n, v in sorted(own[b]) if _has(installed, n, v))}"
            for b in group
            if scores[b]
        )
        needs = " or ".join(sorted({n for b in group for n, _v in own[b] if n in asks[b]})) or "torch"
        return _Found(
            f"none of {_join(group)} is installed: only stray packages ({stray}), without {needs} "
            f"or most of an extra's own packages (their own packages installed: {counts})",
            None,
            "none",
        )
    if len(leaders) > 1:
        return _Found(
            f"a tie: {' and '.join(map(str, leaders))} match what is installed equally well ({counts})", None, "tie"
        )
    return _Found(f"{leaders[0]} matches what is installed ({counts} of their own packages installed)", leaders[0])


def _pairs(pins: Pins) -> set[tuple[str, str]]:
    return set(pins.items())


def _has(installed: Pins, name: str, version: str) -> bool:
    return installed.get(name) == version


def _join(backends: Sequence[Backend]) -> str:
    return ", ".join(map(str, backends))


def _dedupe(backends: Sequence[Backend]) -> list[Backend]:
    out: list[Backend] = []
    for b in backends:
        if not any((b.name, b.kind) == (o.name, o.kind) for o in out):
            out.append(b)
    return out
