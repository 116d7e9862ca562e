"""The `uvextra` command line: status, switch, check, repair, probe (and demo) over the core's report.

Exit codes: 0 the environment matches the lock; 1 drift remains or the operation failed (``probe``: no working
torch); 2 usage or configuration error, always one line ``uvextra: error: …`` on stderr; 130 interrupted.

The target, without ``--python``, is chosen like uv chooses it: ``$VIRTUAL_ENV``, else the project's environment
(``UV_PROJECT_ENVIRONMENT``, else ``<project>/.venv``) — never uvextra's own (tool) venv unless it is that one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .core.errors import UvextraError
from .core.redact import redact

if TYPE_CHECKING:  # the CLI imports the core only when a command runs
    from collections.abc import Callable
    from pathlib import Path

    from .core.environment import Environment
    from .core.report import Report
    from .kernel.record import NotebookRecord

    Done = Callable[[Environment, Report, int], None]

_PYTHON_HELP = (
    "interpreter (or folder) of the target venv (default: $VIRTUAL_ENV, else the project's environment: "
    "UV_PROJECT_ENVIRONMENT, else <project>/.venv)"
)
_PROBE_PYTHON_HELP = (
    "interpreter (or folder) of the target venv (default: $VIRTUAL_ENV, else the .venv of the nearest "
    "project upward, else this Python's venv)"
)


def version() -> str:
    """uvextra's version: the installed distribution's, else the source tree's ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("uvextra")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


