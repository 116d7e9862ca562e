"""Real PyTorch where this machine has it: PyPI's CUDA torch and the ``+cpu`` wheel, switched both ways.

Everything is found through pip's configuration (``tests/_pip_indexes.py``: ``find-links`` folders become a flat
index, ``file://`` simple indexes ordinary ones), never a hard-coded folder; each test skips, naming what is
missing, elsewhere. The project is written here, small and explicit: extra ``cpu`` takes torch from the flat index
(the find-links folder), extra ``cu130`` from the simple index that has PyPI's CUDA build, and the two conflict.
torch's own dependencies come from the same simple indexes when they list them all, else from local stand-ins
(the real ``typing_extensions`` module, which ``import torch`` needs, and empty packages torch imports lazily).

* The ``+cpu`` wheel (about 200 MB; with the newest uv and with uv 0.9.4, whose export has no hash for a flat
  index's wheel) runs in the default run: about 10 s each once uv's cache has it (``import torch`` in the probe is
  most of it), 20-25 s the first time.
* PyPI's CUDA build (about 3 GB with its ``nvidia-*`` wheels): switch cu130 → cpu → cu130 with the probe's
  verdicts, and a real kernel that imported the CUDA torch (``torch.__version__`` ``2.14.1+cu130``, its dist-info
  ``2.14.1``) is not told to restart — until the switch to cpu, when it must be. About 35 s once uv's cache holds
  the wheels (each switch links them in 8 s); the first run on a machine unpacks them: about 2 minutes.

uv's cache for both is kept in ``~/.cache/uvextra-tests/uv-cache-realtorch`` (about 6 GB) so reruns only link files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typing_extensions
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from _kernel_venv import Kernel, kernel_env, make_kernel_venv, uvextra_wheel, write_kernelspec  # noqa: F401 - fixture
from _localindex import IndexServer, build_wheel
from _pip_indexes import CudaTorch, cpu_torch_wheel, cuda_torch, indexes_with, local_simple_indexes
from conftest import dist_infos, run_uv

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


def _local_indexes_for(*names: str) -> list[str] | None:
    """The local simple indexes, when together they list every one of ``names``."""
    if all(indexes_with(n) for n in names):
        return local_simple_indexes()
    return None


def _cuda_needs(cuda: CudaTorch) -> tuple[list[str], tuple[str, ...]]:
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
    proc = subprocess.run(
        [sys.executable, "-m", "uvextra", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON on stdout (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
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


# --- the +cpu wheel through a flat index: seconds ----------------------------------------------------------------


@pytest.mark.parametrize("which", ["new", "old"], ids=["newest-uv", "uv-0.9.4"])
def test_switch_to_the_real_cpu_torch_through_a_flat_index(
    tmp_path: Path, make_venv, uv_env, uv_new, which, request: pytest.FixtureRequest
) -> None:
    wheel = cpu_torch_wheel()
    if wheel is None:
        pytest.skip("no torch-*+cpu wheel for this Python in pip's find-links folders")
    uv = request.getfixturevalue("uv_old") if which == "old" else uv_new
    version = parse_wheel_filename(wheel.name)[1]
    env = dict(uv_env, UVEXTRA_UV=uv, UV_CACHE_DIR=persistent_uv_cache(), **COLOUR)  # a rerun links from the cache
    real = _local_indexes_for(*TORCH_DEPS)
    with IndexServer(tmp_path / "indexes") as server:
        if real is None:  # stand-ins, on an index of their own
            stand_ins = tmp_path / "indexes" / "deps"
            stand_ins.mkdir(parents=True)
            build_wheel(
                stand_ins,
                "typing-extensions",
                "4.15.0",
                {"typing_extensions.py": Path(typing_extensions.__file__).read_text(encoding="utf-8")},
            )
            for name, v in STAND_INS.items():
                build_wheel(stand_ins, name, v, {f"{name}/__init__.py": f"__version__ = {v!r}\n"})
        cuda = cuda_torch() if real is not None else None
        drop = _cuda_needs(cuda)[1] if cuda is not None else ()
        project = write_real_project(
            tmp_path / "project", cpu=wheel, cuda=cuda, drop=drop, indexes=real or [server.simple_url("deps")]
        )
        run_uv(uv, "lock", env=env, cwd=project)  # with the uv under test: uv 0.9.4's lock as its users have it
        venv = make_venv(tmp_path / "venv")
        where = ("--project", str(project), "--python", str(venv / "bin" / "python"))
        code, report, took = uvextra("switch", "cpu", *where, env=env)
        assert code == 0, report
        assert report["uv"]["version"] == ("0.9.4" if which == "old" else report["uv"]["version"])
        assert dist_infos(venv, "torch") == [f"torch-{version}.dist-info"]
        assert (errors(report), report["unverified"], report["failure"]) == ([], [], None)
        probe = report["probe"]
        assert (probe["torch_version"], probe["cuda_version"], probe["cuda_available"]) == (str(version), None, False)
        assert probe["verdict"] == f"CPU build of torch ({version}); CUDA not expected"
        code, report, _ = uvextra("check", *where, env=env)
        assert (code, errors(report), report["unverified"], report["extras"]) == (0, [], [], ["cpu"]), report
    print(
        f"switch cpu with uv {report['uv']['version']}: {took:.1f} s "
        f"({'local simple indexes' if real else 'stand-ins'} for torch's dependencies)"
    )


# --- PyPI's CUDA torch: ~3 GB, linked from uv's cache -------------------------------------------------------


def test_real_cuda_torch_both_ways_and_a_kernel_that_imported_it(
    tmp_path: Path,
    uvextra_wheel: Path,
    uv_env,
    uv_new,
) -> None:
    wheel, cuda = cpu_torch_wheel(), cuda_torch()
    if wheel is None or cuda is None:
        pytest.skip(
            "needs a torch-*+cpu wheel in pip's find-links and PyPI's CUDA torch in a file:// index of "
            f"pip's configuration (found: cpu {wheel}, cuda {cuda and cuda.wheel})"
        )
    needs, drop = _cuda_needs(cuda)
    indexes = _local_indexes_for(*TORCH_DEPS, *needs)
    if indexes is None:
        pytest.skip(f"pip's file:// indexes do not list all of {', '.join(sorted({*TORCH_DEPS, *needs}))}")
    cpu_version = str(parse_wheel_filename(wheel.name)[1])
    project = write_real_project(tmp_path / "project", cpu=wheel, cuda=cuda, indexes=indexes, drop=drop)
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=persistent_uv_cache(), **COLOUR)
    run_uv(uv_new, "lock", env=env, cwd=project)
    python = make_kernel_venv(tmp_path / "venv", uvextra_wheel, uv_new, env)
    venv = python.parents[1]
    try:
        _cuda_scenario(tmp_path, project, python, venv, env, cuda, cpu_version)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 5 GB; pytest keeps the last three runs' folders


def _cuda_scenario(
    tmp_path: Path, project: Path, python: Path, venv: Path, env: dict[str, str], cuda: CudaTorch, cpu_version: str
) -> None:
    where = ("--project", str(project), "--python", str(python))
    driver = has_nvidia_driver()
    cuda_verdict = (
        "CUDA available" if driver else f"not available: CUDA {cuda.cuda} build but no NVIDIA driver on this machine"
    )
    took: dict[str, float] = {}

    def cuda_installed() -> list[str]:
        return [d for d in dist_infos(venv) if d.lower().startswith(CUDA_PREFIXES)]

    def switch_cuda(step: str) -> None:
        code, report, took[step] = uvextra("switch", cuda.extra, *where, env=env)
        assert code == 0, report
        assert (errors(report), report["unverified"], report["failure"]) == ([], [], None)
        assert dist_infos(venv, "torch") == [f"torch-{cuda.version}.dist-info"]
        assert any(d.startswith("nvidia_") for d in cuda_installed()), cuda_installed()
        probe = report["probe"]
        assert (probe["torch_version"], probe["cuda_version"]) == (f"{cuda.version}+{cuda.extra}", cuda.cuda)
        assert probe["verdict"].startswith(cuda_verdict), probe

    switch_cuda("switch cu130")
    code, report, took["probe"] = uvextra("probe", "--python", str(python), env=env)
    assert report["probe"]["verdict"].startswith(cuda_verdict), report

    kernels = tmp_path / "kernels"
    write_kernelspec(kernels, "realtorch", python, kernel_env(python, env, tmp_path, UVEXTRA_NO_AUTOLOAD="1"))
    with Kernel(kernels, "realtorch") as kernel:
        started = time.monotonic()
        imported = kernel.execute("import torch; print(torch.__version__, torch.version.cuda)", timeout=300)
        took["kernel import torch"] = time.monotonic() - started
        assert imported["error"] is None, imported
        assert imported["stdout"].split() == [f"{cuda.version}+{cuda.extra}", cuda.cuda]
        assert kernel.execute("%load_ext uvextra")["error"] is None
        seen = status(kernel, project)
        assert (seen["error"], seen["extras"], seen["drift"]) == (None, [cuda.extra], []), seen
        assert (seen["kernel"]["needs_restart"], seen["kernel"]["stale"]) == (False, []), seen

        # Now to the CPU build: nvidia-*, cuda-toolkit and triton go; the kernel, still on the CUDA build, is stale.
        cuda_only = {canonicalize_name(d.split("-")[0]) for d in cuda_installed()}
        code, report, took["switch cpu"] = uvextra("switch", "cpu", *where, env=env)
        assert code == 0, report
        assert (errors(report), report["unverified"], report["failure"]) == ([], [], None)
        assert dist_infos(venv, "torch") == [f"torch-{cpu_version}.dist-info"]
        assert cuda_installed() == []
        assert {canonicalize_name(c["name"]) for c in report["changes"]["removed"]} == cuda_only, report["changes"]
        assert report["probe"]["verdict"] == f"CPU build of torch ({cpu_version}); CUDA not expected"
        seen = status(kernel, project)
        assert (seen["error"], seen["extras"], seen["drift"]) == (None, ["cpu"], []), seen
        assert seen["kernel"]["needs_restart"] is True, seen
        assert "torch" in [s["module"] for s in seen["kernel"]["stale"]], seen

    switch_cuda("switch cu130 again")
    code, report, _ = uvextra("check", *where, env=env)
    assert (code, errors(report), report["extras"]) == (0, [], [cuda.extra]), report
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
