"""The `uvextra` command line: status, switch, check, repair, probe (and demo) over the core's report.

Exit codes: 0 the environment matches the lock; 1 drift remains or the operation failed; 2 usage or
configuration error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import UvextraError
from .redact import redact


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="uvextra",
        description="Switch a venv (a Jupyter kernel's) between a uv project's backend extras, safely and visibly.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, *, project: bool = True) -> None:
        if project:
            sp.add_argument("--project", metavar="DIR", help="the uv project (default: nearest pyproject.toml upward)")
        sp.add_argument("--python", metavar="PY", help="interpreter of the target venv (default: this one)")
        sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sp.add_argument("-v", "--verbose", action="store_true", help="list every changed package")

    sp = sub.add_parser("status", help="current extras, drift and CUDA verdict")
    common(sp)
    sp = sub.add_parser("switch", help="sync the venv to EXTRA(s) (or `auto`), then check and probe")
    sp.add_argument("extras", nargs="+", metavar="EXTRA")
    common(sp)
    sp.add_argument("--no-probe", action="store_true", help="skip the CUDA probe")
    sp.add_argument("--keep-extraneous", action="store_true", help="remove nothing that the lock does not list")
    sp.add_argument("--repair", action="store_true", help="reinstall whatever drift uv leaves behind")
    lockmode = sp.add_mutually_exclusive_group()
    lockmode.add_argument("--frozen", action="store_true", help="use uv.lock as it is; never create or update it")
    lockmode.add_argument("--locked", action="store_true", help="refuse when uv.lock is missing or out of date")
    for name, helptext in (("check", "compare the venv with the lock (exit 1 on drift)"),
                           ("repair", "reinstall exactly the drifted packages")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--extra", action="append", dest="extras", metavar="EXTRA",
                        help="extra to check against (default: the last switch's, else inferred)")
        common(sp)
        if name == "repair":
            sp.add_argument("--probe", action="store_true", help="also run the CUDA probe")
    sp = sub.add_parser("probe", help="is CUDA available to torch in the venv, and if not, why")
    common(sp, project=False)
    sp = sub.add_parser("demo", help="the whole story offline: a local index, a switch, drift caught, repair, probe")
    sp.add_argument("--dir", metavar="DIR", help="where to build the demo (default: a temporary folder)")
    sp.add_argument("--keep", action="store_true", help="keep the demo folder")
    return p


def _stream(line: str) -> None:
    print(f"  │ {line}", file=sys.stderr, flush=True)


def _note(line: str) -> None:
    print(f"uvextra: {line}", file=sys.stderr, flush=True)


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.dir, keep=args.keep)
    from . import core
    from .report import render_text

    as_json = args.json
    stream = None if as_json else _stream
    try:
        if args.command == "status":
            report = core.status(args.project, args.python)
        elif args.command == "check":
            report = core.check(args.project, args.python, args.extras)
        elif args.command == "repair":
            report = core.repair(args.project, args.python, args.extras, probe=args.probe, on_line=stream,
                                 on_wait=_note)
        elif args.command == "switch":
            report = core.switch(args.extras, args.project, args.python, probe=not args.no_probe,
                                 keep_extraneous=args.keep_extraneous, repair=args.repair, frozen=args.frozen,
                                 locked=args.locked, on_line=stream,
                                 on_wait=_note)
        else:
            report = core.probe(args.python)
    except UvextraError as exc:
        message = redact(str(exc))
        if as_json:
            print(json.dumps({"error": message, "exit_code": exc.exit_code}))
        print(f"uvextra: error: {message}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        print(report.to_json())
    else:
        print(render_text(report, verbose=args.verbose))
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except KeyboardInterrupt:
        print("uvextra: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