class _VersionAction(argparse._VersionAction):
    """``--version``, asking importlib.metadata only when it is given (importing it is ~60 ms of every command)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.version = f"uvextra {version()}"
        super().__call__(parser, namespace, values, option_string)


class _UsageError(UvextraError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``uvextra: error: …``, exit 2) like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="uvextra",
        description="Switch a venv (a Jupyter kernel's) between a uv project's backend extras, safely and visibly.",
    )
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, *, project: bool = True) -> None:
        if project:
            sp.add_argument("--project", metavar="DIR", help="the uv project (default: nearest pyproject.toml upward)")
        sp.add_argument("--python", metavar="PY", help=_PYTHON_HELP if project else _PROBE_PYTHON_HELP)
        sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sp.add_argument("-v", "--verbose", action="store_true", help="list every changed and every missing package")

    sp = sub.add_parser("status", help="current extras, drift and CUDA verdict")
    common(sp)
    _notebook_flag(sp, "compare its last record with the venv (exit 1 when they differ)")
    sp = sub.add_parser("switch", help="sync the venv to EXTRA(s) (or `auto`), then check and probe")
    sp.add_argument(
        "extras", nargs="*", metavar="EXTRA", help="an extra or dependency group of the project (or `auto`)"
    )
    _kind_flags(sp, "to switch to")
    common(sp)
    _notebook_flag(sp, "switch to the extras the notebook last ran on")
    sp.add_argument("--no-probe", action="store_true", help="skip the CUDA probe")
    sp.add_argument("--keep-extraneous", action="store_true", help="remove nothing that the lock does not list")
    sp.add_argument(
        "--exact",
        action="store_true",
        help="uv's exact sync: also remove what is not this project's (pip, hand installs); "
        "the kernel's own packages are still kept",
    )
    sp.add_argument("--repair", action="store_true", help="reinstall whatever drift uv leaves behind")
    sp.add_argument(
        "--no-space-check",
        action="store_true",
        help="start uv even when the lock's wheels will not fit on the disk (refused by default)",
    )
    _no_default_groups_flag(sp, "; check and repair then do the same")
    lockmode = sp.add_mutually_exclusive_group()
    lockmode.add_argument("--frozen", action="store_true", help="use uv.lock as it is; never create or update it")
    lockmode.add_argument("--locked", action="store_true", help="refuse when uv.lock is missing or out of date")
    for name, helptext in (
        ("check", "compare the venv with the lock (exit 1 on drift)"),
        ("repair", "reinstall exactly the drifted packages"),
    ):
        sp = sub.add_parser(name, help=helptext)
        _kind_flags(sp, "to check against (default: the last switch's, else inferred)")
        common(sp)
        _no_default_groups_flag(sp, " (default: as the last switch did)")
        if name == "check":
            _notebook_flag(sp, "compare its last record with the venv (exit 1 when they differ)")
            sp.add_argument(
                "--verify",
                action="store_true",
                help="also compare every installed file's sha256 with its RECORD (reads every byte: "
                "gigabytes for torch; says how long it took)",
            )
        if name == "repair":
            sp.add_argument("--probe", action="store_true", help="also run the CUDA probe")
    sp = sub.add_parser("probe", help="is CUDA available to torch in the venv, and if not, why")
    common(sp, project=False)
    sp = sub.add_parser("demo", help="the whole story offline: a local index, a switch, drift caught, repair, probe")
    sp.add_argument("--dir", metavar="DIR", help="where to build the demo (default: a temporary folder)")
    sp.add_argument("--keep", action="store_true", help="keep the demo folder")
    sp.add_argument("--python", metavar="PY", help="the Python of the demo's venv (default: this one)")
    sp = sub.add_parser("envs", help="your own environments (`%%uvextra X --user-env`): list, or remove one")
    sp.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    sp.add_argument("name", nargs="?", metavar="NAME", help="remove: the env's name, kernelspec or project folder")
    sp.add_argument("--json", action="store_true", help="print JSON on stdout")
    return p


def _kind_flags(sp: argparse.ArgumentParser, what: str) -> None:
    """``--extra NAME`` / ``--group NAME``: say which one a name is (needed when the project has both)."""
    from .core.project import Backend

    sp.add_argument(
        "--extra",
        action="append",
        dest="named",
        metavar="EXTRA",
        default=[],
        type=lambda raw: Backend.asked(raw, "extra"),
        help=f"an extra {what}",
    )
    sp.add_argument(
        "--group",
        action="append",
        dest="named",
        metavar="GROUP",
        type=lambda raw: Backend.asked(raw, "group"),
        help=f"a dependency group {what}",
    )


def _no_default_groups_flag(sp: argparse.ArgumentParser, when: str) -> None:
    sp.add_argument(
        "--no-default-groups",
        action="store_true",
        help=f"uv's --no-default-groups: leave out [tool.uv] default-groups (dev){when}",
    )


def _notebook_flag(sp: argparse.ArgumentParser, what: str) -> None:
    sp.add_argument("--notebook", metavar="NB.ipynb", help=f"a notebook that ran `%%uvextra`: {what}")


def _stream(line: str) -> None:
    print(f"  │ {line}", file=sys.stderr, flush=True)


def _note(line: str) -> None:
    print(f"uvextra: {line}", file=sys.stderr, flush=True)


def _target(args: argparse.Namespace) -> tuple[Path | None, Environment]:
    """The project and the venv the command acts on, chosen like uv chooses them (see the module docstring)."""
    from .core.environment import cli_target
    from .core.project import explicit_project_root, find_project

    if args.command == "probe":
        root = None
        if not args.python:
            try:
                root = find_project()
            except UvextraError:  # no project upward: $VIRTUAL_ENV, else the running interpreter's venv
                root = None
        return None, cli_target(args.python, root, project_required=False)
    root = explicit_project_root(args.project) if args.project else find_project()
    from .core.project import find_workspace_root

    # a workspace member's environment is the workspace's (<root>/.venv), as uv's own
    try:
        return root, cli_target(args.python, find_workspace_root(root) or root)
    except UvextraError:
        from .core.project import name_unreadable

        name_unreadable(root)  # a malformed pyproject.toml is the cause to name first: `uv sync` would fail on it too
        raise


def _error(message: str, code: int, *, as_json: bool) -> int:
    message = redact(message)
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    print(f"uvextra: error: {message}", file=sys.stderr)
    return code


def _print_json(text: str) -> None:
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):  # e.g. PYTHONIOENCODING=ascii: the same JSON, \u-escaped
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=True)
    print(text)


def run(argv: Sequence[str] | None = None, *, on_done: Done | None = None) -> int:
    """Run one command line and return its exit code (0, 1, 2 or 130); errors are one line on stderr. ``on_done``
    is told the target, the report and the exit code of a command that got as far as a report (the quick path of
    :mod:`uvextra.cli_quick` writes down a clean check's inputs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        return _error(str(exc), exc.exit_code, as_json="--json" in argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.dir, keep=args.keep, python=args.python)
    if args.command == "envs":
        return _envs(args)
    from .core import verbs as core

    as_json = args.json
    from .core.progress import StreamProgress, listen

    live = StreamProgress(sys.stderr)
    listen(live)  # phases on stderr: redrawn in place on a TTY, one line each in a pipe and under --json
    stream = None if as_json else live.uv_line
    if hasattr(args, "named"):  # positional names first, then --extra / --group ones
        args.extras = [*(getattr(args, "extras", None) or []), *args.named] or None
        if args.command == "switch" and not args.extras and not getattr(args, "notebook", None):
            return _error(
                "the following arguments are required: EXTRA (see `uvextra switch --help`)", 2, as_json=as_json
            )
    try:
        record = _notebook_record(args)
        root, env = _target(args)
        project = str(root) if root is not None else None
        if args.command == "status":
            report = core.status(project, env)
        elif args.command == "check":
            report = core.check(
                project, env, args.extras, no_default_groups=args.no_default_groups or None, verify=args.verify
            )
        elif args.command == "repair":
            report = core.repair(
                project,
                env,
                args.extras,
                probe=args.probe,
                on_line=stream,
                on_wait=_note,
                no_default_groups=args.no_default_groups or None,
            )
        elif args.command == "switch":
            report = core.switch(
                args.extras,
                project,
                env,
                probe=not args.no_probe,
                keep_extraneous=args.keep_extraneous,
                exact=args.exact,
                repair=args.repair,
                frozen=args.frozen,
                locked=args.locked,
                on_line=stream,
                on_wait=_note,
                no_default_groups=args.no_default_groups,
                space_check=not args.no_space_check,
            )
        else:
            report = core.probe(env)
    except UvextraError as exc:
        live.close()
        return _error(str(exc), exc.exit_code, as_json=as_json)
    live.close()
    if not getattr(report, "environment_source", ""):
        report.environment_source = env.source
    code = _print_report(report, record, args)
    if on_done is not None:
        on_done(env, report, code)
    return code


def _print_report(report: Report, record: NotebookRecord | None, args: argparse.Namespace) -> int:
    """The report on stdout (JSON or text; with ``--notebook``, held against its record); the exit code."""
    if record is not None and args.command in ("status", "check"):
        return _print_with_notebook(report, record, as_json=args.json, verbose=args.verbose)
    if record is not None:
        report.extras_source = f"recorded in {record.path.name} ({record.day})"
    if args.json:
        _print_json(report.to_json())
    else:
        from .render.text import render_text  # the text view only: --json needs none

        print(render_text(report, verbose=args.verbose))
    return report.exit_code


def _envs(args: argparse.Namespace) -> int:
    """``uvextra envs [--json]`` lists the user envs; ``uvextra envs remove NAME`` deletes one with its kernelspec."""
    import time

    from .core import userenv

    try:
        if args.action == "remove":
            if not args.name:
                raise _UsageError("name the environment to remove (see `uvextra envs`)")
            env = userenv.find_user_env(args.name)
            removed = userenv.remove_user_env(env)
            if args.json:
                _print_json(json.dumps({"removed": [str(p) for p in removed]}, indent=2))
            else:
                print(f"removed {env.name} ({env.project_name}): " + ", ".join(map(str, removed)))
            return 0
        rows = list(userenv.iter_summaries())
    except UvextraError as exc:
        return _error(str(exc), exc.exit_code, as_json=args.json)
    if args.json:
        _print_json(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no environments of yours in {userenv.envs_dir()} (make one: `%uvextra EXTRA --project DIR --user-env`)")
        return 0
    for row in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(row["last_used"])))  # type: ignore[arg-type]
        backend = "+".join(row["backend"]) or "no backend"  # type: ignore[arg-type]
        print(
            f"{row['name']}  {row['project_name']} ({backend})  {int(row['own_bytes']) / 1e6:.1f} MB own, "  # type: ignore[call-overload]
            f"{int(row['shared_bytes']) / 1e6:.1f} MB shared with uv's cache  last used {used}  "  # type: ignore[call-overload]
            f"kernel: {row['kernelspec'] or '(none)'}\n    {row['path']}  (project {row['project']})"
        )
        if row["linked"]:
            print("    linked read-only from the admin's layers: " + ", ".join(row["linked"]))  # type: ignore[arg-type]
    return 0


