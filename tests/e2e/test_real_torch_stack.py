"""Issue 10 on real wheels: the classic companion mismatch, and the stack that fits.

Found through pip's configuration (``tests/support/pip_indexes.py``), never a hard-coded folder; each test skips, naming
what is missing, elsewhere. The project (written by ``test_real_torch.write_real_project``) routes torch per extra:
``cpu`` from the find-links folder (the real ``torch-2.13.0+cpu``), ``cu130`` from the simple index with PyPI's
CUDA torch. torchvision is left unrouted, as in pytorch/vision#9077: for ``cpu`` uv locks PyPI's torchvision whose
``Requires-Dist: torch==2.13.0`` accepts ``2.13.0+cpu`` (PEP 440 ignores the local part) — a CUDA 13.0 build that
cannot load beside a CPU torch. For ``cu130`` PyPI's torchvision is right: both are CUDA builds, and ``ops.nms`` on
CPU tensors runs without a GPU.

Times with uv's cache warm (``~/.cache/uvextra-tests/uv-cache-realtorch``, shared with ``test_real_torch.py``): the
mismatch 12-19 s (switch, status with the probe, check without it), the CUDA stack 20-26 s (3 GB linked, the
first ``import torch`` compiles its bytecode): both in the default run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

from support.cli import run_cli
from support.pip_indexes import _links, _requires, cpu_torch_wheel, cuda_torch, indexes_with
from support.real_torch import (
    COLOUR,
    TORCH_DEPS,
    cuda_needs,
    errors,
    local_indexes_for,
    persistent_uv_cache,
    uvextra,
    write_real_project,
)
from support.run import run_uv
from support.venvs import dist_infos

NMS = "RuntimeError: operator torchvision::nms does not exist"  # pytorch/vision#9077, measured here
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"


def torchvision_for(torch_version: str) -> tuple[str, str | None] | None:
    """(version, the local tag its version.py states) of the newest torchvision on pip's local indexes whose pin on
    torch accepts ``torch_version`` — with the local part, as a resolver reads it (which is the trap)."""
    found = []
    for index in indexes_with("torchvision"):
        for name, wheel in _links(index, "torchvision").items():
            if not (name.endswith(".whl") and f"-{TAG}-" in name and wheel.is_file()):
                continue
            pins = [Requirement(r) for r in _requires(wheel) if Requirement(r).name == "torch"]
            if pins and all(p.specifier.contains(torch_version, prereleases=True) for p in pins):
                found.append((parse_wheel_filename(name)[1], wheel))
    if not found:
        return None
    version, wheel = max(found)
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("torchvision/version.py").decode() if "torchvision/version.py" in zf.namelist() else ""
    m = re.search(r"""^__version__\s*=\s*['"][^'"+]+\+([^'"]+)['"]""", text, re.M)
    return str(version), (m.group(1) if m else None)


@pytest.fixture(scope="module")
def real_stack(tmp_path_factory: pytest.TempPathFactory, uv_env, uv_new):
    """The misrouted project, locked once: (project, env, cpu torch, cpu's torchvision, cuda torch, cuda's one)."""
    wheel, cuda = cpu_torch_wheel(), cuda_torch()
    if wheel is None:
        pytest.skip("no torch-*+cpu wheel for this Python in pip's find-links folders")
    cpu_torch = str(parse_wheel_filename(wheel.name)[1])
    cpu_tv = torchvision_for(cpu_torch)
    if cpu_tv is None:
        pytest.skip(f"no torchvision on pip's file:// indexes whose torch pin accepts {cpu_torch}")
    cuda_tv = torchvision_for(cuda.version) if cuda is not None else None
    needs, drop = cuda_needs(cuda) if cuda is not None and cuda_tv is not None else ([], ())
    indexes = local_indexes_for(*TORCH_DEPS, "numpy", "pillow", *needs)
    if indexes is None:
        pytest.skip(
            f"pip's file:// indexes do not list all of {', '.join(sorted({*TORCH_DEPS, *needs}))}, numpy, pillow"
        )
    also = {"cpu": (f"torchvision=={cpu_tv[0]}",)}
    if cuda_tv is not None:
        also[cuda.extra] = (f"torchvision=={cuda_tv[0]}",)
    project = write_real_project(
        tmp_path_factory.mktemp("realstack") / "project",
        cpu=wheel,
        cuda=cuda if cuda_tv else None,
        indexes=indexes,
        drop=drop,
        also=also,
    )
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=persistent_uv_cache(), **COLOUR)
    run_uv(uv_new, "lock", env=env, cwd=project, timeout=300)
    return project, env, cpu_torch, cpu_tv, (cuda if cuda_tv else None), cuda_tv


