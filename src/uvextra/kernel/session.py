"""The controller behind ``%uvextra`` and the card: per-shell state, the actions, what they gave.

A :class:`Session` turns a request (switch, check, repair) into an :class:`Action`, runs it with live progress and
turns whatever happens — a report, an error, an interrupt — into an :class:`Outcome`; it also knows how to restart
the kernel it lives in. The magic (:mod:`uvextra.magic`) and the card (:mod:`uvextra.widgets`) are its two
surfaces; it imports neither of them, nor IPython or ipywidgets: at import time this module needs only the
standard library, and the core, the kernel helpers and ipykernel are imported when they are first used. The
``shell`` it is given is duck-typed (an IPython ``InteractiveShell`` in practice, or any object; without a
``kernel`` attribute there is no kernel to restart from inside).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.environment import Environment
    from ..core.progress import Progress
    from ..core.report import Report
    from ..core.userenv import Made
    from ..core.vocabulary import Backend, KernelState, RestartPlan
    from .record import KernelHint

LineCallback = Callable[[str], None]

__all__ = ["AUTO", "Action", "Outcome", "Session"]

AUTO = "auto"
INTERRUPTED = "interrupted before uvextra finished"
UNEXPECTED_HINT = "run `uvextra check` in a terminal for details"
READ_ONLY = " is read-only; uvextra changes nothing there"
USER_ENV_HINT = " — make your own environment for this project, layered on this one, in one step: `{command}`"


@dataclass
class Action:
    """One core operation to run with live progress: a title for the user and the call itself."""

    title: str
    call: Callable[[Progress], Report]  # given the one sink for its progress
    recheck: Callable[[], Report] | None = None  # the environment as it is, after an interrupt
    # the same switch in the user's own environment: what a read-only refusal offers (``--user-env``), and its magic
    user_env: Callable[[], Action] | None = None
    user_env_command: str = "%uvextra EXTRA --project DIR --user-env"


@dataclass
class Outcome:
    """What an operation gave: a report (with the kernel's state), an error line, or both."""

    report: Report | None = None
    kernel: KernelState | None = None
    error: str | None = None
    notebook: KernelHint | None = None  # status only: this kernel's notebook last ran on other extras
    # the --no-default-groups the report was made with (its selection's): what a button's next action keeps
    no_default_groups: bool = False
    # the environment was read-only: the same switch in the user's own environment, offered (the card's button)
    offer_user_env: Callable[[], Action] | None = None


def _one_line(exc: BaseException) -> str:
    from ..core.errors import UvextraError
    from ..core.redact import redact

    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, UvextraError):
        return redact(first)
    return redact(f"unexpected {type(exc).__name__}{': ' + first if first else ''}; {UNEXPECTED_HINT}")


