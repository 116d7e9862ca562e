"""What a torch build is for — CPU, CUDA X.Y, ROCm X.Y, XPU — decided here, once, for everyone.

Three things say it: a name (an extra ``cu128``, a version's local tag ``2.9.0+cu128``), torch's own answer in a
fresh process (``torch.version.cuda`` / ``.hip``), and the files of an installed build
(:func:`uvextra.core.stack.torch_flavour` reads those and words them with :class:`Flavour`). The probe's verdict, the
stack check, the notebook record, the extra chooser and the renderers all draw on this module; none works the
flavour out on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .vocabulary import FlavourKind

__all__ = ["Flavour", "flavour_of_name", "flavour_of_tag", "flavour_of_torch", "local_tag"]

# The PyTorch index's names (and torch's local version tags): cpu, cu118 … cu130 (the last digit is the minor
# version: cu92 → 9.2, cu130 → 13.0), rocm6.3 / rocm6.2.4, xpu. torch's own tags add suffixes: cpu.cxx11.abi, xpu…
_CUDA = re.compile(r"cu(\d{2,3})")
_ROCM = re.compile(r"rocm(\d+(?:\.\d+)*)")
_LABELS: dict[FlavourKind, str] = {"cpu": "CPU", "cuda": "CUDA", "rocm": "ROCm", "xpu": "XPU"}


@dataclass(frozen=True)
class Flavour:
    """What a build is for: ``cpu``, ``cuda`` (with its version, e.g. ``13.0``), ``rocm``, ``xpu``; and how we know."""

    kind: FlavourKind
    version: str | None = None
    tag: str | None = None  # the local tag that said so ("cu130"), if one did
    source: str = ""

    @property
    def label(self) -> str:
        """``CUDA 13.0 (+cu130)``, ``CPU``, ``ROCm 6.3``."""
        name = _LABELS[self.kind]
        text = f"{name} {self.version}" if self.version else name
        return text + (f" (+{self.tag})" if self.tag else "")

    @property
    def api(self) -> str:
        """The GPU interface a verdict names: ``ROCm`` for a ROCm build, else ``CUDA`` (what torch.cuda answers)."""
        return "ROCm" if self.kind == "rocm" else "CUDA"

    @property
    def build(self) -> str:
        """``CUDA 13.0 build (+cu130)``: the label, worded as a build."""
        return self.label.replace(f" (+{self.tag})", "") + " build" + (f" (+{self.tag})" if self.tag else "")

    @property
    def name(self) -> str:
        """The short name a notebook records: the local tag when the version has one (``cu128``, ``cpu``), else
        ``cu`` + the CUDA version's digits, ``rocm`` + the ROCm version, ``cpu`` / ``xpu``."""
        if self.tag:
            return self.tag
        if self.kind == "cuda" and self.version:
            return "cu" + self.version.replace(".", "")
        if self.kind == "rocm" and self.version:
            return "rocm" + self.version
        return self.kind

    def fits(self, other: Flavour) -> bool:
        """Can a companion of this flavour run with a torch of flavour ``other``?"""
        if self.kind != other.kind:
            return False
        if self.kind == "cuda" and self.version and other.version:  # CUDA major versions must agree (torchvision's
            return self.version.split(".")[0] == other.version.split(".")[0]  # own _check_cuda_version rule)
        return True


def flavour_of_name(name: str | None, source: str = "") -> Flavour | None:
    """``cpu`` → CPU, ``cu128`` → CUDA 12.8, ``rocm6.3`` → ROCm 6.3, ``xpu`` → XPU; any other name: None.

    The one grammar for an extra's name and a local version tag (``cpu.cxx11.abi`` and ``xpu…`` are torch's tags).
    """
    if not name:
        return None
    key = name.strip().lower()
    if key == "cpu" or key.startswith("cpu."):
        return Flavour("cpu", None, None, source)
    if m := _CUDA.fullmatch(key):
        digits = m.group(1)
        return Flavour("cuda", f"{int(digits[:-1])}.{digits[-1]}", None, source)
    if m := _ROCM.fullmatch(key):
        return Flavour("rocm", m.group(1), None, source)
    if key.startswith("xpu"):
        return Flavour("xpu", None, None, source)
    return None


def flavour_of_tag(local: str | None, source: str = "") -> Flavour | None:
    """A version's local tag (``cpu``, ``cu130``, ``rocm6.3``, ``xpu``) as a :class:`Flavour` that names its tag."""
    found = flavour_of_name(local, source)
    return None if found is None else Flavour(found.kind, found.version, local, source)


def local_tag(version: str | None) -> str | None:
    """The local part of a version (``2.9.0+cu128`` → ``cu128``); None when it has none or is no version."""
    if not version:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).local
    except InvalidVersion:
        return None


def _major_minor(version: str) -> str:
    # torch.version.hip is "6.3.42131-fa1d09cbd": users know it as ROCm 6.3.
    nums = re.findall(r"\d+", version)
    return ".".join(nums[:2]) if nums else version


def flavour_of_torch(torch_version: str | None, cuda_version: str | None, hip_version: str | None) -> Flavour | None:
    """What a torch that answered in a fresh process is built for: CUDA when ``torch.version.cuda`` is set, ROCm
    when ``.hip`` is, XPU when its version's tag says so, else CPU; the version's local tag kept (None: no torch)."""
    if not torch_version:
        return None
    tag = local_tag(torch_version)
    if cuda_version:
        return Flavour("cuda", _major_minor(cuda_version), tag, "torch.version.cuda")
    if hip_version:
        return Flavour("rocm", _major_minor(hip_version), tag, "torch.version.hip")
    named = flavour_of_name(tag)
    kind: FlavourKind = "xpu" if named is not None and named.kind == "xpu" else "cpu"
    return Flavour(kind, None, tag, f"its version {torch_version}")
