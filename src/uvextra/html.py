"""A Report as static HTML, Markdown and plain text: what a saved notebook shows without a live kernel.

No ipywidgets here. The HTML uses plain elements (tables, ``<details>``, ``<code>``) with inline styles, and every
badge carries its meaning in words too, so it still reads well where styles are stripped (GitHub's notebook view).
Everything user-visible passes through :func:`uvextra.redact.redact`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .kernel import KernelState
from .redact import redact
from .report import Report, render_text

__all__ = [
    "BADGE_COLORS",
    "ReportView",
    "drift_badge",
    "render_error",
    "render_html",
    "render_markdown",
    "render_plain",
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
_BOX = ("font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;line-height:1.45;"
        "border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:2px 0;max-width:980px")
_TABLE = "border-collapse:collapse;margin:0;font-size:inherit;line-height:inherit"
_KEY = "text-align:left;vertical-align:top;padding:2px 14px 2px 0;color:#57606a;font-weight:600;white-space:nowrap"
_VAL = "text-align:left;vertical-align:top;padding:2px 0"
_SMALL = "color:#57606a;font-size:0.9em"
_LOG_LINES = 400  # the disclosure keeps the last lines; uv's output of a big switch is a few hundred at most


def _e(text: object) -> str:
    return html.escape(redact(str(text)), quote=True)


def _badge(text: str, color: str, css: str) -> str:
    return (f'<span class="uvextra-badge {css}" style="display:inline-block;padding:0 7px;border-radius:9px;'
            f'font-size:0.85em;font-weight:600;white-space:nowrap;color:#fff;background:{color}">{_e(text)}</span>')


def drift_badge(kind: str) -> str:
    """A coloured badge naming a drift kind (``local-version``, ``build``, …) or ``unverified``."""
    return _badge(kind, BADGE_COLORS.get(kind, _GREY), f"uvextra-kind-{re.sub(r'[^a-z0-9-]', '-', kind)}")


def verdict_state(report: Report) -> tuple[str, str] | None:
    """The CUDA verdict as (state, label): state ``ok`` (green), ``bad`` (red) or ``neutral`` (grey); None: no probe.

    A CPU build under a non-GPU extra is neutral — nothing is wrong, there is just no GPU to use.
    """
    probe = report.probe
    if probe is None:
        return None
    api = "ROCm" if probe.hip_version else "CUDA"
    if probe.ok:
        return "ok", f"{api} ✓"
    if probe.torch_version is None and probe.error is None and probe.verdict.startswith("torch is not installed"):
        return "neutral", "no torch"
    from .accelerators import parse_extra

    gpu_selected = any(parse_extra(e).is_gpu for e in report.extras)
    if (probe.torch_version and not probe.cuda_version and not probe.hip_version and not gpu_selected
            and not probe.error):
        return "neutral", "CPU"
    return "bad", f"{api} ✗"


def _verdict_badge(report: Report) -> str:
    state = verdict_state(report)
    if state is None:
        return ""
    kind, label = state
    color = {"ok": _GREEN, "bad": _RED}.get(kind, _GREY)
    return _badge(label, color, f"uvextra-verdict uvextra-verdict-{kind}")


@dataclass(frozen=True)
class _Headline:
    state: str  # ok | drift | failed | interrupted
    text: str


def _headline(report: Report) -> _Headline:
    errors = report.errors
    if report.interrupted:
        return _Headline("interrupted", "interrupted — uv was stopped; below is the environment as it is now")
    if report.failure:
        return _Headline("failed", f"failed: {report.failure}")
    if errors:
        n = len(errors)
        return _Headline("drift", f"{n} package{'s differ' if n != 1 else ' differs'} from the lock")
    if report.unverified:
        n = len(report.unverified)
        return _Headline("drift", f"{n} package{'s' if n != 1 else ''} cannot be verified against the lock")
    if report.stack_failed:
        names = ", ".join(e.package for e in report.stack_failed)
        return _Headline("drift", f"matches the lock, but {names} does not fit the installed torch")
    return _Headline("ok", "matches the lock")


def _title(report: Report) -> str:
    extras = ", ".join(report.extras) or "(no extras)"
    if report.command == "probe":
        return "CUDA probe"
    if report.command == "repair":
        return f"repaired {', '.join(report.repaired) or 'nothing'} for {extras}"
    verb = {"switch": "switched to", "check": "checked against", "status": "status of"}.get(report.command,
                                                                                          report.command)
    return f"{verb} {extras}"


def _kernel_rows(kernel: KernelState | None, *, live: bool) -> list[tuple[str, str]]:
    if kernel is None:
        return []
    if kernel.restarting:
        return [("kernel", f"⟳ {_e(kernel.restarting)}")]
    if not kernel.stale:
        return [("kernel", "✓ no imported module is stale")]
    items = "".join(f"<li><code>{_e(s.module)}</code>: {_e(s.reason)}</li>" for s in kernel.stale)
    if kernel.restart.available and live:
        action = "restart the kernel (the <b>Restart kernel</b> button) to use what is on disk"
    elif kernel.restart.available:
        action = "restart the kernel to use what is on disk"
    else:
        action = _e(kernel.restart.why)
    body = (f'<span class="uvextra-restart-needed" style="color:{_AMBER};font-weight:600">⟳ restart needed</span>'
            f" — {action}<ul style=\"margin:2px 0 2px 18px;padding:0\">{items}</ul>")
    return [("kernel", body)]


def _changes_cell(report: Report) -> str:
    ch = report.changes
    cell = _e(ch.summary())
    listed = [*ch.installed, *ch.removed]
    if listed:
        items = "".join(f"<li><code>{_e(c)}</code></li>" for c in listed)
        n = len(listed)
        cell += (f"<details><summary style=\"{_SMALL}\">{n} change{'s' if n != 1 else ''} in detail</summary>"
                 f"<ul style=\"margin:2px 0 2px 18px;padding:0\">{items}</ul></details>")
    if ch.removed:  # every removal named on the card itself, not only counted
        cell += (f"<div class=\"uvextra-removed\" style=\"{_SMALL}\">removed: "
                 f"{_e(', '.join(f'{c.name} {c.old}' for c in ch.removed))}</div>")
    kept = [name for name in ch.kept if name not in report.kernel_protected]  # those have their own row
    if kept:
        cell += f"<div style=\"{_SMALL}\">kept, though not in the lock: {_e(', '.join(kept))}</div>"
    if ch.kept_foreign:
        n = len(ch.kept_foreign)
        cell += (f"<details class=\"uvextra-foreign\"><summary style=\"{_SMALL}\">{n} package{'s' if n != 1 else ''} "
                 f"not from this project, kept</summary><div style=\"{_SMALL}\">{_e(', '.join(ch.kept_foreign))}"
                 "</div></details>")
    return cell


def _protected_cell(names: Sequence[str]) -> str:
    # ~40 names in a plain kernel env, ~120 on a hub image: a count at a glance, the names one click away.
    n = len(names)
    return (f"<details class=\"uvextra-protected\"><summary style=\"{_SMALL}\">{n} package{'s' if n != 1 else ''} "
            f"the kernel needs, kept</summary><div style=\"{_SMALL}\">{_e(', '.join(names))}</div></details>")


def _drift_cell(report: Report) -> str:
    errors = report.errors
    if not errors and not report.unverified:
        if report.failure and not report.interrupted:
            return "none found"
        return f'<span style="color:{_GREEN}">✓ none — installed packages match the lock</span>'
    rows = []
    for d in errors:
        rows.append(
            f"<tr><td style=\"{_VAL};padding-right:10px\"><code>{_e(d.package)}</code></td>"
            f"<td style=\"{_VAL};padding-right:10px\">{drift_badge(d.kind)}</td>"
            f"<td style=\"{_VAL};padding-right:10px;white-space:nowrap\">{_e(d.installed or '—')} → "
            f"{_e(d.wanted or '—')}</td><td style=\"{_VAL};{_SMALL}\">{_e(d.detail)}</td></tr>"
        )
    for u in report.unverified:
        rows.append(
            f"<tr><td style=\"{_VAL};padding-right:10px\"><code>{_e(u.package)}</code></td>"
            f"<td style=\"{_VAL};padding-right:10px\">{drift_badge('unverified')}</td>"
            f"<td style=\"{_VAL};padding-right:10px\">{_e(u.version)}</td>"
            f"<td style=\"{_VAL};{_SMALL}\">{_e(u.reason)}</td></tr>"
        )
    head = "".join(f'<th style="{_KEY}">{h}</th>' for h in ("package", "drift", "installed → lock", "why"))
    return (f'<table class="uvextra-drift" style="{_TABLE}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _stack_cell(report: Report) -> str:
    """One line per companion (✓ fits / ✗ with why), then each misrouting with the lines that fix it."""
    lines = []
    for e in report.stack:
        mark = (f'<span style="color:{_GREEN}">✓</span>' if e.ok else
                f'<span class="uvextra-stack-bad" style="color:{_RED};font-weight:600">✗</span>')
        lines.append(f'<div class="uvextra-stack-{"ok" if e.ok else "bad"}">{mark} {_e(e.why)}</div>')
    seen: set[str] = set()
    for m in report.routing:
        fix = "" if m.package in seen else (
            f"<div style=\"{_SMALL}\">these lines in pyproject.toml fix it (uvextra never edits it):</div>"
            f'<pre class="uvextra-routing-fix" style="margin:2px 0;font-size:12px">{_e(chr(10).join(m.fix))}</pre>')
        seen.add(m.package)
        lines.append(f'<div class="uvextra-routing" style="color:{_AMBER}">{_e(m.why)}</div>{fix}')
    return "".join(lines)


def _log_details(log: Sequence[str], label: str = "uv output") -> str:
    if not log:
        return ""
    shown = list(log[-_LOG_LINES:])
    cut = f"(last {len(shown)} of {len(log)} lines)\n" if len(log) > len(shown) else ""
    return (f'<details class="uvextra-log"><summary style="{_SMALL}">{_e(label)} ({len(log)} line'
            f"{'s' if len(log) != 1 else ''})</summary><pre style=\"margin:4px 0;max-height:24em;overflow:auto;"
            f"font-size:12px\">{_e(cut)}{_e(chr(10).join(shown))}</pre></details>")


def _next_step(report: Report, live: bool) -> str | None:
    if live and report.can_repair:
        return "click <b>Reinstall</b> to reinstall exactly these packages from the lock"
    step = report.next_step()
    return _e(step) if step else None


def render_html(report: Report, kernel: KernelState | None = None, *, live: bool = False,
                note: str | None = None, notebook: str | None = None) -> str:
    """The card: headline, extras, changes, drift table with badges, CUDA verdict, kernel state, uv log.

    ``live`` words the next step for a card with buttons; ``note`` is one extra line (e.g. a restart failure);
    ``notebook`` one line about the backend this kernel's notebook last ran on.
    """
    head = _headline(report)
    colors = {"ok": _GREEN, "drift": _RED, "failed": _RED, "interrupted": _AMBER}
    marks = {"ok": "✓", "drift": "✗", "failed": "✗", "interrupted": "■"}
    status = (f'<span class="uvextra-status uvextra-status-{head.state}" style="color:{colors[head.state]};'
              f'font-weight:600">{marks[head.state]} {_e(head.text)}</span>')
    name = f" · <code>{_e(report.project_name)}</code>" if report.project_name else ""
    title = f"<b>uvextra</b>{name} · {_e(_title(report))} — {status}"

    rows: list[tuple[str, str]] = []
    if report.command != "probe":
        chosen = " ".join(f"<code><b>{_e(x)}</b></code>" for x in report.extras) or "(none)"
        others = [x for x in report.available_extras if x not in report.extras]
        extra_note = f" <span style=\"{_SMALL}\">— {_e(report.extras_source)}</span>" if report.extras_source else ""
        if others:
            extra_note += f" <span style=\"{_SMALL}\">(others: {_e(', '.join(others))})</span>"
        rows.append(("extras", chosen + extra_note))
    if report.command in ("switch", "repair"):
        rows.append(("changes", _changes_cell(report)))
    if report.repaired:
        rows.append(("repaired", _e(", ".join(report.repaired))))
    if report.command != "probe":
        rows.append(("drift", _drift_cell(report)))
        if report.extraneous:
            names = ", ".join(f"{d.package} {d.installed}" for d in report.extraneous[:8])
            more = f" and {len(report.extraneous) - 8} more" if len(report.extraneous) > 8 else ""
            rows.append(("extraneous", f"{drift_badge('extraneous')} {_e(names + more)} "
                                       f"<span style=\"{_SMALL}\">(not in the lock; not an error)</span>"))
    if report.probe is not None:
        rows.append(("CUDA", f"{_verdict_badge(report)} <span class=\"uvextra-verdict-text\">"
                             f"{_e(report.probe.verdict)}</span>"))
    if report.stack:
        rows.append(("stack", _stack_cell(report)))
    rows.extend(_kernel_rows(kernel, live=live))
    if report.kernel_protected:
        rows.append(("protected", _protected_cell(report.kernel_protected)))
    if notebook:
        rows.append(("notebook", f'<span class="uvextra-notebook" style="color:{_AMBER}">{_e(notebook)}</span>'))
    for w in report.warnings:
        rows.append(("warning", f'<span style="color:{_AMBER}">{_e(w)}</span>'))
    if report.failure and head.state != "failed":
        rows.append(("failure", f'<span style="color:{_RED}">{_e(report.failure)}</span>'))
    if report.uv_error and report.uv_error not in (report.failure or ""):
        rows.append(("uv said", f'<pre class="uvextra-uv-error" style="margin:0;white-space:pre-wrap">'
                                f"{_e(report.uv_error)}</pre>"))
    if note:
        rows.append(("note", _e(note)))
    step = _next_step(report, live)
    if step:
        rows.append(("next", step))
    where = []
    if report.environment:
        where.append(f"env {report.environment}")
    if report.uv:
        where.append(f"uv {report.uv.get('version')}")
    if report.elapsed_s:
        where.append(f"{report.elapsed_s:.1f} s")
    if where:
        rows.append(("", f"<span style=\"{_SMALL}\">{_e(' · '.join(where))}</span>"))

    body = "".join(f'<tr><th style="{_KEY}">{k}</th><td style="{_VAL}">{v}</td></tr>' for k, v in rows)
    return (f'<div class="uvextra-report" style="{_BOX}"><div style="margin-bottom:4px">{title}</div>'
            f'<table style="{_TABLE}">{body}</table>{_log_details(report.log)}</div>')


def render_progress(title: str, elapsed_s: float, log: Sequence[str], *, waiting: str | None = None,
                    phase: str | None = None) -> str:
    """Live progress: what runs, for how long, the phase (downloads counted), uv's latest line, the whole output."""
    latest = next((ln for ln in reversed(log) if ln.strip()), None)
    line = f"<code>{_e(latest.strip())}</code>" if latest else f'<span style="{_SMALL}">waiting for uv…</span>'
    wait = f'<div style="color:{_AMBER}">{_e(waiting)}</div>' if waiting else ""
    if phase:
        wait += f'<div class="uvextra-phase" style="font-weight:600">{_e(phase)}</div>'
    return (f'<div class="uvextra-progress" style="{_BOX}"><div>▶ <b>{_e(title)}</b> '
            f'<span style="{_SMALL}">· {elapsed_s:.1f} s · interrupt the kernel to stop uv</span></div>'
            f"{wait}<div>{line}</div>{_log_details(log)}</div>")