class Session:
    """Per-shell state: the imports to watch, how to restart, the last outcome. Surfaces share it."""

    def __init__(self, shell: Any) -> None:  # an IPython InteractiveShell, in practice; duck-typed
        from .stale_imports import ImportWatch

        self.shell = shell
        self.watch = ImportWatch()
        self.last: Outcome | None = None
        # Cells running now (IPython's pre/post_run_cell, counted by the magic): a button's click that arrives
        # while one runs (an async cell awaiting; ipykernel then handles comm messages beside it) changes nothing.
        self.cells_running = 0
        self._restart_plan: RestartPlan | None = None
        self.made: Made | None = None  # the last --user-env's environment and kernelspec
        self._throwaway_said = False  # "a switch here lasts until the server restarts" is said once per kernel

    # -- actions ------------------------------------------------------------------------------------------------
    def switch(
        self,
        extras: Sequence[Backend | str],
        *,
        project: str | None = None,
        probe: bool = True,
        keep_extraneous: bool = False,
        exact: bool = False,
        no_default_groups: bool = False,
    ) -> Action:
        from ..core import verbs as core

        project = project or _user_env_project()
        if _in_user_env():  # the user's own env: switched as it was made (layers linked again, kernelspec renamed)
            return self.user_env(
                extras,
                project=project,
                probe=probe,
                keep_extraneous=keep_extraneous,
                no_default_groups=no_default_groups,
            )
        title = (
            "choosing the extra for this machine, then switching"
            if list(extras) == [AUTO]
            else f"switching to {' '.join(map(str, extras))}"
        )
        return Action(
            title,
            lambda progress: core.switch(
                extras,
                project,
                None,
                probe=probe,
                keep_extraneous=keep_extraneous,
                exact=exact,
                no_default_groups=no_default_groups,
                progress=progress,
                remarks=self._remarks(switch=True),
            ),
            recheck=lambda: core.check(
                project, None, extras, no_default_groups=no_default_groups, interrupted=_RECHECKED
            ),
            user_env=lambda: self.user_env(
                extras,
                project=project,
                probe=probe,
                keep_extraneous=keep_extraneous,
                no_default_groups=no_default_groups,
            ),
            user_env_command=" ".join(
                ["%uvextra", *map(str, extras), *(["--project", project] if project else []), "--user-env"]
            ),
        )

    def check(
        self,
        extras: Sequence[Backend | str] | None,
        *,
        project: str | None = None,
        probe: bool = True,
        command: str = "check",
        no_default_groups: bool | None = None,
    ) -> Action:
        from ..core import verbs as core

        project = project or _user_env_project()
        what = f"checking against the lock for {' '.join(map(str, extras))}" if extras else "checking the environment"
        return Action(
            what,
            lambda progress: core.check(
                project,
                None,
                extras or None,
                probe=probe,
                command=command,
                no_default_groups=no_default_groups,
                progress=progress,
                remarks=self._remarks(),
            ),
        )

    def repair(self, report: Report, *, probe: bool = True, no_default_groups: bool | None = None) -> Action:
        """Reinstall what ``report`` found drifted, for its extras (their kinds kept) and ``no_default_groups``."""
        from ..core import verbs as core

        names = sorted({d.package for d in report.errors} | {u.package for u in report.unverified})
        extras = list(report.extras)
        return Action(
            f"reinstalling {', '.join(names) or 'the drifted packages'} from the lock",
            lambda progress: core.repair(
                report.project,
                None,
                extras,
                probe=probe,
                no_default_groups=no_default_groups,
                progress=progress,
                remarks=self._remarks(),
            ),
            recheck=lambda: core.check(
                report.project, None, extras, no_default_groups=no_default_groups, interrupted=_RECHECKED
            ),
        )

    def user_env(
        self,
        extras: Sequence[Backend | str],
        *,
        project: str | None = None,
        probe: bool = True,
        keep_extraneous: bool = False,
        no_default_groups: bool = False,
    ) -> Action:
        """The user's own environment for the project (made if new), switched to ``extras`` and registered."""

        def call(progress: Progress) -> Report:
            from ..core.userenv import ensure_user_env

            self.made = None
            made = ensure_user_env(
                extras,
                project,
                probe=probe,
                keep_extraneous=keep_extraneous,
                no_default_groups=no_default_groups,
                progress=progress,
                remarks=self._remarks(switch=True),
            )
            self.made = made
            return made.report

        return Action(
            f"making your own environment for {' '.join(map(str, extras)) or 'the project'}",
            call,
        )

    def hand_over(self) -> str | None:
        """After :meth:`user_env`: move the notebook to the new kernel (under a server), or say which one to pick."""
        made = self.made
        if made is None or made.kernelspec_dir is None:
            return None
        from .handover import hand_over

        return hand_over(_connection_file(self.shell), made.kernelspec_dir.name, made.display_name)

    # -- running ------------------------------------------------------------------------------------------------
    def execute(self, action: Action, progress: Progress | None = None) -> Outcome:
        """Run ``action``, its progress to ``progress``; never raises (an interrupt included): errors come back as
        one line."""
        import logging

        from ..core.progress import SILENT

        self.watch.update()  # fingerprint what is imported before uv replaces any file
        try:
            report = action.call(progress or SILENT)
            _follow_user_env(report)
            outcome = Outcome(
                report,
                self.kernel_state(),
                notebook=_notebook_hint(report),
                no_default_groups=report.no_default_groups,
            )
        except KeyboardInterrupt:
            outcome = self._interrupted(action)
        except Exception as exc:  # the promise: one line, never a traceback
            from ..core.errors import UvextraError

            if not isinstance(exc, UvextraError):
                logging.getLogger("uvextra").debug("%%uvextra failed: %s", exc, exc_info=True)
            line = _one_line(exc)
            offer = None
            if READ_ONLY in line:  # the one-step way out instead of a recipe of three commands
                line = line.split(READ_ONLY, 1)[0] + READ_ONLY + USER_ENV_HINT.format(command=action.user_env_command)
                offer = action.user_env
            outcome = Outcome(error=line, offer_user_env=offer)
        self.last = outcome
        return outcome

    def _remarks(self, *, switch: bool = False) -> Callable[[Environment], list[str]]:
        """What this kernel knows about the environment an action changes, for the report to say: the hub's server
        runs from it; for a switch, once per kernel, that a switch there lasts until the server restarts."""

        def remarks(env: Environment) -> list[str]:
            lines = [line for line in (_hub_server_line(env),) if line]
            if switch and not self._throwaway_said:
                try:
                    from ..core.userenv import throwaway_line

                    line = throwaway_line(env)
                except Exception:  # noqa: BLE001 - a hint: an unreadable folder says nothing
                    line = None
                if line:
                    lines.append(line)
                    self._throwaway_said = True
            return lines

        return remarks

    def _interrupted(self, action: Action) -> Outcome:
        if action.recheck is None:
            return Outcome(error=INTERRUPTED)
        try:
            report = action.recheck()  # a check that says the action was interrupted (_RECHECKED)
        except (Exception, KeyboardInterrupt):  # noqa: BLE001 - a second interrupt, or the check failing
            return Outcome(error=f"{INTERRUPTED}; run `%uvextra` to see the environment's state")
        return Outcome(report, self.kernel_state(), error=None, no_default_groups=report.no_default_groups)

    def kernel_state(self) -> KernelState:
        from ..core.vocabulary import KernelState

        try:
            stale = self.watch.stale()
        except Exception:  # noqa: BLE001 - an unreadable dist-info must not cost the user the report
            stale = []
        return KernelState(stale=stale, restart=self.restart_plan())

    def restart_plan(self) -> RestartPlan:
        if self._restart_plan is None:
            from .restart import find_restart

            self._restart_plan = find_restart(_connection_file(self.shell))
        return self._restart_plan

    def restart(self, on_error: LineCallback | None = None, after: dict[str, object] | None = None) -> str:
        """Restart this kernel as the plan says; one line about what happens next (raises UvextraError).

        ``after``: what the new kernel needs to redraw the card that asked (see :mod:`uvextra.after_restart`).
        """
        from .restart import request_restart

        kernel = getattr(self.shell, "kernel", None)
        shutdown = None if kernel is None else lambda: _exit_kernel(self.shell, kernel)
        return request_restart(
            self.restart_plan(), shutdown, on_error=on_error, connection_file=_connection_file(self.shell), after=after
        )


