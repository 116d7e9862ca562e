#!/usr/bin/env python3
"""What the file-level check (issue 16) costs on PyPI's real CUDA torch env, against uv in the same run.

    python benchmarks/files.py            # about 3 minutes the first time (uv unpacks ~3 GB), then about one
    python benchmarks/files.py --quick    # 3 rounds

One project, extra ``cuNNN`` = PyPI's CUDA torch (with its nvidia-* wheels and triton), found through pip's
configuration (``tests/support/pip_indexes.py``), never a hard-coded folder; switched into a fresh venv with uvextra. Then,
interleaved, the order alternating, medians after a warm-up:

  F1  ``python -m uvextra check --json`` as a whole process (the whole check: ``uvextra.cli.main``, not the quick
      path of a repeated clean check, which ``benchmarks/startup.py`` measures)
                                                          vs  the same process with ``check_files`` stubbed out
      (what check cost before issue 16), and vs a no-op ``uv sync --check`` (whole process, same venv)
  F2  the same check in-process, repeated (what a kernel's ``%uvextra --check`` does after the first)
  F3  ``check --verify`` (sha256 of every file RECORD lists) once: how long reading every byte takes

Target (issue 16): F1 adds at most 150 ms; F2 stays under 1 s. uv's cache is the real-torch tests' cache
(``~/.cache/uvextra-tests/uv-cache-realtorch``), so reruns only link files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    import uvextra  # noqa: F401
except ImportError:  # not installed: the source tree
    sys.path.insert(0, str(REPO / "src"))

from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

from stack import interleaved, ms, real_torch_environ, say  # noqa: E402 - this folder's other benchmark
from support import pip_indexes as pi  # noqa: E402

# Both F1 sides run the whole check (uvextra.cli.main): `python -m uvextra` answers a repeated clean check from its
# last answer (uvextra.cli_quick, issue 20), which would leave nothing of what F1 measures. startup.py measures that.
WHOLE = "import sys; from uvextra.cli import main; main(sys.argv[1:])"
STUBBED = (
    "import sys; import uvextra.core.verbs as c; from uvextra.core.installed import FileCheck; "
    "c.check_files = lambda dist, verify=False: FileCheck(0, 0, 0, ()); "
    "from uvextra.cli import main; sys.exit(main(sys.argv[1:]))"
)


def write_project(path: Path, cuda: pi.CudaTorch) -> None:
    drop = []
    for line in cuda.requires:
        req = Requirement(line)
        if (req.marker is None or req.marker.evaluate({"extra": ""})) and not pi.indexes_with(req.name):
            drop.append(canonicalize_name(req.name))
    indexes = pi.local_simple_indexes()
    q = json.dumps
    lines = [
        "[project]",
        'name = "filesbench"',
        'version = "0.1.0"',
        f'requires-python = ">={sys.version_info[0]}.{sys.version_info[1]}"',
        "dependencies = []",
        "",
        "[project.optional-dependencies]",
        f"{cuda.extra} = [{q('torch==' + cuda.version)}]",
        "",
        "[tool.uv]",
        'index-strategy = "unsafe-best-match"',
        "override-dependencies = [" + ", ".join(q(f"{d}; python_version < '3'") for d in drop) + "]",
    ]
    for n, url in enumerate(indexes, 1):
        lines += ["", "[[tool.uv.index]]", f"name = {q(f'local-{n}')}", f"url = {q(url)}"]
        if n == len(indexes):
            lines.append("default = true")
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    cuda = pi.cuda_torch()
    if cuda is None:
        say("needs PyPI's CUDA torch in a file:// simple index of pip's configuration")
        return 2
    uv = real_torch_environ()
    from uvextra.core import verbs as core
    from uvextra.core.installed import record_entries, scan

    work = Path(tempfile.mkdtemp(prefix="uvextra-files-bench-"))
    try:
        project = work / "project"
        write_project(project, cuda)
        subprocess.run([uv, "lock", "--quiet"], cwd=project, check=True, timeout=900)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        say(f"switch {cuda.extra} (PyPI's CUDA torch {cuda.version}) …")
        started = time.perf_counter()
        report = core.switch([cuda.extra], project, python, probe=False)
        if report.failure is not None or report.errors:
            say(f"switch failed: {report.failure} {report.errors}")
            return 1
        say(f"  {time.perf_counter() - started:.1f} s")
        installed = scan(core.resolve_environment(python))
        files = sum(len(record_entries(d.dist_info) or []) for d in installed.values())
        gb = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink()) / 1e9
        where = ["--project", str(project), "--python", python]
        env = dict(os.environ)

        def whole(cmd: list[str]) -> Callable[[], None]:
            def run() -> None:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{cmd[:4]} exited {proc.returncode}: {proc.stdout[-400:]} {proc.stderr[-400:]}")

            return run

        uv_env = dict(env, UV_PROJECT_ENVIRONMENT=str(venv))

        def uv_check() -> None:
            proc = subprocess.run(
                [uv, "sync", "--check", "--inexact", "--extra", cuda.extra],
                cwd=project,
                env=uv_env,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(f"uv sync --check exited {proc.returncode}: {proc.stderr[-400:]}")

        f1 = interleaved(
            {
                "check": whole([sys.executable, "-c", WHOLE, "check", "--json", *where]),
                "check, files stubbed": whole([sys.executable, "-c", STUBBED, "check", "--json", *where]),
                "uv sync --check": uv_check,
            },
            args.repeats,
            args.warmup,
        )
        f2 = interleaved({"in-process check": lambda: core.check(project, python)}, args.repeats, args.warmup)
        started = time.perf_counter()
        verified = core.check(project, python, verify=True)
        f3 = time.perf_counter() - started

        check, stub, uvc, inproc = (
            ms(f1["check"]),
            ms(f1["check, files stubbed"]),
            ms(f1["uv sync --check"]),
            ms(f2["in-process check"]),
        )
        added = check - stub
        print(
            f"PyPI's CUDA torch {cuda.version} env: {len(installed)} packages, {files:,} RECORD entries, "
            f"{gb:.1f} GB; {args.repeats} interleaved rounds after {args.warmup} warm-up(s), medians\n"
        )
        print("| # | what | uvextra (ms) | compared with | that (ms) | figure | target | met |")
        print("|---|---|---:|---|---:|---|---|---|")
        print(
            f"| F1 | `python -m uvextra check --json`, whole process, file check included | {check:,.0f} | the same "
            f"process, `check_files` stubbed out | {stub:,.0f} | +{added:,.0f} ms | ≤ +150 ms | "
            f"{'yes' if added <= 150 else '**no**'} |"
        )
        print(
            f"| F1 | the same check | {check:,.0f} | no-op `uv sync --check --inexact`, whole process | {uvc:,.0f} | "
            f"{check / uvc:.2f}× (uv checks no file) | — | n/a |"
        )
        print(
            f"| F2 | check in-process, repeated (a kernel's `%uvextra --check`) | {inproc:,.0f} | — | — | — | < 1 s | "
            f"{'yes' if inproc < 1000 else '**no**'} |"
        )
        hashed = verified.verified or {"files": 0}
        print(
            f"| F3 | `check --verify` (sha256 of {int(hashed['files']):,} files) | {f3 * 1000:,.0f} | the plain "
            f"check | {inproc:,.0f} | {f3 * 1000 / inproc:.0f}× | opt-in | n/a |"
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
