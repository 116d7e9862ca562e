#!/usr/bin/env python3
"""What the stack check (issue 10) costs, on real PyTorch wheels, each figure against its baseline in the same run.

    python benchmarks/stack.py              # about 4 minutes with uv's cache warm; prints a markdown table
    python benchmarks/stack.py --repeats 3  # fewer rounds
    python benchmarks/stack.py --quick      # a smoke run: 2 rounds

The wheels are found through pip's configuration (``tests/support/pip_indexes.py``), never a hard-coded folder: the real
``torch-*+cpu`` wheel in a find-links folder, PyPI's CUDA torch and torchvision in ``file://`` simple indexes. One
project, extras ``cpu`` and ``cuNNN`` that route torch per extra and leave torchvision unrouted (the classic state:
``cpu`` gets PyPI's CUDA torchvision beside the CPU torch, which fails ``import torchvision``; ``cuNNN`` gets a stack
that fits and runs ``ops.nms``). In each of the two venvs:

  S1  the probe with the companions (what check/status/switch run)   vs  the probe alone (torch only), and the
      companions' own import time (``import torchvision`` + ``ops.nms`` after ``import torch``, a fresh ``python -I``)
  S2  ``check`` without the probe (the static stack check and the routing lint included)
                                                                     vs  the same check with both stubbed out

Target (issue 10): S1 adds at most the companions' own import time; S2 adds nothing measurable (files only: RECORD,
``version.py``, the extension's ELF header), both in a kernel's repeated checks (what the files said is kept per
``.dist-info`` folder and RECORD digest) and in a first check in a new process (those memos cleared). Rounds are
interleaved, the order alternating; medians after a warm-up.
uv's cache is ``~/.cache/uvextra-tests/uv-cache-realtorch`` (the real-torch tests' cache), so reruns only link files.
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
    import uvextra  # noqa: F401
except ImportError:  # not installed: the source tree
    sys.path.insert(0, str(REPO / "src"))

from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name, parse_wheel_filename  # noqa: E402

from support import pip_indexes as pi  # noqa: E402

TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
COMPANION_SCRIPT = """import time, sys
import torch
t = time.perf_counter()
try:
    import torchvision, torchvision.ops
    torchvision.ops.nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]]), torch.tensor([0.9, 0.8]), 0.5)
except BaseException as exc:
    print("failed:", exc, file=sys.stderr)
print(time.perf_counter() - t)
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def torchvision_for(torch_version: str) -> str | None:
    """The newest torchvision on pip's local indexes whose torch pin accepts ``torch_version`` (local part and all)."""
    found = []
    for index in pi.indexes_with("torchvision"):
        for name, wheel in pi._links(index, "torchvision").items():
            if name.endswith(".whl") and f"-{TAG}-" in name and wheel.is_file():
                pins = [Requirement(r) for r in pi._requires(wheel) if Requirement(r).name == "torch"]
                if pins and all(p.specifier.contains(torch_version, prereleases=True) for p in pins):
                    found.append(parse_wheel_filename(name)[1])
    return str(max(found)) if found else None


