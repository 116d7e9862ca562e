"""The probe's judge: what the child's run and answer mean, in one line for the user, and the verdict's state.

Pure: it runs no process and reads no file. :mod:`uvextra.core.cuda_probe` collects the child (timeouts, kill, exit
status, output), :func:`uvextra.core.probe_child.parse_output` reads its answer; :func:`judge` decides the
:class:`ProbeResult` — its words and its :data:`~uvextra.core.vocabulary.VerdictState`, which the renderers only draw.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from .accelerators import max_cuda_for_driver, min_driver_for_cuda, parse_extra, toolkit_driver_for_cuda
from .flavour import Flavour, flavour_of_torch
from .probe_child import ChildOutput, ChildRun, CompanionAnswer, Device, TorchAnswer
from .vocabulary import VerdictState

__all__ = ["NOT_INSTALLED", "ProbeResult", "judge", "judge_torch", "make_verdict"]

NOT_INSTALLED = "torch is not installed"

_STAGE_WORDS = {
    # the stage the child announced last → (what crashed, what did not finish)
    None: ("the probe process", "the probe process did not answer"),
    "import": ("import torch", "torch import did not finish"),
    "cuda": ("torch.cuda.is_available()", "torch.cuda.is_available() did not return"),
}


@dataclass
class ProbeResult:
    """What a fresh interpreter of the target environment says about torch and its GPU.

    ``verdict`` is one line for the user and ``state`` what it amounts to (``available`` only when CUDA or HIP
    works: then ``ok``); ``error`` holds the technical detail when the probe itself failed (crash, timeout,
    exception, missing interpreter).
    """

    torch_version: str | None = None
    cuda_version: str | None = None
    hip_version: str | None = None
    cuda_available: bool | None = None
    devices: list[Device] = field(default_factory=list)
    driver_version: str | None = None
    driver_source: str = ""
    verdict: str = ""
    state: VerdictState = "unavailable"
    error: str | None = None
    elapsed_s: float = 0.0
    # what the fresh process saw of each companion (uvextra.core.stack words it)
    companions: dict[str, CompanionAnswer] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """CUDA (or HIP) works in the target environment."""
        return self.state == "available"

    @property
    def flavour(self) -> Flavour | None:
        """What the torch that answered is built for (None: no torch answered)."""
        return flavour_of_torch(self.torch_version, self.cuda_version, self.hip_version)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary every surface (CLI ``--json``, widget, report) shows; the report's JSON adds
        ``state`` beside it."""
        return {
            "torch_version": self.torch_version,
            "cuda_version": self.cuda_version,
            "hip_version": self.hip_version,
            "cuda_available": self.cuda_available,
            "devices": [dict(d) for d in self.devices],
            "driver_version": self.driver_version,
            "verdict": self.verdict,
            "ok": self.ok,
            "error": self.error,
        }


# ---------------------------------------------------------------------------------------------------- torch's answer


def _short(version: str) -> str:
    # an extra's "12.8" or "6.2.4" as the build's major.minor is written ("6.2")
    nums = re.findall(r"\d+", version)
    return ".".join(nums[:2]) if nums else version


def _devices_text(devices: Sequence[Device]) -> str:
    counts = Counter((d.get("name") or "unknown device", d.get("capability")) for d in devices)
    return ", ".join(f"{n}× {name}" + (f" ({cap})" if cap else "") for (name, cap), n in counts.items())


def _hides_all_gpus(cuda_visible_devices: str | None) -> bool:
    # CUDA reads the list up to its first invalid entry: "", "-1", "none", "NoDevFiles" all leave no device.
    if cuda_visible_devices is None:
        return False
    first = cuda_visible_devices.strip().split(",")[0].strip()
    return not (first.isdigit() or first.startswith(("GPU-", "MIG-")))


def _mismatch_note(build: Flavour, selected: Sequence[str]) -> str:
    # A build that does not match the selected extra is the stale-install symptom (uv#16368): say so even when
    # the GPU works, since the environment is not what the lock asks for.
    chosen = [a for a in map(parse_extra, selected) if a.kind != "unknown"]
    if not chosen:
        return ""
    for a in chosen:
        if a.kind == build.kind and (a.version is None or build.version is None or _short(a.version) == build.version):
            return ""
    label = {"cuda": "CUDA", "rocm": "ROCm"}.get(build.kind, build.kind.upper())
    desc = f"{label} {build.version}" if build.version else label
    return f"; note: {desc} build installed while extra {chosen[0].name} is selected"


def _available(build: Flavour, devices: Sequence[Device], driver: str | None, selected: Sequence[str]) -> str:
    listed = _devices_text(devices)
    if build.kind == "rocm":
        head = f"ROCm available: {listed}" if listed else "ROCm available"
        head += f", ROCm {build.version or ''}"
    else:
        head = f"CUDA available: {listed}" if listed else "CUDA available"
        if driver:
            head += f", driver {driver}"
    return head + _mismatch_note(build, selected)


