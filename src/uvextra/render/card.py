"""The card: a Report as static HTML — what a saved notebook shows without a live kernel (Markdown and text beside it).

No ipywidgets here. The HTML uses plain elements (tables, ``<details>``, ``<code>``) with inline styles, and every
badge carries its meaning in words too, so it still reads well where styles are stripped (GitHub's notebook view).
Everything user-visible passes through :func:`uvextra.core.redact.redact`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING

from ..core.redact import redact
from ..core.report import Report
from .markdown import render_markdown
from .text import collapsed, render_plain
from .view import Row, View, build_view, plural, verdict_state

if TYPE_CHECKING:
    from ..core.vocabulary import KernelState

__all__ = [
    "BADGE_COLORS",
    "ReportView",
    "drift_badge",
    "render_error",
    "render_html",
    "render_progress",
    "verdict_state",
]

# One colour per drift kind (uvextra.drift.KINDS), most severe first; "unverified" is uvextra's own doubt.
BADGE_COLORS = {
    "missing": "#b42318",
    "version": "#b42318",
    "local-version": "#c4320a",
    "build": "#6941c6",
    "source": "#175cd3",
    "extraneous": "#667085",
    "unverified": "#b54708",
}
_GREEN, _RED, _GREY, _AMBER = "#067647", "#b42318", "#667085", "#b54708"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;line-height:1.45"
_BOX = f"{_FONT};border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:2px 0;max-width:980px"
# Inside the live card the widget box draws the border, around the controls too (uvextra.widgets).
_IN_CARD = f"{_FONT};margin:0"
_TABLE = "border-collapse:collapse;margin:0;font-size:inherit;line-height:inherit"
_KEY = "text-align:left;vertical-align:top;padding:2px 14px 2px 0;color:#57606a;font-weight:600;white-space:nowrap"
_VAL = "text-align:left;vertical-align:top;padding:2px 0"
_SMALL = "color:#57606a;font-size:0.9em"
_LOG_LINES = 400  # the disclosure keeps the last lines; uv's output of a big switch is a few hundred at most


def _e(text: object) -> str:
    return html.escape(redact(str(text)), quote=True)


def _badge(text: str, color: str, css: str) -> str:
    return (
        f'<span class="uvextra-badge {css}" style="display:inline-block;padding:0 7px;border-radius:9px;'
        f'font-size:0.85em;font-weight:600;white-space:nowrap;color:#fff;background:{color}">{_e(text)}</span>'
    )


def drift_badge(kind: str) -> str:
    """A coloured badge naming a drift kind (``local-version``, ``build``, …) or ``unverified``."""
    return _badge(kind, BADGE_COLORS.get(kind, _GREY), f"uvextra-kind-{re.sub(r'[^a-z0-9-]', '-', kind)}")


def _verdict_badge(row: Row) -> str:
    if not row.badge:
        return ""
    color = {"ok": _GREEN, "bad": _RED}.get(row.tone, _GREY)
    kind = {"ok": "ok", "bad": "bad"}.get(row.tone, "neutral")
    return _badge(row.badge, color, f"uvextra-verdict uvextra-verdict-{kind}")


def _names(row: Row) -> str:
    return _e(", ".join(row.names))


def _changes_cell(view: View, rows: Sequence[Row]) -> str:
    cell = ""
    for row in rows:
        if row.key == "changes":
            cell += _e(row.text)
            if view.changes:
                items = "".join(f"<li><code>{_e(c)}</code></li>" for c in view.changes)
                cell += (
                    f'<details><summary style="{_SMALL}">{_e(plural(len(view.changes), "change"))} in detail'
                    f'</summary><ul style="margin:2px 0 2px 18px;padding:0">{items}</ul></details>'
                )
        elif row.key == "removed":  # every removal named on the card itself, not only counted
            cell += f'<div class="uvextra-removed" style="{_SMALL}">removed: {_e(row.text)}</div>'
        elif row.collapse:
            cell += _collapsed(row, "uvextra-foreign")
        else:
            cell += f'<div style="{_SMALL}">{_e(row.text)}: {_names(row)}</div>'
    return cell


def _collapsed(row: Row, css: str) -> str:
    # ~40 names in a plain kernel env, ~120 on a hub image: a count at a glance, the names one click away.
    return (
        f'<details class="{css}"><summary style="{_SMALL}">{_e(row.text)}</summary>'
        f'<div style="{_SMALL}">{_names(row)}</div></details>'
    )


def _drift_tr(package: str, kind: str, versions: str, why: str) -> str:
    """One row of the drift table: the package, its kind as a badge, installed → lock, and why."""
    return (
        f'<tr><td style="{_VAL};padding-right:10px"><code>{_e(package)}</code></td>'
        f'<td style="{_VAL};padding-right:10px">{drift_badge(kind)}</td>'
        f'<td style="{_VAL};padding-right:10px;white-space:nowrap">{_e(versions)}</td>'
        f'<td style="{_VAL};{_SMALL}">{_e(why)}</td></tr>'
    )


def _drift_cell(view: View, row: Row) -> str:
    if not view.drift and not view.unverified:
        if row.tone == "ok":
            return f'<span style="color:{_GREEN}">✓ {_e(row.text)}</span>'
        return _e(row.text)
    rows = [_drift_tr(d.package, d.kind, f"{d.installed or '—'} → {d.wanted or '—'}", d.detail) for d in view.drift]
    rows += [_drift_tr(u.package, "unverified", u.version, u.reason) for u in view.unverified]
    head = "".join(f'<th style="{_KEY}">{h}</th>' for h in ("package", "drift", "installed → lock", "why"))
    return (
        f'<table class="uvextra-drift" style="{_TABLE}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _stack_cell(rows: Sequence[Row]) -> str:
    """One line per companion (✓ fits / ✗ with why), then each misrouting with the lines that fix it."""
    out = []
    for row in rows:
        if row.key == "stack":
            ok = row.tone == "ok"
            mark = (
                f'<span style="color:{_GREEN}">✓</span>'
                if ok
                else f'<span class="uvextra-stack-bad" style="color:{_RED};font-weight:600">✗</span>'
            )
            out.append(f'<div class="uvextra-stack-{"ok" if ok else "bad"}">{mark} {_e(row.text)}</div>')
        else:
            fix = (
                ""
                if not row.lines
                else (
                    f'<div style="{_SMALL}">these lines in pyproject.toml fix it (uvextra never edits it):</div>'
                    f'<pre class="uvextra-routing-fix" style="margin:2px 0;font-size:12px">{_e(chr(10).join(row.lines))}'
                    "</pre>"
                )
            )
            out.append(f'<div class="uvextra-routing" style="color:{_AMBER}">{_e(row.text)}</div>{fix}')
    return "".join(out)


def _kernel_cell(view: View, row: Row) -> str:
    if row.tone == "ok":
        return f"✓ {_e(row.text)}"
    if not row.items:
        return f"⟳ {_e(row.text)}"
    how = _e(row.text.removeprefix("restart needed — "))
    items = "".join(f"<li><code>{_e(m)}</code>: {_e(r)}</li>" for m, r in row.items)
    return (
        f'<span class="uvextra-restart-needed" style="color:{_AMBER};font-weight:600">⟳ restart needed</span>'
        f' — {how}<ul style="margin:2px 0 2px 18px;padding:0">{items}</ul>'
    )


def _cell(view: View, row: Row) -> str:
    if row.key == "extras":
        cell = " ".join(f"<code><b>{_e(x)}</b></code>" for x, _kind in row.items) or "(none)"
        if row.lines:
            cell += f' <span style="{_SMALL}">— {_e(row.lines[0])}</span>'
        if row.names:
            cell += f' <span style="{_SMALL}">(others: {_names(row)})</span>'
        return cell
    if row.key == "drift":
        return _drift_cell(view, row)
    if row.key == "extraneous":
        return (
            f'{drift_badge("extraneous")} {_e(collapsed(row.names, 8))} <span style="{_SMALL}">({_e(row.text)})</span>'
        )
    if row.key == "CUDA":
        return f'{_verdict_badge(row)} <span class="uvextra-verdict-text">{_e(row.text)}</span>'
    if row.key == "kernel":
        return _kernel_cell(view, row)
    if row.key == "uv said":
        return (
            f'<pre class="uvextra-uv-error" style="margin:0;white-space:pre-wrap">{_e(chr(10).join(row.lines))}</pre>'
        )
    if row.key == "next":
        return _e(row.text).replace("click Reinstall", "click <b>Reinstall</b>", 1) if view.live else _e(row.text)
    if row.collapse:
        return _collapsed(row, f"uvextra-{row.key}")
    color = {"bad": _RED, "warn": _AMBER}.get(row.tone)
    css = f' class="uvextra-{row.key}"' if row.key == "notebook" else ""
    return f'<span{css} style="color:{color}">{_e(row.text)}</span>' if color else _e(row.text)


def _card_rows(view: View) -> list[tuple[str, str]]:
    """The view's rows as (label, cell): what a switch did in one cell, the stack in one, where in the footer."""
    out: list[tuple[str, str]] = []
    rows = [r for r in view.rows if r.part not in ("where", "headline")]

    def cell_of(row: Row) -> str:  # rows that share one cell of the card
        return "changes" if row.part == "changes" else "stack" if row.key in ("stack", "routing") else ""

    for shared, group in groupby(rows, key=cell_of):
        if shared == "changes":
            out.append(("changes", _changes_cell(view, list(group))))
        elif shared == "stack":
            out.append(("stack", _stack_cell(list(group))))
        else:
            out += [("failure" if row.key == "FAILED" else row.key, _cell(view, row)) for row in group]
    where = [
        ("env" if r.key == "environment" else r.key, r.text)
        for r in view.rows
        if r.part == "where" and r.key in ("environment", "uv")
    ]
    parts = [f"{k} {v.split(' (')[0]}" for k, v in where]
    if view.elapsed_s:
        parts.append(f"{view.elapsed_s:.1f} s")
    if parts:
        out.append(("", f'<span style="{_SMALL}">{_e(" · ".join(parts))}</span>'))
    return out


