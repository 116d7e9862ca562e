"""Which accelerator this machine has, and which torch extra (cpu / cuXYZ / rocmX.Y / xpu) fits it.

Detection follows uv's own (crates/uv-torch, ``Accelerator::detect``) so that uvextra and
``uv pip install --torch-backend=auto`` agree: ``UV_CUDA_DRIVER_VERSION``, ``/sys/module/nvidia/version``,
``/proc/driver/nvidia/version``, ``nvidia-smi``, then ROCm's ``rocm_agent_enumerator``.
Stdlib and ``packaging`` only: this module must stay cheap to import inside a kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from .flavour import flavour_of_name

__all__ = [
    "CHECKED_DRIVER_SOURCES",
    "CUDA_DRIVER_TABLE",
    "Accel",
    "choose_extra",
    "detect_rocm",
    "max_cuda_for_driver",
    "min_driver_for_cuda",
    "parse_extra",
    "read_driver_version",
    "toolkit_driver_for_cuda",
]

DRIVER_ENV_VAR = "UV_CUDA_DRIVER_VERSION"
SYS_MODULE_VERSION = "sys/module/nvidia/version"
PROC_DRIVER_VERSION = "proc/driver/nvidia/version"
CHECKED_DRIVER_SOURCES = "/sys/module/nvidia/version, /proc/driver/nvidia/version, nvidia-smi"
# nvidia-smi can hang for seconds on a wedged GPU; a missing answer only means "no driver found".
NVIDIA_SMI_TIMEOUT_S = 5.0
ROCM_TIMEOUT_S = 5.0

# Minimum Linux driver for each CUDA release, as (CUDA, minimum with minor-version compatibility,
# minimum for the full toolkit).
#
# Source: NVIDIA, "CUDA Toolkit Release Notes", Table 2 "CUDA Toolkit and Minimum Required Driver Version for
# CUDA Minor Version Compatibility" (second column) and Table 3 "CUDA Toolkit and Corresponding Driver Versions"
# (third column): https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html, for 11.x
# https://docs.nvidia.com/cuda/archive/11.8.0/cuda-toolkit-release-notes/index.html, for 10.2 and older
# https://docs.nvidia.com/cuda/archive/10.2/cuda-toolkit-release-notes/index.html (Table 1), where the two are the
# same (no minor-version compatibility before 11.1). uv's LINUX_CUDA_DRIVERS (crates/uv-torch/src/backend.rs)
# uses the second column, and so do we: a cu128 wheel bundles its own CUDA runtime and runs on any driver that
# minor-version compatibility admits (>= 525.60.13 for every 12.x), even though the 12.8 toolkit ships 570.26.
# The third column only feeds hints ("your driver relies on minor-version compatibility").
CUDA_DRIVER_TABLE: tuple[tuple[str, str, str | None], ...] = (
    ("13.2", "580", None),  # uv lists cu132; every 13.x needs >= 580 under minor-version compatibility
    ("13.0", "580", "580.65.06"),
    ("12.9", "525.60.13", "575.51.03"),
    ("12.8", "525.60.13", "570.26"),
    ("12.6", "525.60.13", "560.28.03"),
    ("12.5", "525.60.13", "555.42.02"),
    ("12.4", "525.60.13", "550.54.14"),
    ("12.3", "525.60.13", "545.23.06"),
    ("12.2", "525.60.13", "535.54.03"),
    ("12.1", "525.60.13", "530.30.02"),
    ("12.0", "525.60.13", "525.60.13"),
    ("11.8", "450.80.02", "520.61.05"),
    ("11.7", "450.80.02", "515.43.04"),
    ("11.6", "450.80.02", "510.39.01"),
    ("11.5", "450.80.02", "495.29.05"),
    ("11.4", "450.80.02", "470.42.01"),
    ("11.3", "450.80.02", "465.19.01"),
    ("11.2", "450.80.02", "460.27.03"),
    ("11.1", "450.80.02", "455.23"),
    ("11.0", "450.36.06", "450.36.06"),
    ("10.2", "440.33", "440.33"),
    ("10.1", "418.39", "418.39"),
    ("10.0", "410.48", "410.48"),
    ("9.2", "396.26", "396.26"),
    ("9.1", "390.46", "390.46"),
    ("9.0", "384.81", "384.81"),
    ("8.0", "375.26", "375.26"),
)

# Minor-version compatibility holds within a major release from 11.1 on (same source, "CUDA Minor Version
# Compatibility"), so an unlisted minor such as 12.7 or 13.1 still has a known compat minimum.
_MAJOR_COMPAT_MIN: dict[int, str] = {11: "450.80.02", 12: "525.60.13", 13: "580"}

AccelKind = Literal["cpu", "cuda", "rocm", "xpu", "unknown"]

# rocm_agent_enumerator lists gfx000 for the CPU agent; only a real GPU architecture counts.
_GFX_AGENT = re.compile(r"gfx(?!0+$)[0-9a-f]+")


@dataclass(frozen=True)
class Accel:
    """What an extra's name says about the torch build it installs.

    ``version`` is the CUDA version for ``cuda`` ("12.8" for cu128), the ROCm version for ``rocm``
    ("6.3" for rocm6.3), else ``None``. ``unknown`` covers names like ``pypi`` or ``default``.
    """

    name: str
    kind: AccelKind
    version: str | None = None

    @property
    def is_gpu(self) -> bool:
        """True for extras that install a GPU build (CUDA, ROCm, XPU)."""
        return self.kind in ("cuda", "rocm", "xpu")


def parse_extra(name: str) -> Accel:
    """Classify an extra by its name: ``cpu``, ``cuXYZ``, ``rocmX.Y``, ``xpu``, or ``unknown``.

    The last digit of ``cuXYZ`` is the minor version, as on the PyTorch index: cu118 → 11.8, cu92 → 9.2,
    cu130 → 13.0. The grammar is :func:`uvextra.core.flavour.flavour_of_name`'s (a version's local tag reads alike).
    """
    found = flavour_of_name(name)
    return Accel(name, "unknown") if found is None else Accel(name, found.kind, found.version)


def _major_minor(cuda: str) -> tuple[int, int]:
    # Accept "12.8", "12.8.1" and "cu128"; the driver requirement depends on major.minor only.
    accel = parse_extra(cuda)
    text = accel.version if accel.kind == "cuda" and accel.version else cuda
    release = Version(text).release
    return release[0], (release[1] if len(release) > 1 else 0)


def min_driver_for_cuda(cuda: str) -> str | None:
    """The minimum Linux NVIDIA driver that runs a CUDA ``cuda`` build (e.g. "12.8" or "cu128"), or ``None``.

    This is the minor-version-compatibility minimum, as uv uses it: "525.60.13" for any 12.x, "580" for 13.x.
    ``None`` when the version is unknown (older than 8.0, or a future major release).
    """
    major, minor = _major_minor(cuda)
    for version, compat, _toolkit in CUDA_DRIVER_TABLE:
        if Version(version).release[:2] == (major, minor):
            return compat
    if major in _MAJOR_COMPAT_MIN and (major, minor) >= (11, 1):
        return _MAJOR_COMPAT_MIN[major]
    return None


def toolkit_driver_for_cuda(cuda: str) -> str | None:
    """The driver NVIDIA ships with the CUDA ``cuda`` toolkit (GA release), or ``None`` when not listed.

    A driver below this but at least :func:`min_driver_for_cuda` runs the build through minor-version
    compatibility (no PTX JIT for newer GPUs), which is worth saying when a GPU is not seen.
    """
    major, minor = _major_minor(cuda)
    for version, _compat, toolkit in CUDA_DRIVER_TABLE:
        if Version(version).release[:2] == (major, minor):
            return toolkit
    return None


def max_cuda_for_driver(driver: str) -> str | None:
    """The highest CUDA version in :data:`CUDA_DRIVER_TABLE` that a Linux driver ``driver`` can run, or ``None``.

    E.g. "580.95.05" → "13.2", "570.86" → "12.9", "515.65" → "11.8", "300" → None.
    Raises ``ValueError`` when ``driver`` is not a version.
    """
    have = Version(driver)
    for version, compat, _toolkit in CUDA_DRIVER_TABLE:  # newest first
        if have >= Version(compat):
            return version
    return None


def _valid_driver(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        Version(text)
    except InvalidVersion:
        return None
    return text


def _parse_proc_version(content: str) -> str | None:
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Release Build  (...)  <date>"
    # "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.144.03  Release Build ..."
    # uv takes the field after the first double space; a regex on the NVRM line is as strict and
    # survives single-space variants.
    for line in content.splitlines():
        if line.startswith("NVRM version:"):
            fields = line.split("  ")
            if len(fields) > 1 and (found := _valid_driver(fields[1])):
                return found
            if m := re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", line):
                return m.group(1)
    return None


def read_driver_version(
    sys_root: Path = Path("/"),
    *,
    env: Mapping[str, str] | None = None,
    nvidia_smi: str | None = "nvidia-smi",
) -> tuple[str | None, str]:
    """The NVIDIA driver version on this machine and where it was read, in uv's order.

    Returns ``(version, source)``: source is ``UV_CUDA_DRIVER_VERSION``, ``/sys/module/nvidia/version``,
    ``/proc/driver/nvidia/version`` or ``nvidia-smi``; with no driver, ``(None, "not found (checked …)")``.
    ``sys_root`` relocates the /sys and /proc files (tests), ``env`` replaces ``os.environ`` and
    ``nvidia_smi=None`` skips the command.
    """
    environ = os.environ if env is None else env
    override = environ.get(DRIVER_ENV_VAR, "").strip()
    if override:
        # uv refuses to run with an unparsable override; we report it instead of guessing past it.
        if _valid_driver(override):
            return override, DRIVER_ENV_VAR
        return None, f"{DRIVER_ENV_VAR}={override!r} is not a driver version"

    sys_file = sys_root / SYS_MODULE_VERSION
    try:
        if found := _valid_driver(sys_file.read_text(errors="replace")):
            return found, "/" + SYS_MODULE_VERSION
    except OSError:
        pass  # absent or unreadable: fall through to the next source, like uv on NotFound

    proc_file = sys_root / PROC_DRIVER_VERSION
    try:
        if found := _parse_proc_version(proc_file.read_text(errors="replace")):
            return found, "/" + PROC_DRIVER_VERSION
    except OSError:
        pass

    if nvidia_smi:
        try:
            done = subprocess.run(
                [nvidia_smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            done = None  # missing binary or timed out: no driver found this way
        if done is not None and done.returncode == 0:
            lines = done.stdout.strip().splitlines()
            if lines and (found := _valid_driver(lines[0])):
                return found, "nvidia-smi"

    return None, f"not found (checked {CHECKED_DRIVER_SOURCES})"


def detect_rocm(path: str | None = None) -> bool:
    """True when ``rocm_agent_enumerator`` is on ``PATH`` (or ``path``) and lists a GPU agent (``gfx…``).

    Cheap: no ROCm library is loaded, and a machine without ROCm answers at once (no such binary).
    """
    exe = shutil.which("rocm_agent_enumerator", path=path)
    if exe is None:
        return False
    try:
        done = subprocess.run([exe], capture_output=True, text=True, timeout=ROCM_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if done.returncode != 0:
        return False
    return any(_GFX_AGENT.fullmatch(line.strip()) for line in done.stdout.splitlines())


def choose_extra(extras: Sequence[str], driver: str | None, rocm: bool = False) -> tuple[str, str]:
    """Pick the extra that fits this machine and say why in one line.

    ``extras`` are the project's extras (names like ``cpu``, ``cu128``, ``rocm6.3``; others are ignored),
    ``driver`` the NVIDIA driver version (``None``: no driver), ``rocm`` whether a ROCm GPU was found.
    An NVIDIA driver wins over ROCm (uv's order); among CUDA extras the highest one the driver can run wins.
    Raises ``ValueError`` when no extra is named like a backend, or when ``driver`` is not a version.
    """
    accels = [parse_extra(e) for e in extras]
    known = [a for a in accels if a.kind != "unknown"]
    if not known:
        raise ValueError(
            f"none of the extras {', '.join(extras) or '(none)'} names a torch backend "
            "(expected names like cpu, cu128, rocm6.3, xpu); pass the extra to use explicitly"
        )
    cpu = next((a for a in known if a.kind == "cpu"), None)
    cudas = sorted((a for a in known if a.kind == "cuda"), key=lambda a: Version(a.version or "0"), reverse=True)
    rocms = sorted((a for a in known if a.kind == "rocm"), key=lambda a: Version(a.version or "0"), reverse=True)

    why_not: str
    if driver is not None:
        have = Version(driver)
        max_cuda = max_cuda_for_driver(driver)
        fitting = [a for a in cudas if (need := min_driver_for_cuda(a.name)) is not None and have >= Version(need)]
        if fitting:
            best = fitting[0]
            # 13.x minors missing from the table still run under minor-version compatibility.
            limit = max(filter(None, [max_cuda, best.version]), key=Version)
            reason = f"{best.name}: NVIDIA driver {driver} supports CUDA ≤ {limit}; highest CUDA extra it can run"
            return best.name, reason
        supports = f"supports CUDA ≤ {max_cuda}" if max_cuda else "is older than every CUDA release known here"
        if cudas:
            lowest = cudas[-1]
            need = min_driver_for_cuda(lowest.name)
            needs = f" ({lowest.name} needs ≥ {need})" if need else ""
            why_not = f"NVIDIA driver {driver} {supports}, below every CUDA extra{needs}"
        else:
            why_not = f"NVIDIA driver {driver} found but no CUDA extra (cuXYZ) among {', '.join(extras)}"
    else:
        why_not = f"no NVIDIA driver found (checked {CHECKED_DRIVER_SOURCES})"

    if rocm:
        if rocms:
            best = rocms[0]
            return best.name, f"{best.name}: ROCm GPU found (rocm_agent_enumerator); highest ROCm extra"
        why_not += "; a ROCm GPU was found but there is no rocmX.Y extra"

    if cpu is not None:
        return cpu.name, f"{cpu.name}: {why_not}"
    # No cpu extra: any torch build still runs on the CPU, so fall back to the least demanding GPU extra
    # rather than refusing, and say that the GPU will not be used.
    fallback = (cudas[-1:] or rocms[-1:] or known[:1])[0]
    return fallback.name, f"{fallback.name}: {why_not}; no cpu extra, so torch will run on the CPU only"