def text_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=600)


def rows(text: str, key: str) -> list[str]:
    return [line.split("  ", 1)[1].strip() for line in text.splitlines() if line.startswith(key + " ")]


def _venv(path: Path, uv: str, env: dict[str, str]) -> Path:
    run_uv(uv, "venv", "--quiet", "--python", sys.executable, path, env=env)
    return path / "bin" / "python"


def test_real_cpu_torch_beside_pypis_cuda_torchvision_is_caught(real_stack, tmp_path: Path, uv_new) -> None:
    project, env, cpu_torch, (tv, tv_tag), _, _ = real_stack
    python = _venv(tmp_path / "venv", uv_new, env)
    where = ("--project", str(project), "--python", str(python))
    flavour = f"CUDA {tv_tag[2:-1]}.{tv_tag[-1]} build (+{tv_tag})" if tv_tag else "CUDA"

    proc = text_run("switch", "cpu", *where, env=env)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert dist_infos(python.parents[1], "torchvision") == [f"torchvision-{tv}.dist-info"]
    assert rows(out, "drift") == ["none — installed packages match the lock"]
    (stack,) = rows(out, "stack")
    assert stack.startswith(
        f"FAILS: torchvision {tv} is a {flavour}, torch is {cpu_torch}: `{NMS}` (its _C.so needs libc10_cuda.so, "
    ), stack
    (routing,) = rows(out, "routing")
    assert routing.startswith(
        "[tool.uv.sources] routes torch per extra but not torchvision: for extra cpu the lock "
        "takes torchvision from file://"
    ), routing
    assert "torchvision = [" in out and '{ index = "torch-cpu", extra = "cpu" },' in out, out
    assert rows(out, "next")[0].startswith("`uvextra repair` cannot fix this"), out
    assert "\x1b" not in out + proc.stderr

    code, report, _ = uvextra("status", *where, env=env)  # with the probe: the dynamic evidence, in the JSON
    assert (code, report["exit_code"], errors(report)) == (1, 1, []), report
    (entry,) = report["probe"]["stack"]
    assert {k: entry[k] for k in ("package", "version", "built_for", "ok")} == {
        "package": "torchvision",
        "version": tv,
        "built_for": flavour.replace(" build", ""),
        "ok": False,
    }, entry
    assert entry["error"] == NMS, entry
    assert (
        f"its pin torch=={cpu_torch.split('+')[0]} accepts {cpu_torch}: PEP 440 ignores the local part"
        in entry["evidence"]
    ), entry
    assert f"torchvision/version.py says {tv}+{tv_tag}" in entry["evidence"], entry
    assert report["probe"]["verdict"] == f"CPU build of torch ({cpu_torch}); CUDA not expected"
    assert [(r["package"], r["extra"]) for r in report["routing"]] == [("torchvision", "cpu")], report["routing"]

    check = text_run("check", *where, env=env)  # no probe: the files alone say it
    assert check.returncode == 1, check.stdout + check.stderr
    assert rows(check.stdout, "stack")[0].startswith(
        f"FAILS: torchvision {tv} is a {flavour}, torch is {cpu_torch} (its _C.so needs"
    ), check.stdout
    print(f"\nswitch cpu: {stack}\nrouting: {routing}")


def test_real_cuda_torch_and_its_torchvision_fit(real_stack, tmp_path: Path, uv_new) -> None:
    project, env, _, _, cuda, cuda_tv = real_stack
    if cuda is None:
        pytest.skip("no PyPI CUDA torch with a torchvision for it (and its dependencies) on pip's file:// indexes")
    tv, tag = cuda_tv
    python = _venv(tmp_path / "venv", uv_new, env)
    try:
        code, report, took = uvextra("switch", cuda.extra, "--project", str(project), "--python", str(python), env=env)
        assert (code, errors(report), report["failure"], report["routing"]) == (0, [], None, []), report
        (entry,) = report["probe"]["stack"]
        assert (entry["package"], entry["version"], entry["ok"], entry["error"]) == ("torchvision", tv, True, None)
        assert entry["why"] == (
            f"torchvision {tv}: a CUDA {cuda.cuda} build (+{tag}), fits torch {cuda.version}; ops.nms on two boxes ran"
        ), entry
        print(f"\nswitch {cuda.extra} ({took:.1f} s): {entry['why']}")
    finally:
        shutil.rmtree(python.parents[1], ignore_errors=True)  # 5 GB of links
