"""The stand-in wheels and the projects ``uvextra demo`` shows, written into folders uv reads as flat indexes.

Small real wheels (a few KB each, byte-for-byte deterministic): a stand-in ``torch`` whose API answers like the real
one (``torch.__version__``, ``torch.version.cuda``/``hip``, ``torch.cuda.is_available()``, ``device_count()``,
``get_device_name()``, ``get_device_capability()``, and ``torch._build``, a label that tells two builds of one
version apart) in the builds the real indexes publish; a stand-in ``torchvision`` that refuses to load beside a torch
of another flavour, as the real one does; torch's small dependencies. Only the standard library and
:mod:`packaging`. ``torch.cuda.is_available()`` is true only for a CUDA build on a machine with an NVIDIA driver
(``/proc/driver/nvidia/version`` exists, the test the real one boils down to); for a ROCm (hip) build the device
is ``/dev/kfd``.

uvextra itself never imports this module; the demo does, and the tests build their indexes (and their index server,
fault injection and build backend, in ``tests/support/localindex.py``) on top of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import parse_tag
from packaging.version import Version

#: Fixed zip timestamp: rebuilding a wheel gives the very same bytes (and sha256).
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- wheels


def _escape_dist_name(name: str) -> str:
    """Distribution name as written in wheel file names and ``.dist-info`` folders."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever the host
    return info


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    files: dict[str, str],
    requires: Sequence[str] = (),
    tag: str = "py3-none-any",
    extra_metadata: str = "",
) -> Path:
    """Write a valid, deterministic wheel into folder ``dest`` and return its path.

    ``files`` maps paths inside the wheel (``"pkg/__init__.py"``) to their text.
    ``requires`` become ``Requires-Dist`` lines; ``extra_metadata`` (already formatted
    ``Key: value`` lines) is appended to ``METADATA``.  ``tag`` may be a compressed tag set
    (``py2.py3-none-any``); every tag it expands to gets a ``Tag:`` line in ``WHEEL``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    norm_version = str(Version(version))
    dist = _escape_dist_name(name)
    dist_info = f"{dist}-{norm_version}.dist-info"
    tags = sorted(str(t) for t in parse_tag(tag))
    pure = all(t.endswith("-none-any") for t in tags)

    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {norm_version}",
        f"Summary: Stand-in {name} built for the uvextra demo (not the real project)",
    ]
    metadata_lines += [f"Requires-Dist: {req}" for req in requires]
    extra = extra_metadata.strip("\n")
    if extra:
        metadata_lines += extra.splitlines()
    metadata = "\n".join(metadata_lines) + "\n\n"

    wheel_meta = (
        "\n".join(
            [
                "Wheel-Version: 1.0",
                "Generator: uvextra._demo_wheels",
                f"Root-Is-Purelib: {'true' if pure else 'false'}",
                *[f"Tag: {t}" for t in tags],
            ]
        )
        + "\n"
    )

    members: list[tuple[str, bytes]] = [(path, text.encode("utf-8")) for path, text in sorted(files.items())]
    members.append((f"{dist_info}/METADATA", metadata.encode("utf-8")))
    members.append((f"{dist_info}/WHEEL", wheel_meta.encode("utf-8")))
    record_lines = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members]
    record_lines.append(f"{dist_info}/RECORD,,")
    members.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode("utf-8")))

    out = dest / f"{dist}-{norm_version}-{tag}.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, data in members:
            zf.writestr(_zip_info(path), data, compresslevel=6)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------- stand-in torch

_TORCH_INIT = '''\
"""Stand-in for torch, built for the uvextra demo: NOT the real PyTorch."""
__version__ = {version!r}
_build = {build_label!r}

from torch import version as version
from torch import cuda as cuda
'''

_TORCH_VERSION = '''\
"""torch.version of the uvextra stand-in torch."""
__version__ = {version!r}
cuda = {cuda!r}
hip = {hip!r}
git_version = "0000000000000000000000000000000000000000"
debug = False
'''

_TORCH_CUDA = '''\
"""torch.cuda of the uvextra stand-in torch: answers like the real one, owns no GPU."""
import os as _os

from torch import version as _version

_FAKE_NAME = "NVIDIA Fake GPU" if _version.hip is None else "AMD Fake GPU"
_FAKE_CAPABILITY = (9, 0)


def _compiled() -> bool:
    return _version.cuda is not None or _version.hip is not None


def _driver_present() -> bool:
    if _version.hip is not None:
        return _os.path.exists("/dev/kfd")
    return _os.path.exists("/proc/driver/nvidia/version")


def is_available() -> bool:
    if not _compiled():
        return False
    return _driver_present()


def device_count() -> int:
    if not is_available():
        return 0
    gpus = "/proc/driver/nvidia/gpus"
    try:
        return max(1, len(_os.listdir(gpus)))
    except OSError:
        return 1


def _check(device: int) -> None:
    if not _compiled():
        raise AssertionError("Torch not compiled with CUDA enabled")
    if not is_available():
        raise RuntimeError(
            "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU "
            "and installed a driver"
        )
    if not 0 <= int(device) < device_count():
        raise RuntimeError("Invalid device ordinal")


def current_device() -> int:
    _check(0)
    return 0


def get_device_name(device: int = 0) -> str:
    _check(device)
    return _FAKE_NAME


def get_device_capability(device: int = 0) -> "tuple[int, int]":
    _check(device)
    return _FAKE_CAPABILITY
'''


def torch_files(version: str, cuda: str | None, hip: str | None = None, build_label: str = "") -> dict[str, str]:
    """Files of a stand-in ``torch`` package for :func:`build_wheel`.

    ``version`` is the full version (``"2.9.0+cu128"``), ``cuda`` the CUDA version the build
    claims (``"12.8"``, or ``None`` for CPU/ROCm builds), ``hip`` the ROCm version or ``None``.
    ``build_label`` ends up as ``torch._build`` so two builds of the same version differ.
    """
    norm = str(Version(version))
    return {
        "torch/__init__.py": _TORCH_INIT.format(version=norm, build_label=build_label),
        "torch/version.py": _TORCH_VERSION.format(version=norm, cuda=cuda, hip=hip),
        "torch/cuda/__init__.py": _TORCH_CUDA,
    }


def module_files(import_name: str, version: str) -> dict[str, str]:
    """A one-file stand-in package ``import_name`` with ``__version__``."""
    body = f'"""Stand-in {import_name} built for the uvextra demo."""\n__version__ = {str(Version(version))!r}\n'
    # "nvidia/cublas": a part of the ``nvidia`` namespace package (no nvidia/__init__.py).
    return {f"{import_name}/__init__.py": body}


_TORCHVISION_INIT = '''\
"""Stand-in torchvision, built for the uvextra demo: fails to load beside a torch of another flavour, as the
real one does (pytorch/vision#9077)."""
import torch as _torch

from torchvision.version import __version__, cuda as _built_cuda

if _built_cuda is not None and getattr(_torch.version, "cuda", None) is None:
    raise RuntimeError("operator torchvision::nms does not exist")
from torchvision import ops as ops  # noqa: E402
'''

_TORCHVISION_OPS = '''\
def nms(boxes, scores, iou_threshold):
    """Keep the best box of every overlapping group (plain lists; the real one takes tensors)."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union else 0.0
    boxes, scores = [list(map(float, b)) for b in boxes], [float(s) for s in scores]
    keep = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[k]) <= iou_threshold for k in keep):
            keep.append(i)
    return keep
'''


def torchvision_files(version: str, cuda: str | None) -> dict[str, str]:
    """A stand-in ``torchvision``: ``version.py`` says the build's full version (PyPI's CUDA build says
    ``0.24.0+cu128`` while its METADATA says ``0.24.0``); a CUDA build ships ``torchvision.libs/libcudart.so.N``
    and a ``_C.so`` naming ``libc10_cuda.so`` / ``libtorch_cuda.so``, and refuses to load beside a CPU torch."""
    files = {
        "torchvision/__init__.py": _TORCHVISION_INIT,
        "torchvision/version.py": f"__version__ = {version!r}\ncuda = {cuda!r}\n",
        "torchvision/ops.py": _TORCHVISION_OPS,
    }
    if cuda is not None:
        major = cuda.split(".")[0]
        files[f"torchvision.libs/libcudart.so.{major}"] = "stand-in CUDA runtime\n"
        # Not an ELF: uvextra falls back to the soname strings the bytes carry.
        files["torchvision/_C.so"] = "\0libc10.so\0libc10_cuda.so\0libtorch_cuda.so\0libtorch_cpu.so\0"
    else:
        files["torchvision/_C.so"] = "\0libc10.so\0libtorch_cpu.so\0"
    return files


# --------------------------------------------------------------------------- demo indexes


@dataclass(frozen=True)
class Dist:
    """A stand-in distribution: what :func:`build_wheel` needs (``name`` may carry a ``==`` pin: a second build)."""

    name: str
    version: str
    files: dict[str, str]
    requires: tuple[str, ...] = ()
    extra_metadata: str = ""


@dataclass(frozen=True)
class TorchBuild:
    """One stand-in torch wheel of the demo indexes."""

    version: str
    cuda: str | None
    build_label: str
    requires: tuple[str, ...] = field(default_factory=tuple)
    hip: str | None = None


# torch's small pure-Python dependencies. Not typing-extensions: the demo switches a kernel's own venv, and a stub
# in place of the real typing_extensions would kill jupyter_client and IPython there.
_COMMON = ("filelock",)
_NVIDIA_290 = (
    "nvidia-cublas-cu12==12.8.4.1",
    "nvidia-cuda-runtime-cu12==12.8.90",
    "triton==3.5.0",
)
_NVIDIA_280 = (
    "nvidia-cublas-cu12==12.8.4.1",
    "nvidia-cuda-runtime-cu12==12.8.90",
    "triton==3.4.0",
)

#: The torch wheels of each demo index (the build label is ``torch._build``).
DEMO_TORCH_BUILDS: dict[str, tuple[TorchBuild, ...]] = {
    "pypi": (
        TorchBuild("2.9.0", "12.8", "pypi-cu128", _NVIDIA_290 + _COMMON),
        TorchBuild("2.8.0", "12.8", "pypi-cu128", _NVIDIA_280 + _COMMON),
    ),
    "cpu": (
        TorchBuild("2.9.0+cpu", None, "cpu", _COMMON),
        TorchBuild("2.8.0+cpu", None, "cpu", _COMMON),
    ),
    "cu128": (TorchBuild("2.9.0+cu128", "12.8", "cu128", _NVIDIA_290 + _COMMON),),
    # an internal mirror's CPU build under PyPI's exact version string and requirements: only provenance differs
    "mirror": (TorchBuild("2.9.0", None, "mirror-cpu", _NVIDIA_290 + _COMMON),),
}

#: Stand-in torchvision per index: (METADATA version, version.py's version, CUDA version or None). Each pins
#: ``torch==2.9.0``, which ``2.9.0+cpu`` satisfies: an unrouted torchvision resolves to PyPI's CUDA build.
DEMO_TORCHVISION: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "pypi": (("0.24.0", "0.24.0+cu128", "12.8"),),
    "cpu": (("0.24.0+cpu", "0.24.0+cpu", None),),
    "cu128": (("0.24.0+cu128", "0.24.0+cu128", "12.8"),),
}

_SUPPORT: dict[str, Dist] = {
    d.name: d
    for d in (
        Dist("numpy", "2.3.4", module_files("numpy", "2.3.4"), (), "Requires-Python: >=3.10"),
        Dist("filelock", "3.20.0", module_files("filelock", "3.20.0")),
        Dist("nvidia-cublas-cu12", "12.8.4.1", module_files("nvidia/cublas", "12.8.4.1")),
        Dist("nvidia-cuda-runtime-cu12", "12.8.90", module_files("nvidia/cuda_runtime", "12.8.90")),
        Dist("triton", "3.5.0", module_files("triton", "3.5.0")),
        Dist("triton==3.4.0", "3.4.0", module_files("triton", "3.4.0")),
    )
}


def _support_for(requirement: str) -> Dist:
    if requirement in _SUPPORT:
        return _SUPPORT[requirement]
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return _SUPPORT[name]


def write_dist(folder: Path, dist: Dist) -> Path:
    name = dist.name.split("==")[0]
    return build_wheel(folder, name, dist.version, dist.files, dist.requires, extra_metadata=dist.extra_metadata)


def build_indexes(
    root: Path,
    builds: Mapping[str, Sequence[TorchBuild]] = DEMO_TORCH_BUILDS,
    torch: Callable[[TorchBuild], dict[str, str]] | None = None,
) -> dict[str, Path]:
    """Write one folder of wheels per index of ``builds`` under ``root``; return ``{index: folder}``.

    Each folder holds its torch wheels (files from ``torch``, default :func:`torch_files`), its stand-in
    torchvision (:data:`DEMO_TORCHVISION`) and the dependency closure of its torch wheels, like the real PyTorch
    indexes do; ``pypi`` also holds ``numpy`` and every other support package. Deterministic: calling it again
    rewrites identical files.
    """
    root = Path(root)
    out: dict[str, Path] = {}
    for index, index_builds in builds.items():
        folder = root / index
        folder.mkdir(parents=True, exist_ok=True)
        needed: set[str] = set()
        for build in index_builds:
            files = torch(build) if torch else torch_files(build.version, build.cuda, build.hip, build.build_label)
            build_wheel(folder, "torch", build.version, files, build.requires, extra_metadata="Requires-Python: >=3.10")
            needed.update(build.requires)
        if index == "pypi":
            needed.update(_SUPPORT)
        for tv_version, tv_full, cuda in DEMO_TORCHVISION.get(index, ()):
            build_wheel(folder, "torchvision", tv_version, torchvision_files(tv_full, cuda), ("torch==2.9.0",))
        for requirement in sorted(needed):
            write_dist(folder, _support_for(requirement))
        out[index] = folder
    return out


# --------------------------------------------------------------------------- projects


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON string escaping is valid TOML for these values)."""
    return json.dumps(value)


