"""The PyTorch stack, verified together: is every companion (torchvision, torchaudio, anything pinning torch or
linking against it) built for the torch that is installed — and if the project's routing is the cause, what fixes it.

The classic failure (pytorch/vision#9077, #9085): a project routes ``torch`` to the CPU index per extra but leaves
``torchvision`` unrouted; the resolver takes PyPI's CUDA-built torchvision, whose ``Requires-Dist: torch==X`` accepts
``X+cpu`` because PEP 440 ignores the local part, and ``import torchvision`` fails with ``operator torchvision::nms
does not exist``. Static evidence comes from files only (no import): the companion's pin on torch, the flavour its
version's local tag, its ``version.py``, its bundled libraries and its extensions' ``DT_NEEDED`` entries state.
Dynamic evidence (an import and one operation that needs the compiled part) comes from the probe's fresh process.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib


from . import cache as _cache
from .flavour import Flavour, flavour_of_tag
from .flavour import local_tag as _local
from .installed import Installed, record_paths
from .names import canonicalize_name

if TYPE_CHECKING:
    from packaging.requirements import Requirement

    from .probe_child import CompanionAnswer
    from .vocabulary import FlavourKind

__all__ = [
    "Flavour",
    "Misroute",
    "StackEntry",
    "check_stack",
    "companions",
    "elf_needed",
    "flavour_of_tag",
    "lint_routing",
    "merge_dynamic",
]

#: Companions checked whenever installed, whatever their metadata says (their compiled parts are built per torch).
KNOWN = ("torchvision", "torchaudio")
# Libraries a CUDA (or ROCm) build of torch ships and a companion's extension links against: seen in PyPI's
# torchvision 0.28.0 (_C.so needs libc10_cuda.so, libtorch_cuda.so; torchvision.libs/ ships libcudart.so.13).
_CUDA_LIBS = re.compile(r"^lib(?:c10_cuda|torch_cuda|cudart|cublas|cudnn|nvrtc|nvToolsExt)\b")
_ROCM_LIBS = re.compile(r"^lib(?:c10_hip|torch_hip|amdhip64|hipblas|rocblas|MIOpen)\b")
_TORCH_LIBS = re.compile(r"^lib(?:c10|torch|torch_cpu|torch_python)\.so")
_SONAME_BYTES = re.compile(rb"lib[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*?\.so(?:\.\d+)*")
_SCAN_MAX = 64 << 20  # the byte scan (for a file that is no ELF we can read) reads at most this much


# What a flavour is (names, local tags, what torch says) is core/flavour.py's; this module reads one from files.


# ---------------------------------------------------------------------------------------------------- files


def _record_paths(dist: Installed) -> list[str]:
    return record_paths(dist.dist_info)


def _site(dist: Installed) -> Path:
    return dist.dist_info.parent


def _read_text(path: Path, limit: int = 1 << 16) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _module_name(dist: Installed, paths: Sequence[str]) -> str:
    top = _read_text(dist.dist_info / "top_level.txt").split()
    if top:
        return top[0]
    tops = sorted(
        {p.split("/")[0] for p in paths if p.count("/") >= 1 and p.endswith("/__init__.py") and p.count("/") == 1}
    )
    want = dist.name.replace("-", "_")
    return want if want in tops or not tops else tops[0]


def _elf_header(ident: bytes) -> tuple[bool, str, int, int, int] | None:
    """(64-bit, byte order, program header offset, entry size, entry count) of an ELF file's first 64 bytes."""
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
    if is64:
        (phoff,) = struct.unpack_from(end + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
    else:
        (phoff,) = struct.unpack_from(end + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
    return is64, end, phoff, phentsize, phnum


def _segments(
    table: bytes, is64: bool, end: str, phentsize: int, phnum: int
) -> tuple[list[tuple[int, int, int]], tuple[int, int] | None]:
    """The loaded segments (vaddr, offset, size) and the dynamic segment (offset, size) of a program header table."""
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        at = i * phentsize
        if is64:
            p_type, _fl, off, vaddr, _pa, filesz = struct.unpack_from(end + "IIQQQQ", table, at)
        else:
            p_type, off, vaddr, _pa, filesz = struct.unpack_from(end + "IIIII", table, at)
        if p_type == 1:
            loads.append((vaddr, off, filesz))
        elif p_type == 2:
            dynamic = (off, filesz)
    return loads, dynamic


def _dynamic_entries(raw: bytes, is64: bool, end: str) -> tuple[list[int], int | None]:
    """The DT_NEEDED string offsets and the DT_STRTAB address of a dynamic section."""
    fmt, size = (end + "qQ", 16) if is64 else (end + "iI", 8)
    needed: list[int] = []
    strtab = None
    for at in range(0, len(raw) - size + 1, size):
        tag, val = struct.unpack_from(fmt, raw, at)
        if tag == 0:
            break
        if tag == 1:
            needed.append(val)
        elif tag == 5:
            strtab = val
    return needed, strtab


def elf_needed(path: Path) -> list[str] | None:
    """The ``DT_NEEDED`` sonames of an ELF shared object, read from its program headers; None when it is no ELF
    (or one this small reader cannot follow). Pure Python: a few small reads, whatever the file's size."""
    try:
        with open(path, "rb") as f:
            header = _elf_header(f.read(64))
            if header is None:
                return None
            is64, end, phoff, phentsize, phnum = header
            f.seek(phoff)
            loads, dynamic = _segments(f.read(phentsize * phnum), is64, end, phentsize, phnum)
            if dynamic is None:
                return []
            f.seek(dynamic[0])
            needed, strtab = _dynamic_entries(f.read(dynamic[1]), is64, end)
            if strtab is None:
                return None
            base = next((off + strtab - va for va, off, sz in loads if va <= strtab < va + sz), None)
            if base is None:
                return None
            names = []
            for offset in needed:
                f.seek(base + offset)
                names.append(f.read(256).split(b"\0", 1)[0].decode("utf-8", "replace"))
            return names
    except (OSError, struct.error):
        return None


def _sonames(path: Path) -> list[str]:
    """What a compiled extension links against: its DT_NEEDED, else the soname strings its bytes carry."""
    needed = elf_needed(path)
    if needed is not None:
        return needed
    try:
        with open(path, "rb") as f:
            data = f.read(_SCAN_MAX)
    except OSError:
        return []
    return sorted({m.decode("ascii", "replace") for m in _SONAME_BYTES.findall(data)})


# ---------------------------------------------------------------------------------------------------- evidence


@dataclass
class _Evidence:
    flavour: Flavour | None = None
    notes: list[str] = field(default_factory=list)  # every statement the files make, in words
    needs_cuda: list[str] = field(default_factory=list)  # the CUDA/ROCm libraries its extensions link against
    extension: str | None = None  # the extension that needs them ("_C.so")
    version_py: str | None = None


def _companion_evidence(dist: Installed, paths: Sequence[str], module: str) -> _Evidence:
    ev = _Evidence()
    tagged = flavour_of_tag(_local(dist.version), f"its version {dist.version}")
    vp = next((p for p in paths if p == f"{module}/version.py"), None)
    if vp:
        m = re.search(r"""^__version__\s*(?::[^=\n]*)?=\s*['"]([^'"]+)['"]""", _read_text(_site(dist) / vp), re.M)
        if m:
            ev.version_py = m.group(1)
            if m.group(1) != dist.version:
                ev.notes.append(f"{vp} says {m.group(1)}")
            tagged = tagged or flavour_of_tag(_local(m.group(1)), f"{vp} says {m.group(1)}")
    for p in paths:
        name = p.rsplit("/", 1)[-1]
        if ".libs/" in p and name.startswith("libcudart"):
            m = re.search(r"\.so\.(\d+)", name)
            ev.notes.append(f"{p.split('/')[0]}/ ships {name}")
            tagged = tagged or Flavour("cuda", m.group(1) if m else None, None, f"it ships {name}")
    for p in paths:
        if not (p.endswith(".so") or ".so." in p.rsplit("/", 1)[-1]) or ".libs/" in p:
            continue
        names = _sonames(_site(dist) / p)
        cuda = [n for n in names if _CUDA_LIBS.match(n)]
        rocm = [n for n in names if _ROCM_LIBS.match(n)]
        if cuda or rocm:
            ev.needs_cuda = sorted(set(cuda or rocm))
            ev.extension = p.rsplit("/", 1)[-1]
            ev.notes.append(f"its {ev.extension} needs {', '.join(ev.needs_cuda)}")
            tagged = tagged or Flavour(
                "cuda" if cuda else "rocm", None, None, f"its {ev.extension} needs {ev.needs_cuda[0]}"
            )
            break
        if tagged is None and any(_TORCH_LIBS.match(n) for n in names):
            tagged = Flavour("cpu", None, None, f"its {p.rsplit('/', 1)[-1]} links torch but no CUDA library")
    ev.flavour = tagged
    return ev


def torch_flavour(torch: Installed) -> Flavour | None:
    """What the installed torch was built for: its local tag, else torch/version.py, else its nvidia-* needs."""
    found = flavour_of_tag(_local(torch.version), f"its version {torch.version}")
    if found:
        return found
    text = _read_text(_site(torch) / "torch" / "version.py")
    keys: tuple[tuple[str, FlavourKind], ...] = (("cuda", "cuda"), ("hip", "rocm"))
    for key, kind in keys:
        m = re.search(rf"""^{key}\s*(?::[^=\n]*)?=\s*(?:['"]([^'"]+)['"]|None)""", text, re.M)
        if m and m.group(1):
            version = ".".join(re.findall(r"\d+", m.group(1))[:2])
            return Flavour(kind, version, None, f"torch/version.py says {key} = {m.group(1)!r}")
    if text and re.search(r"^cuda\s*(?::[^=\n]*)?=\s*None", text, re.M):
        hip = re.search(r"""^hip\s*(?::[^=\n]*)?=\s*['"]""", text, re.M)
        if not hip:
            return Flavour("cpu", None, None, "torch/version.py says cuda = None")
    if any(
        canonicalize_name(r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip()).startswith("nvidia-")
        for r in torch.requires
    ):
        return Flavour("cuda", None, None, "it requires nvidia-* libraries")
    return None


def _torch_pin(dist: Installed) -> Requirement | None:
    for line in dist.requires:
        head = line.lstrip(" \t")  # only a line that names torch is parsed (packaging's parser is not imported else)
        if head[:5].lower() != "torch" or head[5:6].isalnum() or head[5:6] in ("-", "_", "."):
            continue
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) == "torch" and not (req.marker and "extra" in str(req.marker)):
            return req
    return None


def _ships_extension(paths: Sequence[str]) -> bool:
    return any(p.endswith((".so", ".pyd")) for p in paths)


# ---------------------------------------------------------------------------------------------------- verdicts


@dataclass
class StackEntry:
    """One companion's verdict: ``ok`` when it fits the installed torch; ``why`` says so in words."""

    package: str
    version: str
    module: str
    built_for: str | None = None
    ok: bool = True
    error: str | None = None  # what the probe's import/operation raised (None: it ran, or was not asked)
    why: str = ""
    evidence: list[str] = field(default_factory=list)
    ran: str | None = None  # what the probe ran ("ops.nms on two boxes"), once it did
    _static_bad: str | None = field(default=None, repr=False)
    _torch: str = field(default="", repr=False)
    _built: str = field(default="", repr=False)

    @property
    def mismatch(self) -> str | None:
        """What the files say does not fit the installed torch (None: they fit; the probe may still fail it)."""
        return self._static_bad

    @property
    def torch_version(self) -> str:
        """The installed torch's version it was judged against ("" when torch is not installed)."""
        return self._torch

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "built_for": self.built_for,
            "ok": self.ok,
            "error": self.error,
            "why": self.why,
            "evidence": list(self.evidence),
        }


