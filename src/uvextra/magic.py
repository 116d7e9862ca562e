"""The ``%uvextra`` magic: switch this kernel's environment between a uv project's extras, and see what happened.

Loading stays cheap: this module imports IPython's magic machinery and nothing else at import time; the core,
the renderers and ipywidgets are imported on the first ``%uvextra``. Inside a kernel with a frontend the result is
a live card (:mod:`uvextra.widgets`); in a terminal IPython it is text. No input ever produces a traceback: every
problem becomes one line that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

if TYPE_CHECKING:
    from .kernel import KernelState, RestartPlan
    from .notebook import KernelHint
    from .report import Report

LineCallback = Callable[[str], None]

__all__ = ["Action", "Outcome", "Session", "UvextraMagics", "last_outcome", "load", "unload"]

AUTO = "auto"
UNEXPECTED_HINT = "run `uvextra check` in a terminal for details"
_current: Session | None = None


@dataclass
class Action:
    """One core operation to run with live progress: a title for the user and the call itself."""

    title: str
    call: Callable[[LineCallback | None, LineCallback | None], Report]
    recheck: Callable[[], Report] | None = None  # the environment as it is, after an interrupt


@dataclass
class Outcome:
    """What an operation gave: a report (with the kernel's state), an error line, or both."""

    report: Report | None = None
    kernel: KernelState | None = None
    error: str | None = None
    notebook: KernelHint | None = None  # status only: this kernel's notebook last ran on other extras


def _one_line(exc: BaseException) -> str:
    from .errors import UvextraError
    from .redact import redact

    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, UvextraError):
        return redact(first)
    return redact(f"unexpected {type(exc).__name__}{': ' + first if first else ''}; {UNEXPECTED_HINT}")


class Session:
    """Per-shell state: the imports to watch, how to restart, the last outcome. Surfaces share it."""

    def __init__(self, shell) -> None:  # noqa: ANN001 - an IPython InteractiveShell
        from .kernel import ImportWatch

        self.shell = shell
        self.watch = ImportWatch()
        self.last: Outcome | None = None
        self._restart_plan: RestartPlan | None = None

    # -- actions ------------------------------------------------------------------------------------------------
    def switch(self, extras: list[str], *, project: str | None = None, probe: bool = True,
               keep_extraneous: bool = False, exact: bool = False) -> Action:
        from . import core

        title = "choosing the extra for this machine, then switching" if extras == [AUTO] else \
            f"switching to {' '.join(extras)}"
        return Action(
            title,
            lambda on_line, on_wait: core.switch(extras, project, None, probe=probe, keep_extraneous=keep_extraneous,
                                                 exact=exact, on_line=on_line, on_wait=on_wait),
            recheck=lambda: core.check(project, None, extras),
        )

    def check(self, extras: list[str] | None, *, project: str | None = None, probe: bool = True,
              command: str = "check") -> Action:
        from . import core

        what = f"checking against the lock for {' '.join(extras)}" if extras else "checking the environment"
        return Action(what, lambda on_line, on_wait: core.check(project, None, extras or None, probe=probe,
                                                                command=command))

    def repair(self, report: Report, *, probe: bool = True) -> Action:
        from . import core

        names = sorted({d.package for d in report.errors} | {u.package for u in report.unverified})
        extras = list(report.extras)
        return Action(
            f"reinstalling {', '.join(names) or 'the drifted packages'} from the lock",
            lambda on_line, on_wait: core.repair(report.project, None, extras, probe=probe, on_line=on_line,
                                                 on_wait=on_wait),
            recheck=lambda: core.check(report.project, None, extras),
        )

    # -- running ------------------------------------------------------------------------------------------------
    def execute(self, action: Action, on_line: LineCallback | None = None,
                on_wait: LineCallback | None = None) -> Outcome:
        """Run ``action``; never raises (an interrupt included): errors come back as one line."""
        import logging

        self.watch.update()  # fingerprint what is imported before uv replaces any file
        try:
            report = action.call(on_line, on_wait)
            _note_hub_server(report)
            outcome = Outcome(report, self.kernel_state(), notebook=_notebook_hint(report))
        except KeyboardInterrupt:
            outcome = self._interrupted(action)
        except Exception as exc:  # the promise: one line, never a traceback
            from .errors import UvextraError

            if not isinstance(exc, UvextraError):
                logging.getLogger("uvextra").debug("%%uvextra failed: %s", exc, exc_info=True)
            outcome = Outcome(error=_one_line(exc))
        self.last = outcome
        return outcome

    def _interrupted(self, action: Action) -> Outcome:
        message = "interrupted before uvextra finished"
        if action.recheck is None:
            return Outcome(error=message)
        try:
            report = action.recheck()
        except (Exception, KeyboardInterrupt):  # noqa: BLE001 - a second interrupt, or the check failing
            return Outcome(error=f"{message}; run `%uvextra` to see the environment's state")
        report.interrupted = True
        report.failure = f"{message}; the environment was checked again"
        return Outcome(report, self.kernel_state(), error=None)

    def kernel_state(self) -> KernelState:
        from .kernel import KernelState

        try:
            stale = self.watch.stale()
        except Exception:  # noqa: BLE001 - an unreadable dist-info must not cost the user the report
            stale = []
        return KernelState(stale=stale, restart=self.restart_plan())

    def restart_plan(self) -> RestartPlan:
        if self._restart_plan is None:
            from .kernel import find_restart

            self._restart_plan = find_restart(_connection_file(self.shell))
        return self._restart_plan

    def restart(self, on_error: LineCallback | None = None, after: dict[str, object] | None = None) -> str:
        """Restart this kernel as the plan says; one line about what happens next (raises UvextraError).

        ``after``: what the new kernel needs to redraw the card that asked (see :mod:`uvextra._after_restart`).
        """
        from .kernel import request_restart

        kernel = getattr(self.shell, "kernel", None)
        shutdown = None if kernel is None else lambda: _exit_kernel(self.shell, kernel)
        return request_restart(self.restart_plan(), shutdown, on_error=on_error,
                               connection_file=_connection_file(self.shell), after=after)