def _no_gpu_build(build: Flavour, torch_version: str, gpu_extras: Sequence[str]) -> tuple[str, VerdictState]:
    label = "CPU" if build.kind == "cpu" else "XPU"
    if gpu_extras:
        return (
            f"not available: {label} build of torch installed ({torch_version}) while extra {gpu_extras[0]} "
            "is selected",
            "unavailable",
        )
    if build.kind == "xpu":
        return f"XPU build of torch ({torch_version}); uvextra checks CUDA and ROCm only", "cpu"
    return f"CPU build of torch ({torch_version}); CUDA not expected", "cpu"


def _rocm_unseen(build: Flavour, rocm_runtime: bool | None, tail: str) -> str:
    rocm = build.version or ""
    if not rocm_runtime:
        return f"not available: ROCm {rocm} build but no ROCm runtime{tail}"
    return (
        f"not available: ROCm {rocm} build and a ROCm GPU present, but torch sees no device (check "
        f"HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES / container access to /dev/kfd and /dev/dri){tail}"
    )


def _cuda_unseen(build: Flavour, driver: str | None, cuda_visible_devices: str | None, tail: str) -> str:
    cuda = build.version or ""
    if not driver:
        return f"not available: CUDA {cuda} build but no NVIDIA driver on this machine{tail}"
    need = min_driver_for_cuda(cuda)
    try:
        have: Version | None = Version(driver)
    except InvalidVersion:
        have = None
    if need is not None and have is not None and have < Version(need):
        top = max_cuda_for_driver(driver)
        supports = f"supports up to CUDA {top}" if top else "is older than every CUDA release known here"
        return f"not available: driver {driver} {supports}, this build needs {cuda} (driver ≥ {need}){tail}"
    if _hides_all_gpus(cuda_visible_devices):
        hint = (
            "check CUDA_VISIBLE_DEVICES / container GPU access; "
            f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU"
        )
    else:
        hint = "check that this process can see the GPU: nvidia-smi, /dev/nvidia*, the container's --gpus"
        toolkit = toolkit_driver_for_cuda(cuda)
        if toolkit and have is not None and have < Version(toolkit):
            hint += f"; driver is older than CUDA {cuda}'s own {toolkit} and relies on minor-version compatibility"
    return f"not available: CUDA {cuda} build and driver {driver} present, but torch sees no device ({hint}){tail}"


def judge_torch(
    torch_version: str | None,
    cuda_version: str | None,
    hip_version: str | None,
    available: bool | None,
    devices: Sequence[Device],
    driver_version: str | None,
    selected_extras: Sequence[str] = (),
    *,
    cuda_visible_devices: str | None = None,
    torch_warnings: Sequence[str] = (),
    rocm_runtime: bool | None = None,
) -> tuple[str, VerdictState]:
    """One line that says whether the GPU works and, if not, why; and the verdict's state.

    A pure function of what the probe saw: the torch build (version, ``torch.version.cuda`` / ``.hip``), whether
    ``torch.cuda.is_available()``, the devices, the NVIDIA driver, the selected extras; optionally the child's
    ``CUDA_VISIBLE_DEVICES``, the warnings torch raised while initialising CUDA, and whether a ROCm GPU was found.
    """
    if torch_version is None:
        return NOT_INSTALLED, "no-torch"
    build = flavour_of_torch(torch_version, cuda_version, hip_version) or Flavour("cpu")
    if available:
        return _available(build, devices, driver_version, selected_extras), "available"
    if build.kind in ("cpu", "xpu"):
        return _no_gpu_build(build, torch_version, [e for e in selected_extras if parse_extra(e).is_gpu])
    tail = _mismatch_note(build, selected_extras) + (f"; torch says: {torch_warnings[0]}" if torch_warnings else "")
    if build.kind == "rocm":
        return _rocm_unseen(build, rocm_runtime, tail), "unavailable"
    return _cuda_unseen(build, driver_version, cuda_visible_devices, tail), "unavailable"


def make_verdict(
    torch_version: str | None,
    cuda_version: str | None,
    hip_version: str | None,
    available: bool | None,
    devices: Sequence[Device],
    driver_version: str | None,
    selected_extras: Sequence[str] = (),
    *,
    cuda_visible_devices: str | None = None,
    torch_warnings: Sequence[str] = (),
    rocm_runtime: bool | None = None,
) -> tuple[str, bool]:
    """:func:`judge_torch`'s line, and whether the GPU works (``ok``)."""
    verdict, state = judge_torch(
        torch_version,
        cuda_version,
        hip_version,
        available,
        devices,
        driver_version,
        selected_extras,
        cuda_visible_devices=cuda_visible_devices,
        torch_warnings=torch_warnings,
        rocm_runtime=rocm_runtime,
    )
    return verdict, state == "available"