# What the files said, kept for the process (a kernel checks the same venv after every switch and check; the static
# check was its own cost again each time: RECORD, version.py, the extensions' ELF headers, Requires-Dist parsed).
# Keyed on each .dist-info's folder and RECORD digest (``Installed.fingerprint``, which scan() reads again whenever
# the folder's files change): RECORD lists every installed file with its hash, so the same key is the same files.
_Key = tuple[str, str, str]  # (dist-info folder, version, RECORD digest)
_COMPANIONS: _cache.Memo[tuple[tuple[str, str, str, str], ...], tuple[tuple[str, tuple[str, ...], str], ...]] = (
    _cache.Memo(16)
)
_ENTRIES: _cache.Memo[tuple[object, ...], StackEntry] = _cache.Memo(256)
_TORCH: _cache.Memo[_Key, tuple[Flavour | None, frozenset[str] | None]] = _cache.Memo(16)
_SOURCES: _cache.Memo[tuple[object, ...], dict[str, Any] | None] = _cache.Memo(16)


def _clear_memos() -> None:
    """Forget what the files said (benchmarks/stack.py measures a first check in a new process with it)."""
    for memo in (_COMPANIONS, _ENTRIES, _TORCH, _SOURCES):
        memo.clear()


def _key(dist: Installed) -> _Key:
    return (str(dist.dist_info), dist.version, dist.fingerprint)