def _note_hub_server(report: Report) -> None:
    """On a hub whose server runs from the venv this kernel changes: one warning line on the card."""
    try:
        from .server import hub_server_line

        line = hub_server_line(report.environment)
    except Exception:  # noqa: BLE001 - unreadable /proc: say nothing
        return
    if line and line not in report.warnings:
        report.warnings.append(line)


def _notebook_hint(report: Report) -> KernelHint | None:
    """For a status: the saved notebook's last record, when it names other extras (silent on any problem)."""
    if report.command != "status":
        return None
    try:
        from .notebook import kernel_hint

        return kernel_hint(report)
    except Exception:  # noqa: BLE001 - a hint: an odd notebook file must not cost the user the report
        return None


def _connection_file(shell) -> str | None:  # noqa: ANN001
    if getattr(shell, "kernel", None) is None:
        return None
    try:
        from ipykernel import get_connection_file

        return get_connection_file()
    except Exception:  # noqa: BLE001 - no kernel app: no kernel id, the plan says what is left
        return None


def _exit_kernel(shell, kernel) -> None:  # noqa: ANN001
    import threading

    loop = getattr(kernel, "io_loop", None)
    if loop is not None and threading.current_thread() is not threading.main_thread():
        loop.add_callback(_exit_kernel, shell, kernel)  # from a restart's thread: tornado's thread-safe door
        return
    result = kernel.do_shutdown(True)  # ipykernel: sets shell.exit_now, which stops the kernel's loop
    if hasattr(result, "close"):  # a coroutine on kernels whose do_shutdown is async: do its effect directly
        result.close()
        shell.exit_now = True


def _frontend(shell) -> bool:  # noqa: ANN001
    """True inside a kernel that talks to a frontend (ipykernel's ZMQ shell); False in a terminal IPython."""
    return getattr(shell, "kernel", None) is not None or type(shell).__name__ == "ZMQInteractiveShell"