_RECHECKED = f"{INTERRUPTED}; the environment was checked again"


def _hub_server_line(env: Environment) -> str | None:
    """On a hub whose server runs from the venv this kernel changes: one warning line on the card."""
    try:
        from .hub import hub_server_line

        return hub_server_line(str(env.prefix))
    except Exception:  # noqa: BLE001 - unreadable /proc: say nothing
        return None


def _in_user_env() -> bool:
    return _user_env_project() is not None


def _user_env_project() -> str | None:
    """In a kernel of a user env (``--user-env``): the project it was made for, the default for every action."""
    import sys

    try:
        from ..core.userenv import read_user_env

        own = read_user_env(sys.prefix)
    except Exception:  # noqa: BLE001 - an unreadable record: an ordinary venv
        return None
    return None if own is None else own.project


def _follow_user_env(report: Report) -> None:
    """A switch of a user env from its own kernel: the kernelspec's display name follows the backend."""
    if report.command != "switch" or report.failure or not report.environment:
        return
    try:
        from ..core.userenv import refresh_kernelspec

        refresh_kernelspec(report.environment, [e.name for e in report.extras])
    except Exception:  # noqa: BLE001 - a display name: never worth a failed switch
        return


def _notebook_hint(report: Report) -> KernelHint | None:
    """For a status: the saved notebook's last record, when it names other extras (silent on any problem)."""
    if report.command != "status":
        return None
    try:
        from .record import kernel_hint

        return kernel_hint(report)
    except Exception:  # noqa: BLE001 - a hint: an odd notebook file must not cost the user the report
        return None


def _connection_file(shell: Any) -> str | None:
    if getattr(shell, "kernel", None) is None:
        return None
    try:
        from ipykernel import get_connection_file

        return get_connection_file()
    except Exception:  # noqa: BLE001 - no kernel app: no kernel id, the plan says what is left
        return None


def _exit_kernel(shell: Any, kernel: Any) -> None:
    import threading

    loop = getattr(kernel, "io_loop", None)
    if loop is not None and threading.current_thread() is not threading.main_thread():
        loop.add_callback(_exit_kernel, shell, kernel)  # from a restart's thread: tornado's thread-safe door
        return
    result = kernel.do_shutdown(True)  # ipykernel: sets shell.exit_now, which stops the kernel's loop
    if hasattr(result, "close"):  # a coroutine on kernels whose do_shutdown is async: do its effect directly
        result.close()
        shell.exit_now = True
