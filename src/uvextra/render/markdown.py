"""A Report as Markdown: ``nbconvert --to markdown`` and ``_repr_markdown_`` — the same rows as the card."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.redact import redact
from ..core.report import Report
from .text import collapsed
from .view import build_view

if TYPE_CHECKING:
    from ..core.vocabulary import KernelState


def _md(text: object) -> str:
    return redact(str(text)).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, kernel: KernelState | None = None) -> str:
    """The card as Markdown (``nbconvert --to markdown``, ``_repr_markdown_``): the same rows as the card."""
    view = build_view(report, kernel, magic=True)
    head = view.headline
    mark = {"ok": "✅", "drift": "❌", "failed": "❌", "interrupted": "⏹"}[head.state]
    name = f" · `{_md(view.project_name)}`" if view.project_name else ""
    icons = {"ok": "✅", "bad": "❌"}
    out = [f"**uvextra**{name} · {_md(view.title)} — {mark} {_md(head.text)}", "", "| | |", "|---|---|"]
    for row in view.rows:
        if row.part in ("where", "headline"):
            continue
        if row.key == "extras":
            value = " ".join(f"`{_md(x)}`" for x, _kind in row.items) or "(none)"
            value += f" — {_md(row.lines[0])}" if row.lines else ""
        elif row.key in ("routing", "uv said", "kernel"):
            value = _md(" ".join((row.text, *row.lines, *(f"{m}: {r};" for m, r in row.items))).strip())
        elif row.names:
            value = _md(f"{row.text}: {collapsed(row.names)}")
        else:
            value = _md(row.text)
        icon = ""
        if row.key == "CUDA":
            icon = {"ok": "🟢 ", "bad": "🔴 "}.get(row.tone, "⚪ ")
        elif row.key == "stack":
            icon = icons.get(row.tone, "") + " "
        elif row.key == "kernel" and row.tone == "warn":
            icon = "⟳ "
        out.append(f"| {'failure' if row.key == 'FAILED' else row.key} | {icon}{value} |")
    if view.drift or view.unverified:
        out += ["", "| package | drift | installed | lock wants | why |", "|---|---|---|---|---|"]
        out += [
            f"| `{_md(d.package)}` | **{_md(d.kind)}** | {_md(d.installed or '—')} | {_md(d.wanted or '—')} "
            f"| {_md(d.detail)} |"
            for d in view.drift
        ]
        out += [
            f"| `{_md(u.package)}` | **unverified** | {_md(u.version)} | | {_md(u.reason)} |" for u in view.unverified
        ]
    return "\n".join(out) + "\n"
