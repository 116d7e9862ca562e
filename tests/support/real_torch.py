"""Real PyTorch projects for the tests and benchmarks that use this machine's real wheels.

The wheels are found through pip's configuration (:mod:`support.pip_indexes`); the project is written small and
explicit: extra ``cpu`` takes torch from the flat index (the find-links folder), the CUDA extra from the simple index
that has PyPI's CUDA build, and the two conflict.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from support.cli import report_of, run_cli
from support.kernels import Kernel
from support.pip_indexes import CudaTorch, indexes_with, local_simple_indexes

# What torch (both builds) requires, and what those require in turn.
TORCH_DEPS = (
    "typing-extensions",
    "filelock",
    "setuptools",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "fsspec",
)
STAND_INS = {
    "filelock": "3.20.0",
    "setuptools": "80.9.0",
    "sympy": "1.14.0",
    "networkx": "3.5",
    "jinja2": "3.1.6",
    "fsspec": "2025.9.0",
}
COLOUR = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}  # as ipykernel sets them
CUDA_PREFIXES = ("nvidia_", "cuda_toolkit-", "triton-")


def _q(text: str) -> str:
    return json.dumps(text)  # a TOML basic string, for paths and URLs


def write_real_project(
    path: Path,
    *,
    cpu: Path | None,
    cuda: CudaTorch | None,
    indexes: list[str],
    drop: tuple[str, ...] = (),
    also: dict[str, tuple[str, ...]] | None = None,
) -> Path:
    """A project with extras ``cpu`` (``cpu``'s torch from its folder as a flat index) and ``cuda.extra``.

    ``indexes`` serve everything else, in priority order (the last is the default); ``drop`` names requirements of
    torch that no index has, overridden away (PyPI's torch requires ``cuda-bindings``, absent here); ``also`` adds
    requirements to an extra (e.g. ``{"cpu": ("torchvision==0.28.0",)}``), left unrouted: from the indexes.
    """
    extras: dict[str, list[str]] = {}
    if cpu is not None:
        extras["cpu"] = [f"torch=={parse_wheel_filename(cpu.name)[1].public}"]
    if cuda is not None:
        extras[cuda.extra] = [f"torch=={cuda.version}"]
    for extra, requirements in (also or {}).items():
        extras[extra] += requirements
    names = {url: f"local-{n}" for n, url in enumerate(indexes, 1)}
    lines = [
        "[project]",
        'name = "realtorch"',
        'version = "0.1.0"',
        f'requires-python = ">={sys.version_info.major}.{sys.version_info.minor}"',
        "dependencies = []",
        "",
        "[project.optional-dependencies]",
        *(f"{e} = [{', '.join(map(_q, r))}]" for e, r in extras.items()),
        "",
        "[tool.uv]",
    ]
    if len(extras) > 1:
        lines.append("conflicts = [[" + ", ".join(f"{{ extra = {_q(e)} }}" for e in extras) + "]]")
    if len(indexes) > 1:
        lines.append('index-strategy = "unsafe-best-match"')  # what pip does across its extra indexes
    if drop:
        # A marker no environment of this project has: uv drops the requirement, for every platform.
        lines.append("override-dependencies = [" + ", ".join(_q(f"{d}; python_version < '3'") for d in drop) + "]")
    sources = []
    if cpu is not None:
        sources.append('{ index = "torch-cpu", extra = "cpu" }')
    if cuda is not None:
        sources.append(f"{{ index = {_q(names[cuda.index])}, extra = {_q(cuda.extra)} }}")
    lines += ["", "[tool.uv.sources]", "torch = [" + ", ".join(sources) + "]"]
    if cpu is not None:
        lines += [
            "",
            "[[tool.uv.index]]",
            'name = "torch-cpu"',
            f"url = {_q(str(cpu.parent))}",
            'format = "flat"',
            "explicit = true",
        ]
    for n, url in enumerate(indexes, 1):
        lines += ["", "[[tool.uv.index]]", f"name = {_q(names[url])}", f"url = {_q(url)}"]
        if n == len(indexes):
            lines.append("default = true")
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def local_indexes_for(*names: str) -> list[str] | None:
    """The local simple indexes, when together they list every one of ``names``."""
    if all(indexes_with(n) for n in names):
        return local_simple_indexes()
    return None


def cuda_needs(cuda: CudaTorch) -> tuple[list[str], tuple[str, ...]]:
    """(projects the CUDA torch needs on this machine, the ones to override away because no index has them)."""
    needs, drop = [], []
    for line in cuda.requires:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        (needs if indexes_with(name) else drop).append(name)
    return needs, tuple(drop)


def uvextra(*args: str, env: dict[str, str], timeout: float = 600) -> tuple[int, dict, float]:
    start = time.monotonic()
    proc = run_cli(*args, "--json", env=env, timeout=timeout)
    report = report_of(proc)
    assert "\x1b" not in proc.stdout and "\\u001b" not in proc.stdout, "ANSI escapes in the JSON"
    return proc.returncode, report, time.monotonic() - start


def errors(report: dict) -> list[dict]:
    return [d for d in report["drift"] if d["kind"] != "extraneous"]


def status(kernel: Kernel, project: Path) -> dict:
    """``%uvextra`` (status) in the kernel, and what it decided: the report's drift and the kernel's restart."""
    shown = kernel.execute(f"%uvextra --project {project} --no-probe", timeout=180)
    assert shown["error"] is None, shown
    done = kernel.execute(
        "import json as _j; from uvextra.magic import last_outcome as _lo; _o = _lo()\n"
        "print(_j.dumps({'error': _o.error and str(_o.error), 'extras': [str(e) for e in _o.report.extras],\n"
        "  'drift': [d.to_dict() for d in _o.report.errors], 'kernel': _o.kernel.to_dict()}))"
    )
    assert done["error"] is None, done
    return json.loads(done["stdout"])


def has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def persistent_uv_cache() -> str:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uvextra-tests" / "uv-cache-realtorch"
    base.mkdir(parents=True, exist_ok=True)
    return str(base)