def write_project(path: Path, cpu: Path, cuda: pi.CudaTorch, tv_cpu: str, tv_cuda: str) -> list[str]:
    """The misrouted project (torch routed per extra, torchvision not). Returns what was overridden away."""
    drop = []
    for line in cuda.requires:
        req = Requirement(line)
        if (req.marker is None or req.marker.evaluate({"extra": ""})) and not pi.indexes_with(req.name):
            drop.append(canonicalize_name(req.name))
    indexes = pi.local_simple_indexes()
    names = {url: f"local-{n}" for n, url in enumerate(indexes, 1)}
    q = json.dumps
    lines = [
        "[project]",
        'name = "stackbench"',
        'version = "0.1.0"',
        f'requires-python = ">={sys.version_info[0]}.{sys.version_info[1]}"',
        "dependencies = []",
        "",
        "[project.optional-dependencies]",
        f"cpu = [{q('torch==' + parse_wheel_filename(cpu.name)[1].public)}, {q('torchvision==' + tv_cpu)}]",
        f"{cuda.extra} = [{q('torch==' + cuda.version)}, {q('torchvision==' + tv_cuda)}]",
        "",
        "[tool.uv]",
        f'conflicts = [[{{ extra = "cpu" }}, {{ extra = {q(cuda.extra)} }}]]',
        'index-strategy = "unsafe-best-match"',
        "override-dependencies = [" + ", ".join(q(f"{d}; python_version < '3'") for d in drop) + "]",
        "",
        "[tool.uv.sources]",
        f'torch = [{{ index = "torch-cpu", extra = "cpu" }}, {{ index = {q(names[cuda.index])}, '
        f"extra = {q(cuda.extra)} }}]",
        "",
        "[[tool.uv.index]]",
        'name = "torch-cpu"',
        f"url = {q(str(cpu.parent))}",
        'format = "flat"',
        "explicit = true",
    ]
    for n, url in enumerate(indexes, 1):
        lines += ["", "[[tool.uv.index]]", f"name = {q(names[url])}", f"url = {q(url)}"]
        if n == len(indexes):
            lines.append("default = true")
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return drop