def render_html(
    report: Report,
    kernel: KernelState | None = None,
    *,
    live: bool = False,
    note: str | None = None,
    notebook: str | None = None,
    in_card: bool | None = None,
) -> str:
    """The card: headline, extras, changes, drift table with badges, CUDA verdict, kernel state, uv log.

    ``live`` words the next step for a card with buttons; ``note`` is one extra line (e.g. a restart failure);
    ``notebook`` one line about the backend this kernel's notebook last ran on; ``in_card`` (default: ``live``)
    leaves the border to the widget box around it.
    """
    view = build_view(report, kernel, live=live, note=note, notebook=notebook, magic=True)
    head = view.headline
    colors = {"ok": _GREEN, "drift": _RED, "failed": _RED, "interrupted": _AMBER}
    marks = {"ok": "✓", "drift": "✗", "failed": "✗", "interrupted": "■"}
    status = (
        f'<span class="uvextra-status uvextra-status-{head.state}" style="color:{colors[head.state]};'
        f'font-weight:600">{marks[head.state]} {_e(head.text)}</span>'
    )
    name = f" · <code>{_e(view.project_name)}</code>" if view.project_name else ""
    title = f"<b>uvextra</b>{name} · {_e(view.title)} — {status}"
    body = "".join(f'<tr><th style="{_KEY}">{k}</th><td style="{_VAL}">{v}</td></tr>' for k, v in _card_rows(view))
    box = _IN_CARD if (live if in_card is None else in_card) else _BOX
    return (
        f'<div class="uvextra-report" style="{box}"><div style="margin-bottom:4px">{title}</div>'
        f'<table style="{_TABLE}">{body}</table>{_log_details(view.log)}</div>'
    )


