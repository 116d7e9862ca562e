"""One view of a Report: which rows exist, in which order, what is collapsed, what to do next.

Every surface renders the same :class:`View`: as text in :mod:`uvextra.render.text` (terminals, ``text/plain``), as
the HTML card in :mod:`uvextra.render.card`, as Markdown in :mod:`uvextra.render.markdown`. No renderer reads another's output; none decides on its own what to show.
Everything user-visible passes through :func:`uvextra.core.redact.redact` once, here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.drift import Drift, Unverified
from ..core.report import Report
from ..core.vocabulary import GROUP

if TYPE_CHECKING:
    from ..core.vocabulary import KernelState

__all__ = ["Headline", "Row", "View", "build_view", "plural"]

SHOWN_NAMES = 6  # a collapsed list shows this many names in text; the card puts all of them behind a disclosure


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 package``, ``3 packages`` (``many`` where the plural is not ``one + "s"``)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True)
class Row:
    """One labelled line of a report.

    ``text`` is the line in words. ``names`` is a list collapsed behind it (text: the first few; the card: all, behind
    a disclosure). ``lines`` are lines under it (uv's words, the lines that fix a misrouting, stale modules). ``tone``
    is ``ok``, ``bad``, ``warn`` or empty; ``collapse``: the names go behind a disclosure (a count at a glance).
    ``part`` says where a surface may place it: ``where`` (project, env, uv: the card's footer), ``changes`` (what a
    switch did), ``drift`` (the drift table follows it), ``headline`` (the card already says it on top) or ``body``.
    """

    key: str
    text: str
    names: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    tone: str = ""
    part: str = "body"
    collapse: bool = False
    items: tuple[tuple[str, str], ...] = ()  # (name, why) pairs listed under it: the stale modules
    badge: str = ""  # a drift kind or a verdict label the card shows as a badge


@dataclass(frozen=True)
class Headline:
    state: str  # ok | drift | failed | interrupted
    text: str


@dataclass
class View:
    title: str
    headline: Headline
    project_name: str | None
    rows: list[Row] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    unverified: list[Unverified] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # every change in detail (the card's disclosure, -v)
    log: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    live: bool = False  # a card with buttons: the next step names them

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)


def _headline(report: Report) -> Headline:
    errors = report.errors
    if report.interrupted:
        return Headline("interrupted", "interrupted — uv was stopped; below is the environment as it is now")
    if report.failure:
        return Headline("failed", f"failed: {_failure(report)}")
    if errors:
        return Headline("drift", f"{plural(len(errors), 'package differs', 'packages differ')} from the lock")
    if report.unverified:
        return Headline("drift", f"{plural(len(report.unverified), 'package')} cannot be verified against the lock")
    if report.stack_failed:
        names = ", ".join(e.package for e in report.stack_failed)
        return Headline("drift", f"matches the lock, but {names} does not fit the installed torch")
    return Headline("ok", "matches the lock")


def _failure(report: Report) -> str:
    """The failure without the summary of uv's words that it ends with, when the "uv said" rows show them whole:
    uv's error once."""
    failure = report.failure or ""
    if report.uv_error:
        summary = " ".join(ln.strip() for ln in report.uv_error.splitlines()[:4])
        if summary and failure.endswith(f": {summary}"):
            return f"{failure[: -len(summary) - 2]} (uv's words below)"
    return failure


def _title(report: Report) -> str:
    extras = ", ".join(e.name for e in report.extras) or "(no extras)"
    if report.command == "probe":
        return "CUDA probe"
    if report.command == "repair":
        return f"repaired {', '.join(report.repaired) or 'nothing'} for {extras}"
    verb = {"switch": "switched to", "check": "checked against", "status": "status of"}.get(
        report.command, report.command
    )
    return f"{verb} {extras}"


def _where_rows(report: Report) -> list[Row]:
    rows = []
    if report.project:
        groups = report.available_groups
        plain = [e.name for e in report.available_extras if e.kind != GROUP]
        features = [f"{f} (group)" if f.kind == GROUP else f.name for f in report.features]
        listed = "; ".join(
            part
            for part in (
                f"extras: {', '.join(plain)}" if plain else "",
                f"groups: {', '.join(groups)}" if groups else "",
                f"features: {', '.join(features)}" if features else "",
            )
            if part
        )
        rows.append(Row("project", report.project + (f" ({listed})" if listed else ""), part="where"))
        if report.workspace:
            rows.append(
                Row("workspace", f"{report.workspace} (member {report.project_name}; uv.lock is there)", part="where")
            )
    if report.environment:
        why = f" ({report.environment_source})" if report.environment_source else ""
        rows.append(Row("environment", report.environment + why, part="where"))
    if report.uv:
        rows.append(Row("uv", f"{report.uv['version']} ({report.uv['path']})", part="where"))
    return rows


def _change_rows(report: Report) -> list[Row]:
    ch = report.changes
    rows = [Row("changes", ch.summary(), part="changes")]
    if ch.removed:  # every removal is named, not only counted
        rows.append(Row("removed", ", ".join(f"{c.name} {c.old}" for c in ch.removed), part="changes"))
    kept = [name for name in ch.kept if name not in report.kernel_protected]  # those have their own row
    if kept:
        rows.append(Row("kept", "kept, though not in the lock", names=tuple(kept), part="changes"))
    if ch.kept_foreign:
        rows.append(
            Row(
                "kept",
                f"{plural(len(ch.kept_foreign), 'package')} not from this project, kept",
                names=tuple(ch.kept_foreign),
                part="changes",
                collapse=True,
            )
        )
    return rows


def _drift_row(report: Report) -> Row:
    errors = report.errors
    if report.lock_unread is not None and not errors:
        return Row(
            "drift", "not checked: the lock could not be read for these extras (see above)", tone="warn", part="drift"
        )
    if errors:
        return Row(
            "drift",
            f"{plural(len(errors), 'package differs', 'packages differ')} from the lock:",
            tone="bad",
            part="drift",
        )
    if report.unverified:
        return Row("drift", "none found; some packages cannot be verified:", tone="warn", part="drift")
    if report.failure is None:
        return Row("drift", "none — installed packages match the lock", tone="ok", part="drift")
    return Row("drift", "none found" if not report.interrupted else "none", part="drift")


def _unreached(report: Report) -> list[Drift]:
    """The "missing" rows of a switch whose uv failed before it changed anything."""
    if report.command != "switch" or report.failure_kind not in ("network", "uv"):
        return []
    if report.changes.installed or report.changes.removed:
        return []
    return [d for d in report.errors if d.kind == "missing"]


def _probe_rows(report: Report) -> list[Row]:
    rows = []
    if report.probe is not None:
        state = verdict_state(report)
        tone = {"ok": "ok", "bad": "bad"}.get(state[0], "") if state else ""
        rows.append(Row("CUDA", report.probe.verdict, tone=tone, badge=state[1] if state else ""))
    rows.extend(Row("stack", entry.why, tone="ok" if entry.ok else "bad") for entry in report.stack)
    shown: set[str] = set()
    for m in report.routing:
        first = m.package not in shown
        shown.add(m.package)
        rows.append(Row("routing", m.why, tone="warn", lines=tuple(m.fix) if first else ()))
    return rows


def verdict_state(report: Report) -> tuple[str, str] | None:
    """The CUDA verdict as (tone, label): ``ok`` (green), ``bad`` (red) or ``neutral`` (grey); None: no probe.

    Drawn from the state the probe decided (:attr:`ProbeResult.state`): a CPU build where no GPU extra is selected,
    or no torch at all, is neutral — nothing is wrong, there is just no GPU to use.
    """
    probe = report.probe
    if probe is None:
        return None
    api = probe.flavour.api if probe.flavour else "CUDA"
    return {
        "available": ("ok", f"{api} ✓"),
        "no-torch": ("neutral", "no torch"),
        "cpu": ("neutral", "CPU"),
        "unavailable": ("bad", f"{api} ✗"),
    }[probe.state]


def _kernel_rows(kernel: KernelState | None, *, live: bool) -> list[Row]:
    if kernel is None:
        return []
    if kernel.restarting:
        return [Row("kernel", kernel.restarting, tone="warn")]
    if not kernel.stale:
        return [Row("kernel", "no imported module is stale", tone="ok")]
    if kernel.restart.available and live:
        how = "restart the kernel (the Restart kernel button) to use what is on disk"
    elif kernel.restart.available:
        how = "restart the kernel to use what is on disk"
    else:
        how = kernel.restart.why
    stale = tuple((s.module, s.reason) for s in kernel.stale)
    return [Row("kernel", f"restart needed — {how}", tone="warn", items=stale)]


def _next_step(report: Report, live: bool, magic: bool, card: bool) -> str | None:
    if live and report.can_repair:
        return "click Reinstall to reinstall exactly these packages from the lock"
    step = report.next_step()
    return notebook_words(step, card=card) if magic and step else step


# The CLI's words as a notebook says them: the magic, and on a card its Reinstall button (where it fits: the lock
# can be followed). A saved or headless card has no live button: the cell run again brings one. The magic's text in
# a terminal IPython has no card: repairing is the CLI's there.
_IN_A_NOTEBOOK = (
    (
        re.compile(r"`uvextra (?:switch|check|status) ?([^`]*)`"),
        lambda m: f"`%uvextra {m.group(1)}`".replace(" `", "`"),
    ),
)
_ON_A_CARD = (
    (re.compile(r"`uvextra repair` cannot fix this"), "Reinstall cannot fix this"),
    (
        re.compile(r"run `uvextra repair` to reinstall (.+)$"),
        r"click Reinstall on the card to reinstall \1 (run this cell again for a live card)",
    ),
)


def notebook_words(step: str, *, card: bool = True) -> str:
    """``step`` (a :meth:`Report.next_step`) in a notebook's words: ``%uvextra cpu``; on a ``card``, Reinstall."""
    for pattern, words in (*_ON_A_CARD, *_IN_A_NOTEBOOK) if card else _IN_A_NOTEBOOK:
        step = pattern.sub(words, step)
    return step


def build_view(
    report: Report,
    kernel: KernelState | None = None,
    *,
    live: bool = False,
    note: str | None = None,
    notebook: str | None = None,
    magic: bool = False,
    card: bool = True,
) -> View:
    """Every row a surface shows for ``report`` (and the kernel's state), in order; nothing rendered yet."""
    headline = _headline(report)
    view = View(
        title=_title(report),
        headline=headline,
        project_name=report.project_name,
        drift=list(report.errors),
        unverified=list(report.unverified),
        changes=[str(c) for c in [*report.changes.installed, *report.changes.removed]],
        log=list(report.log),
        elapsed_s=report.elapsed_s,
        live=live,
    )
    rows = view.rows
    rows += _where_rows(report)
    if report.command != "probe":
        kinds = tuple((e.name, e.kind) for e in report.extras)
        chosen = ", ".join(f"{e} (group)" if kind == GROUP else e for e, kind in kinds)
        # by name and kind: a group `cpu` beside an extra `cpu` is another backend, and says which it is
        others = [
            f"{x} (group)" if x.kind == GROUP else x.name
            for x in report.available_extras
            if (x.name, x.kind) not in kinds
        ]
        rows.append(
            Row(
                "extras",
                chosen or "(none)",
                names=tuple(others),
                items=kinds,
                lines=(report.extras_source,) if report.extras_source else (),
            )
        )
    for backend, why in report.unreadable.items():
        rows.append(Row("unread", f"{backend} could not be read here, so it was not compared: {why}", tone="warn"))
    if report.command in ("switch", "repair"):
        rows += _change_rows(report)
    if report.repaired:
        rows.append(
            Row(
                "repaired",
                "; ".join(
                    [
                        *report.repaired_notes,
                        *(
                            n
                            for n in report.repaired
                            if not any(note.startswith(f"{n}: ") for note in report.repaired_notes)
                        ),
                    ]
                ),
            )
        )
    rows += [Row("warning", w, tone="warn") for w in report.warnings]
    if report.failure:
        part = "headline" if headline.state == "failed" else "body"
        rows.append(Row("FAILED", _failure(report), tone="bad", part=part))
    if report.uv_error and report.uv_error not in _failure(report):
        rows.append(Row("uv said", "", lines=tuple(report.uv_error.splitlines()), tone="bad"))
    if report.command != "probe":
        unreached = _unreached(report) if magic or live else []
        if unreached:  # in a notebook, not drift: what a switch that never got to run would have installed, in one line
            view.drift = [d for d in view.drift if d not in unreached]
            rows.append(
                Row(
                    "drift",
                    f"{plural(len(unreached), 'package')} of the lock not installed: uv stopped "
                    "before it changed anything" + ("; these differ too:" if view.drift else ""),
                    tone="warn",
                    part="drift",
                )
            )
        else:
            rows.append(_drift_row(report))
        extraneous = report.extraneous
        if extraneous:
            rows.append(
                Row(
                    "extraneous",
                    "not in the lock; not an error",
                    badge="extraneous",
                    names=tuple(f"{d.package} {d.installed}" for d in extraneous),
                )
            )
        if report.verified is not None:
            rows.append(
                Row(
                    "verified",
                    f"sha256 of {int(report.verified['files']):,} files compared with their "
                    f"RECORD in {report.verified['seconds']:.1f} s",
                )
            )
    rows += _probe_rows(report)
    rows += _kernel_rows(kernel, live=live)
    if report.kernel_protected:
        rows.append(
            Row(
                "protected",
                f"{plural(len(report.kernel_protected), 'package')} the kernel needs, kept",
                names=tuple(report.kernel_protected),
                collapse=True,
            )
        )
    if notebook:
        rows.append(Row("notebook", notebook, tone="warn"))
    if note:
        rows.append(Row("note", note))
    step = _next_step(report, live, magic or live, card)
    if step:
        rows.append(Row("next", step))
    return view