def real_torch_environ() -> str:
    """This process's environment for uv and uvextra on the real wheels: the real-torch tests' uv cache
    (``~/.cache/uvextra-tests/uv-cache-realtorch``), nothing that redirects uv; returns the uv binary."""
    from uv import find_uv_bin

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uvextra-tests" / "uv-cache-realtorch"
    cache.mkdir(parents=True, exist_ok=True)
    for key in [
        k
        for k in os.environ
        if k.startswith(("UV_INDEX", "PIP_"))
        or k in ("VIRTUAL_ENV", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "UV_CACHE_DIR")
    ]:
        del os.environ[key]
    os.environ.update(
        UVEXTRA_UV=os.fspath(find_uv_bin()), UV_CACHE_DIR=str(cache), UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never"
    )
    return os.environ["UVEXTRA_UV"]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in fns}
    for n in range(warmup + repeats):
        for name in list(fns) if n % 2 == 0 else list(reversed(fns)):
            start = time.perf_counter()
            fns[name]()
            if n >= warmup:
                out[name].append(time.perf_counter() - start)
    return out


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, 1 warm-up (about 2 minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 2, 1

    cpu, cuda = pi.cpu_torch_wheel(), pi.cuda_torch()
    if cpu is None or cuda is None:
        say(
            f"needs a torch-*+cpu wheel in pip's find-links and PyPI's CUDA torch in a file:// index of pip's "
            f"configuration (found: cpu {cpu}, cuda {cuda and cuda.wheel})"
        )
        return 2
    cpu_version = str(parse_wheel_filename(cpu.name)[1])
    tv_cpu, tv_cuda = torchvision_for(cpu_version), torchvision_for(cuda.version)
    if tv_cpu is None or tv_cuda is None:
        say(
            f"no torchvision on pip's file:// indexes for torch {cpu_version} ({tv_cpu}) and {cuda.version} ({tv_cuda})"
        )
        return 2

    uv = real_torch_environ()

    from uvextra.core import stack
    from uvextra.core import verbs as core
    from uvextra.core.cuda_probe import start_probe
    from uvextra.core.installed import scan

    real_check, real_lint = stack.check_stack, stack.lint_routing

    work = Path(tempfile.mkdtemp(prefix="uvextra-stack-bench-"))
    rows: list[str] = []
    try:
        project = work / "project"
        write_project(project, cpu, cuda, tv_cpu, tv_cuda)
        subprocess.run([uv, "lock", "--quiet"], cwd=project, check=True, timeout=600)
        for extra, label in (
            ("cpu", f"torch {cpu_version} + PyPI's torchvision {tv_cpu} (CUDA build: fails)"),
            (cuda.extra, f"torch {cuda.version} + torchvision {tv_cuda} (both CUDA: ops.nms runs)"),
        ):
            venv = work / f"venv-{extra}"
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            python = str(venv / "bin" / "python")
            say(f"switch {extra} …")
            started = time.perf_counter()
            r = core.switch([extra], project, python, probe=False)
            if r.failure is not None:
                say(f"switch {extra} failed: {r.failure}")
                return 1
            say(f"  {time.perf_counter() - started:.1f} s")
            pairs = stack.import_names(scan(core.open_context(project, python).env))
            assert [p for p, _ in pairs] == ["torchvision"], pairs
            inside: list[float] = []
            verdicts: list[str] = []

            def probe_with(
                python: str = python, pairs: list = pairs, verdicts: list = verdicts, extra: str = extra
            ) -> None:
                got = start_probe(python, selected_extras=[extra], companions=pairs).result()
                verdicts.append(json.dumps(got.companions.get("torchvision")))

            def probe_alone(python: str = python, extra: str = extra) -> None:
                start_probe(python, selected_extras=[extra]).result()

            def companion_import(python: str = python, inside: list = inside) -> None:
                out = subprocess.run([python, "-I", "-c", COMPANION_SCRIPT], capture_output=True, text=True, check=True)
                inside.append(float(out.stdout.split()[-1]))

            say(f"  S1 probe with/without the companions, {args.repeats} rounds …")
            t = interleaved(
                {"with": probe_with, "alone": probe_alone, "import": companion_import}, args.repeats, args.warmup
            )
            own = statistics.median(inside[-args.repeats :]) * 1000
            w, a = ms(t["with"]), ms(t["alone"])
            rows.append(
                f"| S1 | the probe with the stack check, {label} | {w:,.0f} | the probe alone (torch only) | "
                f"{a:,.0f} | {w - a:+,.0f} ms ({w / a:.2f}×); the companions' own import: {own:,.0f} ms | "
                f"{'yes' if w - a <= own else '**no**'} |"
            )
            say(f"  companion in the probe: {verdicts[-1]}")

            def check_full(python: str = python) -> None:
                core.check(project, python, probe=False)

            def check_stubbed(python: str = python) -> None:
                stack.check_stack, stack.lint_routing = (lambda *a, **k: []), (lambda *a, **k: [])
                try:
                    core.check(project, python, probe=False)
                finally:
                    stack.check_stack, stack.lint_routing = real_check, real_lint

            def check_first(python: str = python) -> None:
                stack._clear_memos()  # what the stack check read is forgotten: a first check in a new process
                core.check(project, python, probe=False)

            say("  S2 check without the probe, with/without the stack check …")
            t = interleaved(
                {"full": check_full, "first": check_first, "stubbed": check_stubbed}, args.repeats * 4, args.warmup
            )
            f, c, s = ms(t["full"]), ms(t["first"]), ms(t["stubbed"])
            static = core.check(project, python, probe=False).stack[0]
            for what, v in (
                ("repeated, as a kernel's later checks", f),
                ("first in a process, stack memos cleared", c),
            ):
                rows.append(
                    f"| S2 | `check` without the probe (static stack check + routing lint; {what}), {label} | "
                    f"{v:.1f} | the same check, both stubbed out | {s:.1f} | {v - s:+.1f} ms ({v / s:.2f}×) | "
                    f"{'yes' if v - s <= max(2.0, 0.1 * s) else '**no**'} |"
                )
            say(f"  static verdict: {static.why}")
            if extra != "cpu":
                shutil.rmtree(venv, ignore_errors=True)  # 5 GB of links
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"Stack check on real wheels (uv {subprocess.run([uv, '--version'], capture_output=True, text=True).stdout.split()[1]}"
        f", Python {sys.version.split()[0]}, {os.cpu_count()} cores; median of {args.repeats}+ interleaved rounds):"
    )
    print()
    print("| # | what | uvextra (ms) | compared with | that (ms) | figure | target met |")
    print("|---|---|---:|---|---:|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