def render_error(message: str) -> str:
    """One line, in red: what went wrong and what to do."""
    return f'<div class="uvextra-error" style="color:{_RED}">uvextra: {_e(message)}</div>'


# ---------------------------------------------------------------------------------------------------- text

def _md(text: object) -> str:
    return redact(str(text)).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, kernel: KernelState | None = None) -> str:
    """The card as Markdown (``nbconvert --to markdown``, ``_repr_markdown_``)."""
    head = _headline(report)
    mark = {"ok": "✅", "drift": "❌", "failed": "❌", "interrupted": "⏹"}[head.state]
    name = f" · `{_md(report.project_name)}`" if report.project_name else ""
    out = [f"**uvextra**{name} · {_md(_title(report))} — {mark} {_md(head.text)}", "", "| | |", "|---|---|"]
    if report.command != "probe":
        out.append(f"| extras | {' '.join(f'`{_md(x)}`' for x in report.extras) or '(none)'} "
                   f"— {_md(report.extras_source)} |")
    if report.command in ("switch", "repair"):
        out.append(f"| changes | {_md(report.changes.summary())} |")
        if report.changes.removed:
            out.append(f"| removed | {_md(', '.join(f'{c.name} {c.old}' for c in report.changes.removed))} |")
        foreign = report.changes.foreign_line()
        if foreign:
            out.append(f"| kept | {_md(foreign)} |")
    if report.probe is not None:
        state = verdict_state(report)
        icon = {"ok": "🟢", "bad": "🔴"}.get(state[0] if state else "", "⚪")
        out.append(f"| CUDA | {icon} {_md(report.probe.verdict)} |")
    for e in report.stack:
        out.append(f"| stack | {'✅' if e.ok else '❌'} {_md(e.why)} |")
    for m in report.routing:
        out.append(f"| routing | {_md(m.why)}: `{_md(' '.join(m.fix[1:]))}` |")
    if kernel is not None:
        if kernel.stale:
            out.append("| kernel | ⟳ restart needed: " + _md("; ".join(str(s) for s in kernel.stale)) + " |")
        else:
            out.append("| kernel | no imported module is stale |")
    for w in report.warnings:
        out.append(f"| warning | {_md(w)} |")
    if report.failure:
        out.append(f"| failure | {_md(report.failure)} |")
    if report.uv_error and report.uv_error not in (report.failure or ""):
        out.append(f"| uv said | {_md(report.uv_error)} |")
    step = report.next_step()
    if step:
        out.append(f"| next | {_md(step)} |")
    if report.errors or report.unverified:
        out += ["", "| package | drift | installed | lock wants | why |", "|---|---|---|---|---|"]
        out += [f"| `{_md(d.package)}` | **{_md(d.kind)}** | {_md(d.installed or '—')} | {_md(d.wanted or '—')} "
                f"| {_md(d.detail)} |" for d in report.errors]
        out += [f"| `{_md(u.package)}` | **unverified** | {_md(u.version)} | | {_md(u.reason)} |"
                for u in report.unverified]
    return "\n".join(out) + "\n"


def render_plain(report: Report, kernel: KernelState | None = None) -> str:
    """:func:`uvextra.report.render_text` plus the kernel's state, aligned with it."""
    text = render_text(report)
    lines = _kernel_lines(kernel)
    if not lines:
        return text
    rows = text.splitlines()
    match = re.match(r"^\S+\s+", rows[0] if rows else "")
    width = max((match.end() - 2) if match else 0, len("kernel"))
    at = next((i for i, row in enumerate(rows) if row.startswith("next ")), len(rows))  # before the next step
    rows[at:at] = [f"{k:<{width}}  {v}".rstrip() for k, v in lines]
    return "\n".join(rows)


def _kernel_lines(kernel: KernelState | None) -> list[tuple[str, str]]:
    if kernel is None:
        return []
    if kernel.restarting:
        return [("kernel", kernel.restarting)]
    if not kernel.stale:
        return [("kernel", "no imported module is stale")]
    how = "restart the kernel" if kernel.restart.available else kernel.restart.why
    rows = [("kernel", f"restart needed — {how}")]
    rows += [("", f"  {s}") for s in kernel.stale]
    return rows


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