def _companions(installed: Mapping[str, Installed]) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """(name, RECORD paths, module) of every companion, computed once per set of installed folders."""
    items = sorted(installed.items())

    def compute() -> tuple[tuple[str, tuple[str, ...], str], ...]:
        out = []
        for name, dist in items:
            if name == "torch":
                continue
            pin = _torch_pin(dist)
            if name not in KNOWN and pin is None:
                continue
            paths = _record_paths(dist)
            exact = pin is not None and any(s.operator in ("==", "===") for s in pin.specifier)
            if name in KNOWN or exact or _ships_extension(paths):
                out.append((name, tuple(paths), _module_name(dist, paths)))
        return tuple(out)

    return _COMPANIONS.get(tuple((name, *_key(dist)) for name, dist in items), compute)


def companions(installed: Mapping[str, Installed]) -> list[tuple[Installed, list[str]]]:
    """The installed companions of torch and their RECORD paths: the known ones, and every distribution that pins
    torch exactly or requires torch and ships a compiled extension."""
    return [(installed[name], list(paths)) for name, paths, _module in _companions(installed)]


def import_names(installed: Mapping[str, Installed]) -> list[tuple[str, str]]:
    """(package, module) for every companion, for the probe's fresh process to import."""
    return [(name, module) for name, _paths, module in _companions(installed)]