def _index_url_value(url: str | os.PathLike[str]) -> str:
    if isinstance(url, os.PathLike):
        return str(Path(url).resolve())
    return url


def write_project(
    path: Path,
    indexes: Mapping[str, str | os.PathLike[str]],
    *,
    name: str = "moo",
    extras: Sequence[str] = ("cpu", "cu128", "pypi"),
    default_index: str | os.PathLike[str] | None = None,
    extra_deps: Sequence[str] = ("numpy",),
    requires_python: str = ">=3.10",
    flat: Collection[str] = (),
    torch_requirement: str = "torch>=2.8.0",
    companions: Sequence[str] = (),
    routed: Collection[str] = (),
    groups: bool = False,
    more_extras: Mapping[str, Sequence[str]] | None = None,
    more_groups: Mapping[str, Sequence[str]] | None = None,
    uv_settings: Sequence[str] = (),
) -> Path:
    """Write a project shaped like astral-sh/uv#16368's into folder ``path``; return the folder.

    ``indexes`` maps each extra to the URL of the index its ``torch`` comes from (a simple
    index URL, or for extras named in ``flat`` a flat index URL or folder, written with
    ``format = "flat"``).  Each extra gets ``[[tool.uv.index]] name = "pytorch-<extra>"``,
    ``explicit = true``, and ``[tool.uv.sources] torch = [{ index = ..., extra = ... }]``;
    the extras form one ``[tool.uv] conflicts`` set.  ``default_index`` becomes an index with
    ``default = true`` so ``numpy`` and torch's dependencies resolve from a local index
    (``None``: the ``pypi`` extra's URL when that is a simple index; otherwise uv's own
    default, which needs the network).

    No ``[build-system]``, exactly like the seed: uv treats the project as virtual and never needs a build
    backend, so everything works offline (``src/<name>/__init__.py`` is written all the same).
    ``companions`` (``torchvision``) join torch in every backend; those named in ``routed`` get the same
    ``[tool.uv.sources]`` routes as torch, the others come from the default index (the misroute of issue 10).

    ``groups=True`` declares the backends as ``[dependency-groups]`` (conflicts and sources then say
    ``group = …``). ``more_extras`` / ``more_groups`` add extras / groups outside the conflict set (``plot``,
    ``dev``); ``uv_settings`` are more lines for ``[tool.uv]`` (``default-groups = []``).
    """
    kind = "group" if groups else "extra"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    import_name = _escape_dist_name(name)
    flat_set = set(flat)

    if default_index is None and "pypi" in indexes and "pypi" not in flat_set:
        default_index = indexes["pypi"]

    lines: list[str] = [
        "[project]",
        f"name = {_toml_str(name)}",
        'version = "0.1.0"',
        f"requires-python = {_toml_str(requires_python)}",
        "dependencies = [" + ", ".join(_toml_str(d) for d in extra_deps) + "]",
        "",
    ]
    if extras:
        lines += ["", "[dependency-groups]" if groups else "[project.optional-dependencies]"]
        for extra in extras:
            lines += [
                f"{extra} = [",
                f"  {_toml_str(torch_requirement)},",
                *(f"  {_toml_str(c)}," for c in companions),
                "]",
            ]
        lines += _table_lines((more_groups if groups else more_extras) or {})
        lines.append("")
    if (more_extras if groups else more_groups) or (not extras and (more_extras or more_groups)):
        for header, table in (("[project.optional-dependencies]", more_extras), ("[dependency-groups]", more_groups)):
            if table and (not extras or (header == "[dependency-groups]") != groups):
                lines += ["", header, *_table_lines(table), ""]
    lines += ["", "[tool.uv]", *uv_settings]
    if len(extras) >= 2:
        lines += ["conflicts = [", "  ["]
        lines += [f"    {{ {kind} = {_toml_str(e)} }}," for e in extras]
        lines += ["  ],", "]"]
    lines.append("")

    sourced = [e for e in extras if e in indexes]
    if sourced:
        lines += ["", "[tool.uv.sources]", "torch = ["]
        lines += [f"  {{ index = {_toml_str('pytorch-' + e)}, {kind} = {_toml_str(e)} }}," for e in sourced]
        lines += ["]", ""]
        for companion in routed:  # routed like torch (``companions`` not named here are left to the default)
            lines += [f"{companion} = ["]
            lines += [f"  {{ index = {_toml_str('pytorch-' + e)}, {kind} = {_toml_str(e)} }}," for e in sourced]
            lines += ["]", ""]
    for extra in sourced:
        lines += [
            "",
            "[[tool.uv.index]]",
            f"name = {_toml_str('pytorch-' + extra)}",
            f"url = {_toml_str(_index_url_value(indexes[extra]))}",
        ]
        if extra in flat_set:
            lines.append('format = "flat"')
        lines.append("explicit = true")
    if default_index is not None:
        lines += [
            "",
            "[[tool.uv.index]]",
            'name = "default"',
            f"url = {_toml_str(_index_url_value(default_index))}",
            "default = true",
        ]
        if "default" in flat_set:  # ``flat=(…, "default")``: the default index is a flat one (a folder of wheels)
            lines.append('format = "flat"')
    (path / "pyproject.toml").write_text("\n".join(lines).strip("\n") + "\n", encoding="utf-8")

    pkg = path / "src" / import_name
    pkg.mkdir(parents=True, exist_ok=True)
    init = pkg / "__init__.py"
    if not init.exists():
        init.write_text(f'"""The {name} demo project."""\n', encoding="utf-8")
    return path


def _table_lines(table: Mapping[str, Sequence[str]]) -> list[str]:
    return [line for key, reqs in table.items() for line in (f"{key} = [", *(f"  {_toml_str(r)}," for r in reqs), "]")]
