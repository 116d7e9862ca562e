"""A View as aligned text: terminals, ``text/plain`` and ``%uvextra`` in a terminal IPython."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.redact import redact
from ..core.report import Report
from .view import SHOWN_NAMES, Row, View, build_view

if TYPE_CHECKING:
    from ..core.vocabulary import KernelState


def collapsed(names: Sequence[str], limit: int = SHOWN_NAMES) -> str:
    """The first ``limit`` names and how many more."""
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _text_value(row: Row, verbose: bool) -> str:
    if row.key == "extras":
        return row.text + (f" — {row.lines[0]}" if row.lines else "")
    if row.key == "stack":
        return f"{'ok' if row.tone == 'ok' else 'FAILS'}: {row.text}"
    if row.key == "routing":
        return row.text + ("; these lines fix it:" if row.lines else "")
    if row.key == "extraneous":
        return f"{collapsed(row.names, 8)} ({row.text})"
    if row.names:
        return f"{row.text}: {', '.join(row.names) if verbose else collapsed(row.names)}"
    return row.text


def render_view_text(view: View, *, verbose: bool = False, brief: bool = False) -> str:
    """Short, aligned, terminal-friendly text; ``brief`` leaves out where (project, venv, uv) for repeated reports."""
    rows = [r for r in view.rows if not (brief and r.part == "where")]
    width = max((len(r.key) for r in rows), default=0)
    out: list[str] = []
    for row in rows:
        if row.key == "uv said":
            out += [f"{row.key:<{width}}  {line}" for line in row.lines]
            continue
        out.append(f"{row.key:<{width}}  {_text_value(row, verbose)}".rstrip())
        if row.key == "changes" and verbose:
            out += [f"{'':<{width}}  {c}" for c in view.changes]
        elif row.key == "routing":
            out += [f"{'':<{width}}    {line}" for line in row.lines]
        elif row.key == "kernel":
            out += [f"{'':<{width}}    {name}: {why}" for name, why in row.items]
        elif row.part == "drift":
            out += _drift_lines(view, width, verbose)
    return redact("\n".join(out))


SHOWN_MISSING = 8  # a fresh venv of a large lock: the first missing packages in full, the rest counted (-v: all)


def _drift_lines(view: View, width: int, verbose: bool = False) -> list[str]:
    out = []
    missing = [d for d in view.drift if d.kind == "missing"]
    hidden = {id(d) for d in missing[SHOWN_MISSING:]} if len(missing) > SHOWN_MISSING + 2 and not verbose else set()
    shown = [d for d in view.drift if id(d) not in hidden]
    if shown:
        nw = max(len(d.package) for d in shown)
        kw = max(len(d.kind) for d in shown)
        for d in shown:
            out.append(f"  {d.package:<{nw}}  {d.kind:<{kw}}  {d.installed or '—'} → {d.wanted or '—'}")
            out.append(f"  {'':<{nw}}  {'':<{kw}}  {d.detail}")
    if hidden:
        rest = [d.package for d in missing[SHOWN_MISSING:]]
        out.append(f"  … and {len(rest)} more missing: {collapsed(rest)} (-v lists each)")
    out += [f"{'unverified':<{width}}  {u.package} {u.version}: {u.reason}" for u in view.unverified]
    return out


def render_text(
    report: Report,
    *,
    verbose: bool = False,
    brief: bool = False,
    kernel: KernelState | None = None,
    magic: bool = False,
    card: bool = True,
) -> str:
    """A report (and the kernel's state, in a notebook) as aligned text; ``magic``: in ``%uvextra``'s words (``card``:
    a card's, with its Reinstall button)."""
    return render_view_text(build_view(report, kernel, magic=magic, card=card), verbose=verbose, brief=brief)


def render_plain(report: Report, kernel: KernelState | None = None, *, card: bool = True) -> str:
    """The report and the kernel's state as aligned text (the view's own text rendering), in ``%uvextra``'s words
    (``card=False``: no card, as in a terminal IPython)."""
    return render_text(report, kernel=kernel, magic=True, card=card)