@magics_class
class UvextraMagics(Magics):
    """Registers ``%uvextra``."""

    def __init__(self, shell) -> None:  # noqa: ANN001
        super().__init__(shell)
        self.session = Session(shell)

    @magic_arguments()
    @argument("extras", nargs="*", metavar="EXTRA",
              help="the extra(s) to switch this kernel's environment to, or `auto` (chosen from this machine's "
                   "GPU driver); none: show the status panel")
    @argument("--project", metavar="DIR", help="the uv project (default: the nearest pyproject.toml upward)")
    @argument("--extra", action="append", default=[], metavar="EXTRA",
              help="an extra, said to be one (when the project has a dependency group of the same name)")
    @argument("--group", action="append", default=[], metavar="GROUP", help="a dependency group of the project")
    @argument("--check", action="store_true",
              help="only compare the environment with the lock (for EXTRA, default: the current extras)")
    @argument("--no-probe", action="store_true", help="skip the CUDA probe")
    @argument("--keep-extraneous", action="store_true",
              help="remove nothing that the lock does not list (the kernel's own packages are always kept)")
    @argument("--exact", action="store_true",
              help="uv's exact sync: also remove what is not this project's (pip, hand installs); the kernel's own "
                   "packages are still kept")
    @line_magic
    def uvextra(self, line: str = "") -> None:
        """Switch this kernel's environment between the uv project's extras (PyTorch backends), safely.

        ``%uvextra cu128`` syncs the kernel's own venv to the extra ``cu128`` of the project (``uv sync --extra
        cu128``, keeping ipykernel and what it needs), checks every installed package against the lock — catching
        the stale builds uv itself misses — and asks a fresh process whether CUDA works. ``%uvextra auto`` picks
        the extra that fits this machine's driver; ``%uvextra`` alone shows the status panel.

        The card shows what changed, any drift (with a Reinstall button), the CUDA verdict, and whether modules
        already imported here are stale (with a Restart kernel button). Interrupt the kernel to stop uv.
        """
        args = parse_argstring(self.uvextra, line)
        session = self.session
        project = args.project
        if project:
            import os

            project = os.path.expanduser(project)
        probe = not args.no_probe
        from .project import Backend

        args.extras = [*args.extras, *(Backend.asked(e, "extra") for e in args.extra),
                       *(Backend.asked(g, "group") for g in args.group)]
        if args.check:
            action = session.check(args.extras or None, project=project, probe=probe)
        elif not args.extras:
            action = session.check(None, project=project, probe=probe, command="status")
        else:
            action = session.switch(list(args.extras), project=project, probe=probe,
                                    keep_extraneous=args.keep_extraneous, exact=args.exact)
        _present(session, action, probe=probe, keep_extraneous=args.keep_extraneous)


def _present(session: Session, action: Action, *, probe: bool, keep_extraneous: bool) -> None:
    if not _frontend(session.shell):
        _present_text(session, action)
        return
    try:
        from .widgets import Card
    except ImportError:  # a broken ipywidgets (it is a dependency): text still says everything
        _present_text(session, action)
        return
    card = Card(session, probe=probe, keep_extraneous=keep_extraneous)
    card.display(action.title)
    card.run(action, final=True)


def _present_text(session: Session, action: Action) -> None:
    import sys

    def stream(line: str) -> None:
        print(f"  │ {line}", flush=True)

    outcome = session.execute(action, stream, lambda line: print(f"uvextra: {line}", flush=True))
    if outcome.error:
        print(f"uvextra: {outcome.error}", file=sys.stderr, flush=True)
    if outcome.report is not None:
        from .html import render_plain

        print(render_plain(outcome.report, outcome.kernel))
        if outcome.notebook is not None:
            print(f"uvextra: {outcome.notebook.line}")


def last_outcome() -> Outcome | None:
    """The outcome of the last ``%uvextra`` (or card button) in this process: ``.report``, ``.kernel``, ``.error``."""
    return None if _current is None else _current.last


def _watch_imports(result: object = None) -> None:
    if _current is not None:
        _current.watch.update()


def load(ipython) -> None:  # noqa: ANN001 - IPython's InteractiveShell
    """Register ``%uvextra`` on ``ipython`` and start watching imports (for stale-module detection)."""
    global _current
    magics = UvextraMagics(ipython)
    ipython.register_magics(magics)
    _current = magics.session
    if _watch_imports not in ipython.events.callbacks.get("post_run_cell", []):
        ipython.events.register("post_run_cell", _watch_imports)


def unload(ipython) -> None:  # noqa: ANN001
    """Remove ``%uvextra`` and the import watch."""
    import contextlib

    global _current
    ipython.magics_manager.magics["line"].pop("uvextra", None)
    ipython.magics_manager.registry.pop(UvextraMagics.__name__, None)
    with contextlib.suppress(ValueError):  # not registered (loaded by an older uvextra)
        ipython.events.unregister("post_run_cell", _watch_imports)
    _current = None
