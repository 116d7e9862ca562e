"""The ``%uvextra`` magic: switch this kernel's environment between a uv project's extras, and see what happened.

Only the surface lives here: the arguments, and where the outcome goes. The controller — per-shell state, the
actions, one-line errors, restarts — is :class:`uvextra.kernel.session.Session`, shared with the card. Loading stays
cheap: this module imports IPython's magic machinery and the controller (standard library only) at import time;
the core, the renderers and ipywidgets are imported on the first ``%uvextra``. Inside a kernel with a frontend the
result is a live card (:mod:`uvextra.widgets`); in a terminal IPython it is text. No input ever produces a
traceback: every problem becomes one line that says what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .kernel.session import Session

if TYPE_CHECKING:
    from .kernel.session import Action, Outcome

__all__ = ["UvextraMagics", "last_outcome", "load", "unload"]

_current: Session | None = None


def _frontend(shell: Any) -> bool:  # an IPython InteractiveShell
    """True inside a kernel that talks to a frontend (ipykernel's ZMQ shell); False in a terminal IPython."""
    return getattr(shell, "kernel", None) is not None or type(shell).__name__ == "ZMQInteractiveShell"


@magics_class
class UvextraMagics(Magics):
    """Registers ``%uvextra``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session = Session(shell)

    @magic_arguments()
    @argument(
        "extras",
        nargs="*",
        metavar="EXTRA",
        help="the extra(s) to switch this kernel's environment to, or `auto` (chosen from this machine's "
        "GPU driver); none: show the status panel",
    )
    @argument("--project", metavar="DIR", help="the uv project (default: the nearest pyproject.toml upward)")
    @argument(
        "--extra",
        action="append",
        default=[],
        metavar="EXTRA",
        help="an extra, said to be one (when the project has a dependency group of the same name)",
    )
    @argument("--group", action="append", default=[], metavar="GROUP", help="a dependency group of the project")
    @argument(
        "--check",
        action="store_true",
        help="only compare the environment with the lock (for EXTRA, default: the current extras)",
    )
    @argument("--no-probe", action="store_true", help="skip the CUDA probe")
    @argument(
        "--keep-extraneous",
        action="store_true",
        help="remove nothing that the lock does not list (the kernel's own packages are always kept)",
    )
    @argument(
        "--exact",
        action="store_true",
        help="uv's exact sync: also remove what is not this project's (pip, hand installs); the kernel's own "
        "packages are still kept",
    )
    @argument(
        "--no-default-groups",
        action="store_true",
        help="uv's --no-default-groups: leave out [tool.uv] default-groups (dev); later checks do the same",
    )
    @argument(
        "--user-env",
        action="store_true",
        help="make (or switch) your own environment for the project, layered on this kernel's, register it "
        "as a kernel and move this notebook to it: for an environment you cannot write (a hub's image)",
    )
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
        _refuse_unfilled(args)
        session = self.session
        project = args.project
        if project:
            import os

            project = os.path.expanduser(project)
        probe = not args.no_probe
        from .core.project import Backend

        args.extras = [
            *args.extras,
            *(Backend.asked(e, "extra") for e in args.extra),
            *(Backend.asked(g, "group") for g in args.group),
        ]
        groups = args.no_default_groups or None  # not said: a check does as the last switch did
        if args.user_env:
            action = session.user_env(
                list(args.extras),
                project=project,
                probe=probe,
                keep_extraneous=args.keep_extraneous,
                no_default_groups=args.no_default_groups,
            )
            _present(session, action, probe=probe, keep_extraneous=args.keep_extraneous)
            moved = session.hand_over()
            if moved:
                print(f"uvextra: {moved}", flush=True)
            return
        if args.check:
            action = session.check(args.extras or None, project=project, probe=probe, no_default_groups=groups)
        elif not args.extras:
            action = session.check(None, project=project, probe=probe, command="status")
        else:
            action = session.switch(
                list(args.extras),
                project=project,
                probe=probe,
                keep_extraneous=args.keep_extraneous,
                exact=args.exact,
                no_default_groups=args.no_default_groups,
            )
        _present(session, action, probe=probe, keep_extraneous=args.keep_extraneous)


def _refuse_unfilled(args: Any) -> None:
    """A ``{name}`` that IPython left as it was: the variable is not set in this kernel (a restart cleared it)."""
    import re

    from IPython.core.error import UsageError

    for value in [args.project or "", *args.extras, *args.extra, *args.group]:
        unfilled = re.search(r"\{([A-Za-z_]\w*)\}", value)
        if unfilled:
            raise UsageError(
                f"{unfilled.group(0)} was not filled in: this kernel has no variable "
                f"`{unfilled.group(1)}` (after a restart, run the cell that sets it first)"
            )


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

    from .core.progress import Progress

    outcome = session.execute(
        action, Progress(uv_line=stream, waiting=lambda line: print(f"uvextra: {line}", flush=True))
    )
    if outcome.error:
        print(f"uvextra: {outcome.error}", file=sys.stderr, flush=True)
    if outcome.report is not None:
        from .render.text import render_plain

        print(render_plain(outcome.report, outcome.kernel, card=False))
        if outcome.notebook is not None:
            print(f"uvextra: {outcome.notebook.line}")


def last_outcome() -> Outcome | None:
    """The outcome of the last ``%uvextra`` (or card button) in this process: ``.report``, ``.kernel``, ``.error``."""
    return None if _current is None else _current.last


def _watch_imports(result: object = None) -> None:
    if _current is not None:
        _current.watch.update()
        _current.cells_running = max(0, _current.cells_running - 1)


def _cell_starts(info: object = None) -> None:
    if _current is not None:
        _current.cells_running += 1


def load(ipython: Any) -> None:  # IPython's InteractiveShell
    """Register ``%uvextra`` on ``ipython`` and start watching imports (for stale-module detection)."""
    global _current
    magics = UvextraMagics(ipython)
    ipython.register_magics(magics)
    _current = magics.session
    if _watch_imports not in ipython.events.callbacks.get("post_run_cell", []):
        ipython.events.register("post_run_cell", _watch_imports)
    if _cell_starts not in ipython.events.callbacks.get("pre_run_cell", []):
        ipython.events.register("pre_run_cell", _cell_starts)


def unload(ipython: Any) -> None:
    """Remove ``%uvextra`` and the import watch."""
    import contextlib

    global _current
    ipython.magics_manager.magics["line"].pop("uvextra", None)
    ipython.magics_manager.registry.pop(UvextraMagics.__name__, None)
    with contextlib.suppress(ValueError):  # not registered (loaded by an older uvextra)
        ipython.events.unregister("post_run_cell", _watch_imports)
    with contextlib.suppress(ValueError):
        ipython.events.unregister("pre_run_cell", _cell_starts)
    _current = None
