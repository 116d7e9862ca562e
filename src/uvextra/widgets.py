"""The live card in a notebook: progress while uv works, then the report with Reinstall, Restart and a backend toggle.

The card is one ipywidgets ``VBox`` (CSS class ``uvextra-card``) displayed once; every later change — progress,
the result, a button's work — redraws it in place. Beside it, a second output holds the static card
(:mod:`uvextra.render.card`: HTML, Markdown, plain text) and the notebook's record (:mod:`uvextra.kernel.record`), so that a
saved notebook reads well without a live kernel. Two outputs because viewers pick one MIME type per output and
prefer the widget's: ``nbconvert --to html`` of a notebook executed headless (nbclient stores the widget state)
emits only the widget, whose manager comes from a CDN — offline, and in static ``.ipynb`` viewers, the card was
blank. The static output carries a style rule that hides it wherever the live card is drawn in the same output
area (JupyterLab, Notebook 7); anywhere else it is what the reader sees. It is rewritten when the ``%uvextra``
cell finishes and again when a button's action (Reinstall, the toggle, "Switch to …", Check again) has finished,
so the saved notebook's record names the last action (``uvextra check --notebook`` reads it); the widget's own
output is never rewritten (that would rebuild its view: a flicker, an open disclosure closed).

Stable hooks for browser tests and custom CSS: ``uvextra-card``, ``uvextra-progress``, ``uvextra-body``,
``uvextra-reinstall`` ("Reinstall"), ``uvextra-restart`` ("Restart kernel"), ``uvextra-toggle``, ``uvextra-refresh``
("Check again"), ``uvextra-stale`` (an out-of-date card's line), ``uvextra-static`` (the static output).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from IPython.display import display

from .core.errors import UvextraError
from .core.vocabulary import EXITING, RESTARTING, Backend
from .render.card import render_error, render_html, render_progress, render_stale, render_static
from .render.markdown import render_markdown
from .render.text import render_plain

if TYPE_CHECKING:
    from .core.report import Report
    from .kernel.session import Action, Outcome, Session

__all__ = ["Card"]

TICK_S = 0.5  # elapsed time redraw while uv is quiet
LINE_REDRAW_S = 0.15  # at most this often per uv line: a big switch prints hundreds at once
_HIDDEN, _SHOWN = "none", ""
# The cards of this kernel, oldest first: a switch or repair from one of them makes the others out of date.
_CARDS: list[weakref.ref[Card]] = []


def _same(a: Backend, b: Backend) -> bool:
    """The same backend: the same name and the same kind (a name may be both an extra and a dependency group)."""
    return (a.name, a.kind) == (b.name, b.kind)


def _within(name: Backend, group: list[Backend]) -> bool:
    return any(_same(name, g) for g in group)


def _conflict_group(report: Report) -> list[Backend]:
    for group in report.conflict_sets:
        if any(_within(e, list(group)) for e in report.extras):
            return list(group)
    return list(report.conflict_sets[0]) if report.conflict_sets else []


def _main_shell(_data: object, _default: object) -> None:
    return None  # ipykernel's id of the main shell


def _on_main_shell(widgets: list[Any]) -> None:
    """Have the kernel handle what the page sends to ``widgets`` on its main shell, the one that runs cells.

    JupyterLab 4.6 and Notebook 7 send comm messages over a kernel subshell (one per comm target), and ipykernel
    7.4 routes a comm's incoming messages to the subshell the comm last published from
    (``BaseComm._reply_subshell_for``). Left so, a click runs beside the user's cells: the kernel reads Idle, a cell
    may ``import torch`` while uv rewrites it, and an interrupt (SIGINT, main thread only) never reaches uv. And
    after a restart that the page did not make, the page keeps the old kernel's subshell id: every click after
    the first is dropped (``Unknown subshell_id``). On the main shell a click is cell work: the kernel is Busy,
    the next cell waits for it, interrupt stops uv, and no subshell id the page remembers can lose it. Kernels
    without that routing hook (ipykernel < 7.4) keep their own behaviour.
    """
    for widget in widgets:
        for part in (widget, getattr(widget, "layout", None), getattr(widget, "style", None)):
            comm = getattr(part, "comm", None)
            if comm is not None and hasattr(comm, "_reply_subshell_for"):
                comm._reply_subshell_for = _main_shell


def _toggle_options(group: list[Backend]) -> list[tuple[str, Backend]]:
    """(label, backend) pairs: the name, and its kind where the set has an extra and a group of that name."""
    return [(f"{b} ({b.kind})" if sum(o.name == b.name for o in group) > 1 else b.name, b) for b in group]


class Card:
    """One card per ``%uvextra``: :meth:`display` it, then :meth:`run` an action; buttons run further ones."""

    def __init__(self, session: Session, *, probe: bool = True, keep_extraneous: bool = False) -> None:
        self.session = session
        self.probe = probe
        self.keep_extraneous = keep_extraneous
        self.outcome: Outcome | None = None
        self.note: str | None = None
        self.handle: Any = None  # the static output's display
        self.live: Any = None  # the widget's
        self.busy = False
        self._quiet = False  # set while the card itself moves the toggle
        self._lock = threading.Lock()
        self._log: list[str] = []
        self._title = ""
        self._waiting: str | None = None
        self._phase: str | None = None
        self._started = 0.0
        self._drawn = 0.0

        self.progress = w.HTML(layout=w.Layout(display=_HIDDEN))
        self.progress.add_class("uvextra-progress")
        self.body = w.HTML()
        self.body.add_class("uvextra-body")
        self.toggle = w.ToggleButtons(
            options=[],
            value=None,
            description="extra",
            tooltip="switch this kernel's environment to another extra",
            style={"button_width": "auto"},
            layout=w.Layout(display=_HIDDEN),
        )
        self.toggle.add_class("uvextra-toggle")
        self.reinstall = w.Button(
            description="Reinstall",
            icon="wrench",
            button_style="warning",
            tooltip="reinstall exactly the drifted packages from the lock",
            layout=w.Layout(display=_HIDDEN, width="auto"),
        )
        self.reinstall.add_class("uvextra-reinstall")
        self.restart = w.Button(
            description="Restart kernel",
            icon="refresh",
            button_style="danger",
            tooltip="restart this kernel so that imports load what is on disk now",
            layout=w.Layout(display=_HIDDEN, width="auto"),
        )
        self.restart.add_class("uvextra-restart")
        self.follow = w.Button(
            description="Switch",
            icon="book",
            button_style="info",
            tooltip="switch to the extras this notebook last ran on",
            layout=w.Layout(display=_HIDDEN, width="auto"),
        )
        self.follow.add_class("uvextra-notebook-switch")
        self.own = w.Button(
            description="Make my own environment",
            icon="user",
            button_style="primary",
            tooltip="make your own environment for this project, layered on this one, switch it and "
            "move this notebook to its kernel (%uvextra … --user-env)",
            layout=w.Layout(display=_HIDDEN, width="auto"),
        )
        self.own.add_class("uvextra-user-env")
        self._offer: Any = None  # the refused switch, as the user's own environment (uvextra.kernel.session.Outcome)
        self.refresh = w.Button(
            description="Check again",
            icon="search",
            button_style="info",
            tooltip="check this kernel's environment now and show it on this card",
            layout=w.Layout(display=_HIDDEN, width="auto"),
        )
        self.refresh.add_class("uvextra-refresh")
        self.stale = w.HTML(layout=w.Layout(display=_HIDDEN))
        self.stale.add_class("uvextra-stale")
        self.superseded: str | None = None  # why this card no longer shows the present
        self._restarted_others: list[Card] = []  # superseded by this card's restart, live again if it fails
        self.buttons = w.HBox(
            [self.toggle, self.reinstall, self.restart, self.follow, self.own, self.refresh],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        # The border is the box's, so that the toggle and the buttons sit inside the card (html: _BOX).
        self.box = w.VBox(
            [self.progress, self.stale, self.body, self.buttons],
            layout=w.Layout(border="1px solid #d0d7de", padding="8px 12px", margin="2px 0", max_width="980px"),
        )
        self.box.add_class("uvextra-card")
        _on_main_shell(
            [
                self.progress,
                self.stale,
                self.body,
                self.toggle,
                self.reinstall,
                self.restart,
                self.follow,
                self.own,
                self.refresh,
                self.buttons,
                self.box,
            ]
        )
        _CARDS.append(weakref.ref(self))

        self.reinstall.on_click(self._on_reinstall)
        self.restart.on_click(self._on_restart)
        self.follow.on_click(self._on_follow)
        self.refresh.on_click(self._on_refresh)
        self.own.on_click(self._on_own)
        self.toggle.observe(self._on_toggle, names="value")

    # -- display ------------------------------------------------------------------------------------------------
    @property
    def report(self) -> Report | None:
        return None if self.outcome is None else self.outcome.report

    def _bundle(self) -> dict[str, Any]:
        """The static output: what the card says now, for everyone who cannot draw the widget."""
        data: dict[str, Any] = {}
        report = self.report
        if report is None:
            data["text/html"] = render_progress(self._title, time.monotonic() - self._started, self._log)
            data["text/plain"] = f"uvextra: {self._title}…"
        else:
            from .kernel.record import MIME, make_record

            kernel = self.outcome.kernel if self.outcome else None
            hint = self._hint_line()
            data["text/html"] = render_html(report, kernel, note=self.note, notebook=hint)
            data["text/markdown"] = render_markdown(report, kernel)
            data["text/plain"] = render_plain(report, kernel) + (f"\nnotebook  {hint}" if hint else "")
            data[MIME] = make_record(report)  # the notebook remembers its backend (uvextra.kernel.record)
            if self.superseded:
                data["text/html"] = render_stale(self.superseded) + data["text/html"]
                data["text/markdown"] = f"> {self.superseded}\n\n" + data["text/markdown"]
                data["text/plain"] = f"uvextra: {self.superseded}\n" + data["text/plain"]
        data["text/html"] = render_static(data["text/html"])
        return data

    def _hint_line(self) -> str | None:
        hint = self.outcome.notebook if self.outcome is not None else None
        return None if hint is None else hint.line

    def display(self, title: str = "") -> None:
        """Show the card (with progress for ``title``) where the magic runs; later changes redraw it in place."""
        self._title = title
        self._started = time.monotonic()
        live = dict(self.box._repr_mimebundle_())
        live["text/plain"] = ""  # the static output below says it all, in every format
        self.live = display(live, raw=True, display_id=True)
        self.handle = display(self._bundle(), raw=True, display_id=True)

    def _refresh_display(self) -> None:
        # Rewrites the output itself, so that the static fallback (HTML, text) says what the widget says.
        if self.handle is not None:
            self.handle.update(self._bundle(), raw=True)

    # -- progress -----------------------------------------------------------------------------------------------
    def _draw_progress(self) -> None:
        with self._lock:
            self._drawn = time.monotonic()
            self.progress.value = render_progress(
                self._title,
                self._drawn - self._started,
                list(self._log),
                waiting=self._waiting,
                phase=self._phase,
                live=True,
            )

    def _on_progress(self, phase: str) -> None:
        self._phase = phase  # uvextra.progress: the phase, downloads counted
        self._draw_progress()

    def _on_line(self, line: str) -> None:
        self._log.append(line)
        if time.monotonic() - self._drawn >= LINE_REDRAW_S:
            self._draw_progress()

    def _on_wait(self, message: str) -> None:
        self._waiting = message
        self._draw_progress()

    def _tick(self, stop: threading.Event) -> None:
        # A background thread may only touch widget state (comm messages find their widget by id); display
        # updates from here would not reach the cell.
        while not stop.wait(TICK_S):
            self._draw_progress()

    def run(self, action: Action, *, final: bool = False) -> Outcome:
        """Run ``action`` with live progress in the card, then show its outcome; never raises.

        ``final``: the magic's own run — afterwards the output's static fallback is written (see the module).
        """
        self.busy = True
        self._title, self._log, self._waiting = action.title, [], None
        self._started = time.monotonic()
        self.superseded = None
        self.stale.layout.display = _HIDDEN
        for control in (self.reinstall, self.restart, self.toggle, self.follow, self.refresh):
            control.disabled = True
        self.refresh.layout.display = _HIDDEN
        self._draw_progress()
        self.progress.layout.display = _SHOWN
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), name="uvextra-progress", daemon=True)
        ticker.start()
        try:
            from .core.progress import Progress

            self._phase = None
            progress = Progress(phase=self._on_progress, uv_line=self._on_line, waiting=self._on_wait)
            outcome = self.session.execute(action, progress)
        finally:
            stop.set()
            ticker.join()
            self.progress.layout.display = _HIDDEN
            self.busy = False
        self.show(outcome, final=final)
        report = outcome.report
        if report is not None and report.command in ("switch", "repair"):
            verb = "switched this kernel's environment" if report.command == "switch" else "reinstalled packages"
            now = " ".join(str(e) for e in report.extras) or "no extra"
            self._supersede_others(
                f"out of date: a later card {verb} at {time.strftime('%H:%M:%S')} "
                f"(now {now}); click Check again for the present state",
                refresh=True,
            )
        return outcome

    # -- cards that no longer show the present ------------------------------------------------------------------
    def _supersede_others(self, why: str, *, refresh: bool) -> list[Card]:
        done = []
        for ref in list(_CARDS):
            card = ref()
            if card is None:
                _CARDS.remove(ref)
            elif card is not self and card.session is self.session and card.outcome is not None and not card.busy:
                card.supersede(why, refresh=refresh)
                done.append(card)
        return done

    def supersede(self, why: str, *, refresh: bool = True) -> None:
        """Say in one line why this card is out of date; its controls go (``refresh``: but Check again)."""
        self.superseded = why
        self.stale.value = render_stale(why)
        self.stale.layout.display = _SHOWN
        for control in (self.toggle, self.reinstall, self.restart, self.follow, self.own):
            control.disabled = True
            control.layout.display = _HIDDEN
        self.refresh.disabled = not refresh
        self.refresh.layout.display = _SHOWN if refresh else _HIDDEN
        if self.outcome is not None and self.outcome.report is not None:  # no button words on a card without them
            self.body.value = render_html(
                self.outcome.report, self.outcome.kernel, note=self.note, notebook=self._hint_line(), in_card=True
            )
        self._refresh_display()  # the saved output says so too

    def _unsupersede(self) -> None:
        self.superseded = None
        self.stale.layout.display = _HIDDEN
        self.refresh.layout.display = _HIDDEN
        if self.outcome is not None and self.outcome.report is not None:
            self._draw()
        self._refresh_display()

    # -- the result ---------------------------------------------------------------------------------------------
    def show(self, outcome: Outcome, *, final: bool = False) -> None:
        """Draw ``outcome``: the card when there is a report, else one error line (in the card if it has one)."""
        if outcome.report is None:
            if self.outcome is None and outcome.offer_user_env is not None:  # read-only: offer the user's own env
                self._show_offer(outcome)
                return
            if self.outcome is None:  # nothing to show but the error: the output becomes that one line
                if self.handle is not None:
                    message = outcome.error or "failed"
                    self.live.update({"text/plain": ""}, raw=True)
                    self.handle.update(
                        {"text/html": render_error(message), "text/plain": f"uvextra: {message}"}, raw=True
                    )
                self.box.close()
                return
            self.note = outcome.error
        else:
            self.outcome, self.note = outcome, outcome.error
        self._draw()
        if final or outcome.report is not None:  # a button's outcome too: the saved record names the last action
            self._refresh_display()

    def _draw(self) -> None:
        outcome = self.outcome
        assert outcome is not None and outcome.report is not None
        report, kernel = outcome.report, outcome.kernel
        self.body.value = render_html(report, kernel, live=True, note=self.note, notebook=self._hint_line())
        hint = outcome.notebook
        self.follow.layout.display = _SHOWN if hint is not None else _HIDDEN
        self.follow.disabled = hint is None
        if hint is not None:
            self.follow.description = f"Switch to {' '.join(map(str, hint.extras))}"
        drift = report.can_repair  # no button that can only fail (read-only venv, index unreachable, …)
        self.reinstall.layout.display = _SHOWN if drift else _HIDDEN
        self.reinstall.disabled = not drift
        names = sorted({d.package for d in report.errors} | {u.package for u in report.unverified})
        self.reinstall.tooltip = f"reinstall {', '.join(names)} from the lock" if names else "nothing to reinstall"
        restartable = bool(kernel and kernel.stale and kernel.restart.available and not kernel.restarting)
        self.restart.layout.display = _SHOWN if restartable else _HIDDEN
        self.restart.disabled = not restartable
        if kernel is not None:
            self.restart.tooltip = kernel.restart.why
        group = _conflict_group(report)
        self._quiet = True
        try:
            self.toggle.options = _toggle_options(group)
            current = next((g for g in group if any(_same(g, e) for e in report.extras)), None)
            self.toggle.value = current
        finally:
            self._quiet = False
        self.toggle.layout.display = _SHOWN if len(group) > 1 else _HIDDEN
        self.toggle.disabled = len(group) < 2
        if self.superseded:
            for control in (self.toggle, self.reinstall, self.restart, self.follow):
                control.disabled = True
                control.layout.display = _HIDDEN

    # -- buttons ------------------------------------------------------------------------------------------------
    @property
    def _no_default_groups(self) -> bool:
        """The --no-default-groups of what the card shows: a button's action keeps it (uvextra.kernel.session.Outcome)."""
        return bool(self.outcome is not None and self.outcome.no_default_groups)

    def _beside_a_cell(self) -> bool:
        """Refuse, in one line on the card, a click that arrives while a cell runs: never change the environment
        beside the user's code (ipykernel handles comm messages beside an async cell that awaits)."""
        if not self.session.cells_running:
            return False
        self.note = "a cell is running: this card changes nothing beside it; click again when the cell is done"
        if self.outcome is not None and self.outcome.report is not None:
            self._draw()
        return True

    def _on_reinstall(self, _button: object = None) -> None:
        report = self.report
        if self.busy or self.superseded or report is None or not report.can_repair or self._beside_a_cell():
            return
        self.run(self.session.repair(report, probe=self.probe, no_default_groups=self._no_default_groups))

    def _on_toggle(self, change: dict[str, Any]) -> None:
        report = self.report
        new = change.get("new")  # a Backend of the conflict set: its kind says --extra or --group
        if self._quiet or self.superseded or report is None or new is None or any(_same(new, e) for e in report.extras):
            return
        if self.busy or self._beside_a_cell():
            return
        group = _conflict_group(report)
        extras = [e for e in report.extras if not _within(e, group)] + [new]
        self.run(
            self.session.switch(
                extras,
                project=report.project,
                probe=self.probe,
                keep_extraneous=self.keep_extraneous,
                no_default_groups=self._no_default_groups,
            )
        )

    def _on_follow(self, _button: object = None) -> None:
        report, hint = self.report, self.outcome.notebook if self.outcome is not None else None
        if self.busy or self.superseded or report is None or hint is None or self._beside_a_cell():
            return
        self.run(
            self.session.switch(
                list(hint.extras),
                project=report.project,
                probe=self.probe,
                keep_extraneous=self.keep_extraneous,
                no_default_groups=self._no_default_groups,
            )
        )

    def _on_refresh(self, _button: object = None) -> None:
        report = self.report
        if self.busy or report is None or self._beside_a_cell():
            return
        self.run(
            self.session.check(
                None,
                project=report.project,
                probe=self.probe,
                command="status",
                no_default_groups=self._no_default_groups,
            ),
            final=True,
        )

    def _show_offer(self, outcome: Outcome) -> None:
        message = outcome.error or "this environment is read-only"
        self._offer = outcome.offer_user_env
        self.body.value = render_error(message)
        for control in (self.toggle, self.reinstall, self.restart, self.follow):
            control.layout.display = _HIDDEN
        self.own.layout.display, self.own.disabled = _SHOWN, False
        if self.handle is not None:  # the static output: the live card beside it shows the button
            self.handle.update(
                {"text/html": render_static(render_error(message)), "text/plain": f"uvextra: {message}"}, raw=True
            )

    def _on_own(self, _button: object = None) -> None:
        offer = self._offer
        if self.busy or offer is None or self._beside_a_cell():
            return
        self._offer = None
        self.own.layout.display, self.own.disabled = _HIDDEN, True
        outcome = self.run(offer(), final=True)
        moved = self.session.hand_over() if outcome.report is not None else None
        if moved:
            self.note = moved
            self._draw()
            self._refresh_display()

    def _on_restart(self, _button: object = None) -> None:
        outcome = self.outcome
        if self.busy or self.superseded or outcome is None or outcome.kernel is None or self._beside_a_cell():
            return
        plan = self.session.restart_plan()
        # Say it first: once the restart starts, this process may end before another message leaves.
        outcome.kernel.restarting = EXITING if plan.how == "exit" else RESTARTING
        self._draw()
        # The other cards show a kernel that is about to go: their controls would talk to nobody.
        self._restarted_others = self._supersede_others(
            f"out of date: the kernel restarted at {time.strftime('%H:%M:%S')}; run this cell again for a live card",
            refresh=False,
        )
        try:
            self.session.restart(on_error=self._restart_failed, after=self._after_restart())
        except Exception as exc:  # noqa: BLE001 - a button never leaves a traceback in the log
            self._live_again()
            outcome.kernel.restarting = None
            self.note = str(exc) if isinstance(exc, UvextraError) else f"restart failed: {type(exc).__name__}: {exc}"
            self._draw()

    def _live_again(self) -> None:
        for card in self._restarted_others:
            card.superseded = None
            card.stale.layout.display = _HIDDEN
            if card.outcome is not None and card.outcome.report is not None:
                card._draw()
        self._restarted_others = []

    def _after_restart(self) -> dict[str, object]:
        """What the new kernel needs to say on this card what happened (uvextra.after_restart): the widgets to
        update, the output to rewrite (so that the saved notebook holds the present), the check to run."""
        report = self.report
        return {
            "body": self.body.model_id,
            "probe": self.probe,
            "display": getattr(self.handle, "display_id", None),
            "hide": [
                c.layout.model_id
                for c in (self.toggle, self.reinstall, self.restart, self.follow, self.own, self.refresh)
            ],
            "project": report.project if report else None,
            "extras": [str(e) for e in report.extras] if report else [],
        }

    def _restart_failed(self, message: str) -> None:
        # Called from the restart request's thread: widget state only.
        self._live_again()
        outcome = self.outcome
        if outcome is not None and outcome.kernel is not None:
            outcome.kernel.restarting = None
        self.note = message
        if outcome is not None:
            self._draw()