def _notebook_record(args: argparse.Namespace) -> NotebookRecord | None:
    """``--notebook NB.ipynb``: its last record; for switch, its extras become the ones to switch to."""
    path = getattr(args, "notebook", None)
    if not path:
        return None
    import os

    from .kernel.record import read_record

    if args.command == "switch" and args.extras:
        raise _UsageError("name the extras or give --notebook, not both (see `uvextra switch --help`)")
    record = read_record(os.path.expanduser(path))
    if args.command == "switch":
        if not record.extras:
            raise UvextraError(f"{record.path.name}'s last record names no extras to switch to")
        args.extras = record.extras
    return record


def _print_with_notebook(report: Report, record: NotebookRecord, *, as_json: bool, verbose: bool) -> int:
    """The report, then one line: does this environment run what the notebook last ran on? (exit 1 when not)."""
    from .kernel.record import compare
    from .render.text import render_text

    result = compare(record, report)
    code: int = report.exit_code if result.agrees else max(1, report.exit_code)
    if as_json:
        data = json.loads(report.to_json())
        data["notebook"] = result.to_dict(record)
        data["exit_code"] = code
        _print_json(redact(json.dumps(data, indent=2, ensure_ascii=False)))
    else:
        print(render_text(report, verbose=verbose))
        print(redact(result.line))
    return code


def _tolerant_streams() -> None:
    """Never a UnicodeEncodeError on output (PYTHONIOENCODING=ascii, a C locale): escape what cannot be written."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured: leave it
                pass


def _answer_interrupts() -> None:
    """A job started in the background (``cmd &`` in a script, CI runners) inherits SIGINT ignored, and Python then
    leaves it ignored: a ``kill -INT`` would not stop uv, and the venv would not be re-checked. uvextra always
    answers SIGINT (exit 130): it stops uv and says where the environment stands."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None, *, on_done: Done | None = None) -> None:
    """The whole command line: :func:`run`, then exit with its code (the console script enters through
    :func:`uvextra.cli_quick.main`, which answers a repeated clean check without it)."""
    _tolerant_streams()
    _answer_interrupts()
    try:
        code = run(argv, on_done=on_done)
    except KeyboardInterrupt:
        print("uvextra: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
