#!/usr/bin/env python3
"""The CLI's start-up (issue 20): a whole ``uvextra check --json`` process against a whole no-op ``uv sync --dry-run``.

    python benchmarks/startup.py            # the demo project, and PyPI's CUDA torch env when pip's configuration
                                            # names it (about a minute once uv's cache holds its wheels)
    python benchmarks/startup.py --quick    # 3 rounds, the demo project only

Two venvs, each switched with uvextra and then left alone: the demo project's (``uvextra demo``'s stand-in torch,
numpy; 3 packages) and, where pip's configuration has it, PyPI's real CUDA torch with its nvidia-* wheels and triton
(``benchmarks/files.py``'s project: 28 packages, about 17,000 RECORD entries). On each, whole processes, the sides
interleaved with the order alternating, medians after warm-up rounds:

  ``uvextra check --json`` (the console script) and ``python -m uvextra check --json``: from the second call on a
      clean, unchanged venv is answered by :mod:`uvextra.cli_quick` (every input stat'ed again, every RECORD file
      included)
  the whole check (``uvextra.cli.main``: what every call cost before)
  the first call after a change (no entry: the whole check, and then writing down what it read for the next call)
  a no-op ``uv sync --dry-run --extra X`` on the same project and venv (the baseline; target: ≤ 3×)

Bytecode is written (``PYTHONDONTWRITEBYTECODE`` is dropped), as after an installed package's first run. After the
timed rounds one file of torch's RECORD is removed and the very next check must say so (exit 1), or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # support.pip_indexes: pip's configuration, read
try:
    import uvextra
except ImportError:  # not installed: the source tree
    sys.path.insert(0, str(REPO / "src"))
    import uvextra

WHOLE = "import sys; from uvextra.cli import main; main(sys.argv[1:])"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in fns}
    for n in range(warmup + repeats):
        for name in list(fns) if n % 2 == 0 else list(reversed(fns)):
            start = time.perf_counter()
            fns[name]()
            if n >= warmup:
                out[name].append((time.perf_counter() - start) * 1000)
    return out


def demo_env(work: Path) -> tuple[Path, Path, str]:
    """The demo project switched to cpu: (project, venv, extra)."""
    from uvextra._demo_wheels import build_indexes
    from uvextra.core import verbs as core
    from uvextra.demo import create_demo

    build_indexes(work / "indexes")
    project, python = create_demo(work)
    report = core.switch(["cpu"], project, str(python), probe=False)
    if report.failure is not None or not report.clean:
        raise SystemExit(f"demo switch failed: {report.failure} {report.drift}")
    return project, project / ".venv", "cpu"


def torch_env(work: Path) -> tuple[Path, Path, str] | None:
    """PyPI's CUDA torch switched into a fresh venv (benchmarks/files.py's project), or None where pip's
    configuration names no such index."""
    from files import write_project
    from stack import real_torch_environ
    from support import pip_indexes as pi

    cuda = pi.cuda_torch()
    if cuda is None:
        return None
    uv = real_torch_environ()
    from uvextra.core import verbs as core

    project = work / "project"
    write_project(project, cuda)
    subprocess.run([uv, "lock", "--quiet"], cwd=project, check=True, timeout=900)
    venv = project / ".venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=project, check=True)
    say(f"switch {cuda.extra} (PyPI's CUDA torch {cuda.version}) …")
    report = core.switch([cuda.extra], project, str(venv / "bin" / "python"), probe=False)
    if report.failure is not None or not report.clean:
        raise SystemExit(f"torch switch failed: {report.failure} {report.drift}")
    return project, venv, cuda.extra


def measure(name: str, project: Path, venv: Path, extra: str, repeats: int, warmup: int) -> list[str]:
    from uvextra.core.environment import resolve_environment
    from uvextra.core.installed import record_entries, scan
    from uvextra.core.uv import find_uv

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), PYTHONPATH=str(Path(uvextra.__file__).resolve().parent.parent))
    uv = env.get("UVEXTRA_UV") or find_uv().path
    script = Path(sys.executable).parent / "uvextra"

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def ours(cmd: list[str]) -> Callable[[], None]:
        def go() -> None:
            proc = run(cmd)
            if proc.returncode != 0 or not json.loads(proc.stdout)["clean"]:
                raise SystemExit(f"{cmd[:3]} exited {proc.returncode}: {proc.stdout[-400:]} {proc.stderr[-400:]}")

        return go

    def uv_dry_run() -> None:
        proc = run([uv, "sync", "--dry-run", "--extra", extra])
        if proc.returncode != 0 or "Would make no changes" not in proc.stderr + proc.stdout:
            raise SystemExit(f"uv sync --dry-run is not a no-op: {proc.stderr[-400:]}")

    first = ours([sys.executable, "-m", "uvextra", "check", "--json"])

    def first_call() -> None:  # no entry: the whole check, and then writing down its inputs for the next call
        for entry in (venv / ".uvextra").glob("quick-*"):
            entry.unlink()
        first()

    sides = {
        "uv": uv_dry_run,
        "python -m uvextra": ours([sys.executable, "-m", "uvextra", "check", "--json"]),
        "whole check": ours([sys.executable, "-c", WHOLE, "check", "--json"]),
        "first call": first_call,
    }
    if script.exists():
        sides["uvextra"] = ours([str(script), "check", "--json"])
    load_before = os.getloadavg()
    t = interleaved(sides, repeats, warmup)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in t.items()}

    installed = scan(resolve_environment(venv / "bin" / "python"))
    files = sum(len(record_entries(d.dist_info) or []) for d in installed.values())

    # honest: one file of torch's RECORD removed, the very next call must catch it
    (dist,) = venv.glob("lib/python*/site-packages/torch-*.dist-info")
    rel = next(r.split(",")[0] for r in (dist / "RECORD").read_text().splitlines() if r.startswith("torch/"))
    (dist.parent / rel).unlink()
    caught = run([sys.executable, "-m", "uvextra", "check", "--json"])
    if caught.returncode != 1 or "files missing" not in caught.stdout:
        raise SystemExit(f"a removed file was not caught on the next check: {caught.stdout[-600:]}")

    u = med["uv"]
    rows = []
    label = f"{name} ({len(installed)} packages, {files:,} RECORD entries)"
    for side, what in (
        ("uvextra", "`uvextra check --json` (console script), unchanged venv"),
        ("python -m uvextra", "`python -m uvextra check --json`, unchanged venv"),
        ("whole check", "the whole check (`uvextra.cli.main`: what every call cost before issue 20)"),
        (
            "first call",
            "`python -m uvextra check --json` after a change: the whole check, then its inputs written down",
        ),
    ):
        if side in med:
            # the target is the repeated call's; the other two are what it is measured against
            target = ("≤ 3×", "yes" if med[side] / u <= 3 else "**no**") if "unchanged" in what else ("—", "n/a")
            rows.append(
                f"| {label} | {what} | {med[side]:,.1f} | `uv sync --dry-run --extra {extra}` (no-op) | {u:,.1f} | "
                f"{med[side] / u:.2f}× | {target[0]} | {target[1]} |"
            )
    spread = "; ".join(f"{k}: min {min(v):.1f}, max {max(v):.1f}" for k, v in t.items())
    rows.append(
        f"<!-- {name}: {repeats} rounds after {warmup} warm-up(s), load {load_before[0]:.2f} → {load_after[0]:.2f} "
        f"(1-min average, {os.cpu_count()} cores); {spread}; removed {rel}: caught (exit 1) -->"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2 warm-ups, the demo project only")
    parser.add_argument("--no-torch", action="store_true", help="the demo project only")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.no_torch = 3, 2, True
    work = Path(tempfile.mkdtemp(prefix="uvextra-startup-bench-"))
    try:
        rows = []
        project, venv, extra = demo_env(work / "demo")
        rows += measure("demo project", project, venv, extra, args.repeats, args.warmup)
        found = None if args.no_torch else torch_env(work / "torch")
        if found is not None:
            rows += measure("PyPI's CUDA torch", *found, args.repeats, args.warmup)
        elif not args.no_torch:
            say("no PyPI CUDA torch in pip's configuration: the demo project only")
        from uvextra.core.uv import find_uv

        print(f"uv {find_uv().version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        print("| venv | what | uvextra (ms) | compared with | that (ms) | figure | target | met |")
        print("|---|---|---:|---|---:|---|---|---|")
        for row in rows:
            print(row)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