def _torch_facts(torch: Installed) -> tuple[Flavour | None, frozenset[str] | None]:
    """The installed torch's flavour, and the library names its torch/lib holds (None: no such folder)."""

    def compute() -> tuple[Flavour | None, frozenset[str] | None]:
        try:  # torch/lib holds torch's libraries: listed, not its ~12,000-line RECORD (benchmarks/stack.py)
            shipped: frozenset[str] | None = frozenset(
                f.name.split(".so")[0] for f in (_site(torch) / "torch" / "lib").iterdir()
            )
        except OSError:
            shipped = None
        return torch_flavour(torch), shipped

    return _TORCH.get(_key(torch), compute)


def check_stack(
    installed: Mapping[str, Installed], lock_index: Mapping[str, str | None] | None = None
) -> list[StackEntry]:
    """The static verdict for every companion (no import): pin, flavour, libraries — against the installed torch."""
    found = _companions(installed)
    if not found:  # no companion installed: nothing is read
        return []
    torch = installed.get("torch")
    theirs = (lock_index or {}).get("torch") if torch is not None else None
    entries = []
    for name, paths, module in found:
        dist = installed[name]
        mine = (lock_index or {}).get(name) if torch is not None else None
        key = (_key(dist), module, _key(torch) if torch else None, mine, theirs)
        proto = _ENTRIES.get(key, partial(_static_entry, dist, paths, module, torch, mine, theirs))
        entries.append(replace(proto, evidence=list(proto.evidence)))  # the caller's own: merge_dynamic changes it
    return entries


def _static_entry(
    dist: Installed, paths: Sequence[str], module: str, torch: Installed | None, mine: str | None, theirs: str | None
) -> StackEntry:
    tflav, shipped = _torch_facts(torch) if torch else (None, None)
    ev = _companion_evidence(dist, paths, module)
    entry = StackEntry(
        package=dist.name,
        version=dist.version,
        module=module,
        built_for=ev.flavour.label if ev.flavour else None,
        evidence=list(ev.notes),
    )
    entry._torch = torch.version if torch else ""
    entry._built = ev.flavour.build if ev.flavour else ""
    bad: list[str] = []
    pin = _torch_pin(dist)
    accepts = (
        torch is not None
        and pin is not None
        and bool(pin.specifier)
        and pin.specifier.contains(torch.version, prereleases=True)
    )
    if torch is None:
        bad.append("torch is not installed")
    elif pin is not None and pin.specifier and not accepts:
        bad.append(f"requires {pin.name}{pin.specifier}, torch is {torch.version}")
    if torch is not None and ev.flavour and tflav and not ev.flavour.fits(tflav):
        what = f"is a {ev.flavour.build}" + (f" ({ev.flavour.source})" if not ev.flavour.tag else "")
        bad.append(f"{what}, torch is {torch.version}" + ("" if tflav.tag else f" ({tflav.label})"))
        if accepts and pin is not None:
            entry.evidence.append(
                f"its pin {pin.name}{pin.specifier} accepts {torch.version}: PEP 440 ignores the local part"
            )
        if ev.needs_cuda and tflav.kind == "cpu":
            if shipped is None:
                shipped = frozenset(p.rsplit("/", 1)[-1].split(".so")[0] for p in _record_paths(torch))
            missing = [n for n in ev.needs_cuda if n.split(".so")[0] not in shipped]
            if missing:
                entry.evidence.append(f"this torch ships no {', '.join(missing)}")
    if mine and theirs and mine != theirs:
        entry.evidence.append(f"the lock takes it from {mine}, torch from {theirs}")
    entry._static_bad = "; ".join(bad) or None
    _word(entry)
    return entry