def _log_details(log: Sequence[str], label: str = "uv output") -> str:
    if not log:
        return ""
    shown = list(log[-_LOG_LINES:])
    cut = f"(last {len(shown)} of {len(log)} lines)\n" if len(log) > len(shown) else ""
    return (
        f'<details class="uvextra-log"><summary style="{_SMALL}">{_e(label)} ({len(log)} line'
        f'{"s" if len(log) != 1 else ""})</summary><pre style="margin:4px 0;max-height:24em;overflow:auto;'
        f'font-size:12px">{_e(cut)}{_e(chr(10).join(shown))}</pre></details>'
    )


def render_progress(
    title: str,
    elapsed_s: float,
    log: Sequence[str],
    *,
    waiting: str | None = None,
    phase: str | None = None,
    live: bool = False,
) -> str:
    """Live progress: what runs, for how long, the phase (downloads counted), uv's latest line, the whole output."""
    latest = next((ln for ln in reversed(log) if ln.strip()), None)
    line = f"<code>{_e(latest.strip())}</code>" if latest else f'<span style="{_SMALL}">waiting for uv…</span>'
    wait = f'<div style="color:{_AMBER}">{_e(waiting)}</div>' if waiting else ""
    if phase:
        wait += f'<div class="uvextra-phase" style="font-weight:600">{_e(phase)}</div>'
    return (
        f'<div class="uvextra-progress" style="{_IN_CARD if live else _BOX}"><div>▶ <b>{_e(title)}</b> '
        f'<span style="{_SMALL}">· {elapsed_s:.1f} s · interrupt the kernel to stop uv</span></div>'
        f"{wait}<div>{line}</div>{_log_details(log)}</div>"
    )


def render_error(message: str) -> str:
    """One line, in red: what went wrong and what to do."""
    return f'<div class="uvextra-error" style="color:{_RED}">uvextra: {_e(message)}</div>'


# Hides a static card where the live card is drawn in the same output area (JupyterLab, Notebook 7: ``.jp-OutputArea``);
# everywhere else (nbconvert's HTML offline, static viewers that keep styles) the static card is what shows.
_HIDE_WHEN_LIVE = "<style>.jp-OutputArea:has(.uvextra-card) .uvextra-static{display:none}</style>"


def render_static(markup: str) -> str:
    """``markup`` as the static output beside a live card (see :mod:`uvextra.widgets`)."""
    return f'{_HIDE_WHEN_LIVE}<div class="uvextra-static">{markup}</div>'


def render_stale(line: str) -> str:
    """One line, in amber, over a card that no longer shows the present (a later switch, a restart)."""
    return f'<div class="uvextra-stale-line" style="color:{_AMBER};font-weight:600">{_e(line)}</div>'


class ReportView:
    """A report that IPython displays as the static card (HTML), as Markdown, or as text — no widgets."""

    def __init__(self, report: Report, kernel: KernelState | None = None) -> None:
        self.report = report
        self.kernel = kernel

    def _repr_html_(self) -> str:
        return render_html(self.report, self.kernel)

    def _repr_markdown_(self) -> str:
        return render_markdown(self.report, self.kernel)

    def __repr__(self) -> str:
        return render_plain(self.report, self.kernel)