# ---------------------------------------------------------------------------------------------------- the run


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _companion_that_died(
    run: ChildRun, out: ChildOutput, timeout: float, modules: Mapping[str, str]
) -> CompanionAnswer | None:
    """torch's answer came through, then a companion's import crashed or hung: that companion's failure only."""
    if out.answer is None or not out.stage or not out.stage.startswith("companion:"):
        return None
    name = out.stage.split(":", 1)[1]
    if name in out.companions:
        return None
    rc = run.returncode
    module = modules.get(name, name)  # what was imported: torch_hang, not torch-hang
    if run.timed_out:
        how = f"did not finish within {timeout:g} s (probe killed)"
    elif rc is not None and rc < 0:
        how = f"crashed (signal {_signal_name(rc)})"
    else:
        how = f"exited with code {rc}"
    return CompanionAnswer(name, False, f"import {module} {how}")


def _no_answer(res: ProbeResult, run: ChildRun, stage: str | None, timeout: float) -> ProbeResult:
    """The child was killed at the timeout, or ended before it answered: blamed on the stage it had reached."""
    what, unfinished = _STAGE_WORDS.get(stage, _STAGE_WORDS[None])
    rc = run.returncode or 0
    if run.timed_out:
        res.verdict = f"{unfinished} within {timeout:g} s (probe killed)"
    elif rc < 0:
        res.verdict = f"{what} crashed (signal {_signal_name(rc)})"
    else:
        res.verdict = f"{what} exited with code {rc} before reporting"
    res.error = run.stderr_tail
    return res


def _answered(
    res: ProbeResult,
    run: ChildRun,
    answer: TorchAnswer,
    selected_extras: Sequence[str],
    rocm: Callable[[], bool],
) -> ProbeResult:
    if answer.status == "missing":
        left = f" (an empty torch folder is left: {answer.leftover[0]})" if answer.leftover else ""
        res.verdict, res.state = NOT_INSTALLED + left, "no-torch"
        return res
    if answer.status == "import_error":
        res.error = answer.error or run.stderr_tail
        res.verdict = f"import torch failed: {res.error}"
        return res
    res.torch_version, res.cuda_version, res.hip_version = answer.torch_version, answer.cuda_version, answer.hip_version
    res.cuda_available, res.devices, res.error = answer.cuda_available, list(answer.devices), answer.error
    warnings = list(answer.warnings)
    if res.error:
        warnings.insert(0, f"torch.cuda.is_available() raised {res.error}")
    res.verdict, state = judge_torch(
        res.torch_version,
        res.cuda_version,
        res.hip_version,
        res.cuda_available,
        res.devices,
        res.driver_version,
        selected_extras,
        cuda_visible_devices=answer.cuda_visible_devices,
        torch_warnings=warnings,
        # Only a ROCm build that sees no GPU needs the (cheap) ROCm check.
        rocm_runtime=rocm() if res.hip_version and not res.cuda_available else None,
    )
    rc = run.returncode
    if rc not in (0, None) and not res.error:
        # The report came through, but the child died afterwards (e.g. at interpreter shutdown).
        how = f"signal {_signal_name(rc)}" if rc < 0 else f"code {rc}"
        res.error = f"probe exited with {how} after reporting"
    # a failure beside the answer (torch.cuda raised, the child died) is never "nothing wrong"
    res.state = state if state == "available" or not res.error else "unavailable"
    return res


def _no_rocm() -> bool:
    return False


def judge(
    run: ChildRun,
    out: ChildOutput,
    *,
    python: str,
    timeout: float,
    driver: str | None = None,
    driver_source: str = "",
    selected_extras: Sequence[str] = (),
    modules: Mapping[str, str] | None = None,
    rocm: Callable[[], bool] = _no_rocm,
) -> ProbeResult:
    """The :class:`ProbeResult` of a collected ``run`` of the child whose output parsed to ``out``.

    ``python`` is the interpreter probed, ``timeout`` the seconds it had, ``driver`` the NVIDIA driver found (and
    where), ``selected_extras`` the extras the user picked, ``modules`` each companion's module (package → module);
    ``rocm`` says whether a ROCm GPU is present — asked only of a ROCm build that sees no device.
    """
    res = ProbeResult(driver_version=driver, driver_source=driver_source)
    if run.launch_error is not None:
        res.verdict, res.error = f"target Python not found or not runnable: {python}", run.launch_error
        return res
    res.elapsed_s = run.elapsed_s
    res.companions = dict(out.companions)
    died = _companion_that_died(run, out, timeout, modules or {})
    if died is not None:
        res.companions[died.package] = died
        run = ChildRun(run.stdout, run.stderr, 0, False, run.elapsed_s)
    if run.timed_out or out.answer is None:
        return _no_answer(res, run, out.stage, timeout)
    return _answered(res, run, out.answer, selected_extras, rocm)