_RUN = {"torchvision": "ops.nms on two boxes", "torchaudio": "its extension loaded"}


def merge_dynamic(entries: Sequence[StackEntry], results: Mapping[str, CompanionAnswer] | None) -> None:
    """Add what the probe's fresh process saw of each companion (:attr:`ProbeResult.companions`) to the verdicts."""
    for entry in entries:
        got = (results or {}).get(entry.package)
        if got is None:
            continue
        entry.error = None if got.ok else (got.error or "failed")
        entry.ran = got.ran or _RUN.get(entry.package, f"import {entry.module}")
        _word(entry)


def _word(entry: StackEntry) -> None:
    head = f"{entry.package} {entry.version}"
    proof = next(
        (e for e in entry.evidence if e.startswith("its ") and " needs " in e and e not in (entry._static_bad or "")),
        None,
    )
    if entry._static_bad or entry.error:
        entry.ok = False
        said = f": `{entry.error}`" if entry.error else ""
        entry.why = (f"{head} {entry._static_bad}{said}" if entry._static_bad else f"{head}{said}") + (
            f" ({proof})" if proof else ""
        )
        return
    entry.ok = True
    built = f"a {entry._built}" if entry._built else "its build is not stated"
    fits = f"fits torch {entry._torch}" if entry._torch else "fits torch"
    ran = (
        f"; {entry.ran}" + ("" if entry.ran.endswith(" loaded") else " ran") if entry.ran else ""
    )  # "its extension loaded"
    entry.why = f"{head}: {built}, {fits}{ran}"


# ---------------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Misroute:
    """A companion the lock takes from another index than torch, for a backend (extra or group) that routes torch."""

    package: str
    extra: str  # the backend's name (an extra's, or a dependency group's when ``kind`` is ``group``)
    package_index: str | None  # where the lock takes it from
    torch_index: str | None  # where the lock takes torch from
    fix: tuple[str, ...]  # the [tool.uv.sources] lines that would route it like torch
    kind: str = "extra"  # "extra" or "group": what [tool.uv.sources] keys the route on

    @property
    def why(self) -> str:
        if self.kind == "marker":  # ``extra`` holds the marker (empty: an unconditional route)
            how = f"by marker `{self.extra}`" if self.extra else "to one index"
            return (
                f"[tool.uv.sources] routes torch {how} but not {self.package}: here the lock takes "
                f"{self.package} from {self.package_index or 'the default index'}, torch from {self.torch_index}"
            )
        return (
            f"[tool.uv.sources] routes torch per {self.kind} but not {self.package}: for {self.kind} "
            f"{self.extra} the lock takes {self.package} from {self.package_index or 'the default index'}, "
            f"torch from {self.torch_index}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "extra": self.extra,
            "kind": self.kind,
            "package_index": self.package_index,
            "torch_index": self.torch_index,
            "why": self.why,
            "fix": list(self.fix),
        }


_KEYS = ("extra", "group")


