"""Real PyTorch where this machine has it: PyPI's CUDA torch and the ``+cpu`` wheel, switched both ways.

Everything is found through pip's configuration (``tests/support/pip_indexes.py``: ``find-links`` folders become a flat
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

import shutil
import time
from pathlib import Path

import pytest
import typing_extensions
from packaging.utils import canonicalize_name, parse_wheel_filename

from support.kernels import Kernel, kernel_env, make_kernel_venv, write_kernelspec
from support.localindex import IndexServer, build_wheel
from support.pip_indexes import CudaTorch, cpu_torch_wheel, cuda_torch
from support.real_torch import (
    COLOUR,
    CUDA_PREFIXES,
    STAND_INS,
    TORCH_DEPS,
    cuda_needs,
    errors,
    has_nvidia_driver,
    local_indexes_for,
    persistent_uv_cache,
    status,
    uvextra,
    write_real_project,
)
from support.run import run_uv
from support.venvs import dist_infos

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
    real = local_indexes_for(*TORCH_DEPS)
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
        drop = cuda_needs(cuda)[1] if cuda is not None else ()
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
    needs, drop = cuda_needs(cuda)
    indexes = local_indexes_for(*TORCH_DEPS, *needs)
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