def _entries(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


def _named(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return canonicalize_name(value) if isinstance(value, str) else None


def _route(entries: Sequence[Mapping[str, Any]], name: str, kind: str) -> str | None:
    """The index ``entries`` route to for backend ``name`` of ``kind`` (``extra = …`` / ``group = …``), or an
    unconditional entry's; None when no entry applies."""
    for e in entries:
        if _named(e, kind) == name or not any(k in e for k in (*_KEYS, "marker")):
            return str(e.get("index")) if e.get("index") else None
    return None


def _kind(name: str, torch_entries: Sequence[Mapping[str, Any]]) -> str:
    """``extra`` or ``group``: what the backend is (a :class:`uvextra.project.Backend` says so), else whichever key
    of torch's sources names it (an extra when both or neither do)."""
    kind = getattr(name, "kind", None)
    if kind in _KEYS:
        return str(kind)
    by = {k for k in _KEYS for e in torch_entries if _named(e, k) == canonicalize_name(name)}
    return "group" if by == {"group"} else "extra"


def _sources(pyproject: Path) -> dict[str, Any] | None:
    """``[tool.uv.sources]`` of ``pyproject``, parsed once per version of the file (its inode, size and times)."""
    try:
        st = pyproject.stat()
    except OSError:
        return None

    def compute() -> dict[str, Any] | None:
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        sources = ((data.get("tool") or {}).get("uv") or {}).get("sources") or {}
        return sources if isinstance(sources, dict) else None

    return _SOURCES.get((str(pyproject), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), compute)


def _toml_inline(entry: Mapping[str, Any]) -> str:
    import json

    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry.items() if isinstance(v, (str, bool))) + " }"


def lint_routing(
    pyproject: Path, extras: Sequence[str], lock_index: Mapping[str, str | None], names: Iterable[str] = ()
) -> list[Misroute]:
    """Companions that the selected backends' lock takes from another index than torch, while ``[tool.uv.sources]``
    routes torch per extra or per dependency group (``group = "cpu"``); with the lines that would route each like
    torch (keyed as torch's are: ``extra = …`` / ``group = …``). pyproject.toml is only read."""
    theirs = lock_index.get("torch")
    candidates = sorted(
        n
        for n in {canonicalize_name(n) for n in (*KNOWN, *names)} & set(lock_index) - {"torch"}
        if lock_index.get(n) != theirs
    )
    if not candidates:  # no companion the lock takes from elsewhere: pyproject.toml is not even read
        return []
    sources = _sources(pyproject)
    if not sources:
        return []
    torch_entries = _entries(sources.get("torch"))
    out = _marker_misroutes(sources, torch_entries, candidates, lock_index)
    if not extras or not any(k in e for e in torch_entries for k in _KEYS):
        return out
    for extra in extras:
        kind, name = _kind(extra, torch_entries), canonicalize_name(extra)
        torch_route = _route(torch_entries, name, kind)
        if torch_route is None:
            continue
        for pkg in candidates:
            mine = _route(_entries(sources.get(pkg) or sources.get(pkg.replace("-", "_"))), name, kind)
            if mine == torch_route:
                continue
            fix = ("[tool.uv.sources]", f"{pkg} = [", *(f"  {_toml_inline(e)}," for e in torch_entries), "]")
            out.append(Misroute(pkg, name, lock_index.get(pkg), theirs, fix, kind))
    return out


def _marker_misroutes(
    sources: Mapping[str, Any],
    torch_entries: Sequence[Mapping[str, Any]],
    candidates: Sequence[str],
    lock_index: Mapping[str, str | None],
) -> list[Misroute]:
    """Companions left out of torch's routes by marker (``torch = [{ index = "pytorch-cu128", marker =
    "sys_platform == 'linux'" }]``, no backend at all) or unconditional (``torch = { index = "pytorch-cpu" }``):
    the lock takes them from another index than torch here, and no entry of theirs routes them like torch's."""
    routes = [e for e in torch_entries if e.get("index") and not any(k in e for k in _KEYS)]
    if not routes:
        return []
    out = []
    for pkg in candidates:
        mine = _entries(sources.get(pkg) or sources.get(pkg.replace("-", "_")))
        missing = [
            e
            for e in routes
            if not any(m.get("index") == e.get("index") and m.get("marker") == e.get("marker") for m in mine)
        ]
        if not missing:
            continue  # routed like torch, yet the lock differs: not a routing matter
        fix = ("[tool.uv.sources]", f"{pkg} = [", *(f"  {_toml_inline(e)}," for e in torch_entries), "]")
        marker = " or ".join(str(e["marker"]) for e in missing if isinstance(e.get("marker"), str))
        out.append(Misroute(pkg, marker, lock_index.get(pkg), lock_index.get("torch"), fix, "marker"))
    return out
