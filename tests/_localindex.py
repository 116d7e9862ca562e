"""Tiny but real wheels, served as real package indexes, for tests and ``uvextra demo``.

This module builds small wheels (a few KB each, byte-for-byte deterministic) and serves
them over HTTP on 127.0.0.1 so that the *real* ``uv`` (any version) can lock, sync and
``uv pip install`` against them without touching the network.  It only needs the standard
library and :mod:`packaging`.

What it offers
--------------
:func:`build_wheel`
    Writes one valid wheel (``METADATA`` 2.1, ``WHEEL`` with ``Tag:`` lines, ``RECORD``
    with the sha256 of every file, file name escaped per the binary distribution spec,
    local versions such as ``2.9.0+cpu`` allowed).  uv and pip install it.
:func:`torch_files`
    The files of a stand-in ``torch`` whose API answers like the real one
    (``torch.__version__``, ``torch.version.cuda``/``hip``, ``torch.cuda.is_available()``,
    ``device_count()``, ``get_device_name()``, ``get_device_capability()``) plus
    ``torch._build`` (a build label, so two builds with the same version differ in content).
    ``torch.cuda.is_available()`` is true only for a CUDA build on a machine with an NVIDIA
    driver (``/proc/driver/nvidia/version`` exists, the same test the real one boils down to)
    and ``UVEXTRA_FAKE_GPU`` is not ``"0"``; for a ROCm (hip) build the device is ``/dev/kfd``.
    ``UVEXTRA_FAKE_TORCH_CRASH=1`` makes ``import torch`` abort the process and
    ``UVEXTRA_FAKE_TORCH_HANG=1`` makes it hang (for probe tests).
:func:`build_demo_indexes`
    One folder of wheels per index, mirroring the real world (see :data:`DEMO_TORCH_BUILDS`):
    ``pypi`` (``torch 2.9.0`` CUDA build with ``nvidia-*``/``triton`` requirements, and
    ``2.8.0``), ``cpu`` (``2.9.0+cpu``, ``2.8.0+cpu``), ``cu128`` (``2.9.0+cu128``),
    ``mirror`` (a CPU ``torch 2.9.0`` with pypi's exact version string *and* requirements:
    only recorded provenance tells them apart) and ``mirror-meta`` (a CPU ``torch 2.9.0``
    whose requirements differ).  Each index also holds the dependency closure of its torch
    wheels (identical files, so identical hashes).  ``kernelish=True`` adds an index with
    stand-ins for ``ipykernel``/``tornado``/``comm``.
:class:`IndexServer`
    A context manager serving such a root folder: a PEP 503 simple index per folder
    (``simple_url(index)``, with ``#sha256=`` links and PEP 658/714 metadata files), a flat
    page of links per folder (``flat_url(index)``, for ``format = "flat"``), optional HTTP
    basic auth, and ``stop()``/``start()`` on the same port (for "index unreachable" tests).
    :func:`flat_path` gives a folder to use as a flat index by path.
:func:`write_project`
    A ``pyproject.toml`` shaped like the one in astral-sh/uv#16368 (conflicting extras, one
    explicit index per extra, ``[tool.uv.sources] torch = [...]``) whose default index is a
    local one, so ``uv lock``/``uv sync`` run offline.

Findings about uv that shaped this module (uv 0.9.4 and 0.13.9, checked)
-----------------------------------------------------------------------
* A project without ``[build-system]`` (like the seed) is *virtual*: uv installs only its
  dependencies and never needs a build backend.  That is the default here (``package=False``).
* A real build backend such as hatchling or setuptools is fetched from the project's indexes,
  which are all local here and carry none ("hatchling was not found in the package registry").
  ``uv_build`` happens to work offline: both uv versions build with their built-in copy even
  when ``requires`` excludes the running version (0.13.9 only warns) -- but that is a uv
  fast path, not a contract, and pip could not build it.  ``package=True`` therefore writes a
  stdlib-only in-tree backend (``[build-system] requires = []`` plus
  ``backend-path = ["_backend"]``): any frontend builds the editable wheel in an empty
  isolated environment, with no index at all.
* uv never prints or locks credentials given in an index URL (``uv.lock``, ``-v`` logs, the
  401 hint and ``uv export`` are clean); only ``pyproject.toml`` holds them.
* uv reads a flat index given as an HTML page of links (``format = "flat"`` with an
  ``http://`` URL) or as a local folder (``format = "flat"`` with an absolute path).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

__all__ = [
    "DEMO_INDEXES",
    "DEMO_TORCH_BUILDS",
    "KERNELISH_INDEX",
    "IndexServer",
    "TorchBuild",
    "build_demo_indexes",
    "build_wheel",
    "flat_path",
    "iter_wheels",
    "normalize_name",
    "torch_files",
    "torchvision_files",
    "wheel_filename",
    "write_project",
]

#: Fixed zip timestamp: rebuilding a wheel gives the very same bytes (and sha256).
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)

#: Names of the indexes :func:`build_demo_indexes` writes (without the opt-in ``kernelish``).
DEMO_INDEXES: tuple[str, ...] = ("pypi", "cpu", "cu128", "mirror", "mirror-meta")
#: Name of the opt-in index with stand-ins for ``ipykernel``, ``tornado`` and ``comm``.
KERNELISH_INDEX = "kernelish"


# --------------------------------------------------------------------------- wheels


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return str(canonicalize_name(name))


def _escape_dist_name(name: str) -> str:
    """Distribution name as written in wheel file names and ``.dist-info`` folders."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    """File name of the wheel :func:`build_wheel` writes for ``name``/``version``/``tag``."""
    return f"{_escape_dist_name(name)}-{Version(version)}-{tag}.whl"


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
        f"Summary: Stand-in {name} built by uvextra._localindex (not the real project)",
    ]
    metadata_lines += [f"Requires-Dist: {req}" for req in requires]
    extra = extra_metadata.strip("\n")
    if extra:
        metadata_lines += extra.splitlines()
    metadata = "\n".join(metadata_lines) + "\n\n"

    wheel_meta = "\n".join(
        [
            "Wheel-Version: 1.0",
            "Generator: uvextra._localindex",
            f"Root-Is-Purelib: {'true' if pure else 'false'}",
            *[f"Tag: {t}" for t in tags],
        ]
    ) + "\n"

    members: list[tuple[str, bytes]] = [
        (path, text.encode("utf-8")) for path, text in sorted(files.items())
    ]
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
"""Stand-in for torch, built by uvextra._localindex: NOT the real PyTorch."""
import os as _os

if _os.environ.get("UVEXTRA_FAKE_TORCH_CRASH") == "1":
    _os.abort()
if _os.environ.get("UVEXTRA_FAKE_TORCH_HANG") == "1":
    import time as _time

    while True:
        _time.sleep(3600)

__version__ = {version!r}
_build = {build_label!r}

from torch import version as version  # noqa: E402
from torch import cuda as cuda  # noqa: E402
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
    if _os.environ.get("UVEXTRA_FAKE_GPU") == "0":
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


def torch_files(
    version: str, cuda: str | None, hip: str | None = None, build_label: str = ""
) -> dict[str, str]:
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


def _module_files(import_name: str, version: str) -> dict[str, str]:
    """A one-file stand-in package ``import_name`` with ``__version__``."""
    body = (
        f'"""Stand-in {import_name} built by uvextra._localindex."""\n'
        f"__version__ = {str(Version(version))!r}\n"
    )
    # "nvidia/cublas": a part of the ``nvidia`` namespace package (no nvidia/__init__.py).
    return {f"{import_name}/__init__.py": body}


_TORCHVISION_INIT = '''\
"""Stand-in torchvision, built by uvextra._localindex: fails to load beside a torch of another flavour, as the
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
class _Dist:
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
    "mirror": (TorchBuild("2.9.0", None, "mirror-cpu", _NVIDIA_290 + _COMMON),),
    "mirror-meta": (TorchBuild("2.9.0", None, "mirror-meta", _COMMON),),
}

#: Stand-in torchvision per index: (METADATA version, version.py's version, CUDA version or None). Each pins
#: ``torch==2.9.0``, which ``2.9.0+cpu`` satisfies: an unrouted torchvision resolves to PyPI's CUDA build.
DEMO_TORCHVISION: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "pypi": (("0.24.0", "0.24.0+cu128", "12.8"),),
    "cpu": (("0.24.0+cpu", "0.24.0+cpu", None),),
    "cu128": (("0.24.0+cu128", "0.24.0+cu128", "12.8"),),
}

_SUPPORT: dict[str, _Dist] = {
    d.name: d
    for d in (
        _Dist("numpy", "2.3.4", _module_files("numpy", "2.3.4"), (), "Requires-Python: >=3.10"),
        _Dist("filelock", "3.20.0", _module_files("filelock", "3.20.0")),
        _Dist("nvidia-cublas-cu12", "12.8.4.1", _module_files("nvidia/cublas", "12.8.4.1")),
        _Dist("nvidia-cuda-runtime-cu12", "12.8.90",
              _module_files("nvidia/cuda_runtime", "12.8.90")),
        _Dist("triton", "3.5.0", _module_files("triton", "3.5.0")),
        _Dist("triton==3.4.0", "3.4.0", _module_files("triton", "3.4.0")),
    )
}

_KERNELISH: tuple[_Dist, ...] = (
    _Dist("ipykernel", "7.4.0", _module_files("ipykernel", "7.4.0"),
          ("tornado>=6.2", "comm>=0.1.1")),
    _Dist("tornado", "6.5.2", _module_files("tornado", "6.5.2")),
    _Dist("comm", "0.2.3", _module_files("comm", "0.2.3")),
)


def _support_for(requirement: str) -> _Dist:
    if requirement in _SUPPORT:
        return _SUPPORT[requirement]
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return _SUPPORT[name]


def _write_dist(folder: Path, dist: _Dist) -> Path:
    name = dist.name.split("==")[0]
    return build_wheel(folder, name, dist.version, dist.files, dist.requires,
                       extra_metadata=dist.extra_metadata)


def build_demo_indexes(root: Path, *, kernelish: bool = False) -> dict[str, Path]:
    """Write one folder of wheels per demo index under ``root``; return ``{index: folder}``.

    Indexes: ``pypi``, ``cpu``, ``cu128``, ``mirror``, ``mirror-meta`` (see
    :data:`DEMO_TORCH_BUILDS`); the ``pypi`` index also holds ``numpy``, ``filelock``,
    the ``nvidia-*`` stubs and ``triton``.  Every other index holds the
    dependency closure of its torch wheels, like the real PyTorch indexes do.  With
    ``kernelish=True`` a ``kernelish`` index with stand-ins for ``ipykernel`` (requires
    ``tornado``, ``comm``), ``tornado`` and ``comm`` is added.  Deterministic: calling it again
    rewrites identical files.
    """
    root = Path(root)
    out: dict[str, Path] = {}
    for index, builds in DEMO_TORCH_BUILDS.items():
        folder = root / index
        folder.mkdir(parents=True, exist_ok=True)
        needed: set[str] = set()
        for build in builds:
            build_wheel(folder, "torch", build.version,
                        torch_files(build.version, build.cuda, build.hip, build.build_label),
                        build.requires, extra_metadata="Requires-Python: >=3.10")
            needed.update(build.requires)
        if index == "pypi":
            needed.update(_SUPPORT)
        for tv_version, tv_full, cuda in DEMO_TORCHVISION.get(index, ()):
            build_wheel(folder, "torchvision", tv_version, torchvision_files(tv_full, cuda), ("torch==2.9.0",))
        for requirement in sorted(needed):
            _write_dist(folder, _support_for(requirement))
        out[index] = folder
    if kernelish:
        folder = root / KERNELISH_INDEX
        for dist in _KERNELISH:
            _write_dist(folder, dist)
        out[KERNELISH_INDEX] = folder
    return out


def flat_path(root: Path, index: str) -> Path:
    """The local folder of ``index`` under ``root``: usable as a flat index by path."""
    return Path(root) / index


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class _FileEntry:
    filename: str
    project: str
    sha256: str
    metadata: bytes
    metadata_sha256: str
    requires_python: str | None


class _Catalog:
    """Reads the wheels of ``root/<index>/``; caches per file (name, size, mtime)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], _FileEntry]] = {}

    def indexes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def folder(self, index: str) -> Path | None:
        if not index or index.startswith(".") or "/" in index:
            return None
        folder = self.root / index
        return folder if folder.is_dir() else None

    def entry(self, path: Path) -> _FileEntry:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == key:
                return hit[1]
        data = path.read_bytes()
        name, _version, _build, _tags = parse_wheel_filename(path.name)
        metadata = b""
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                parts = member.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    metadata = zf.read(member)
                    break
        requires_python = None
        for line in metadata.decode("utf-8", "replace").splitlines():
            if not line.strip():
                break
            if line.lower().startswith("requires-python:"):
                requires_python = line.split(":", 1)[1].strip()
        entry = _FileEntry(
            filename=path.name,
            project=str(name),
            sha256=hashlib.sha256(data).hexdigest(),
            metadata=metadata,
            metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            requires_python=requires_python,
        )
        with self._lock:
            self._cache[path] = (key, entry)
        return entry

    def files(self, index: str) -> list[_FileEntry]:
        folder = self.folder(index)
        if folder is None:
            return []
        return [self.entry(p) for p in sorted(folder.glob("*.whl")) if p.is_file()]


def _page(title: str, links: list[str]) -> bytes:
    body = "\n".join(f"    {link}<br/>" for link in links)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{body}\n  </body>\n</html>\n"
    ).encode()


def _file_link(entry: _FileEntry, href_prefix: str) -> str:
    href = f"{href_prefix}{quote(entry.filename)}#sha256={entry.sha256}"
    attrs = [f'href="{html.escape(href)}"']
    if entry.requires_python:
        attrs.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
    if entry.metadata:
        attrs.append(f'data-core-metadata="sha256={entry.metadata_sha256}"')
        attrs.append(f'data-dist-info-metadata="sha256={entry.metadata_sha256}"')
    return f"<a {' '.join(attrs)}>{html.escape(entry.filename)}</a>"


def _make_handler(catalog: _Catalog, auth: tuple[str, str] | None,
                  server: IndexServer | None = None) -> type[BaseHTTPRequestHandler]:
    expected = None
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        expected = f"Basic {token}"

    class Handler(BaseHTTPRequestHandler):
        server_version = "uvextra-localindex/1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # quiet

        def do_HEAD(self) -> None:  # noqa: N802
            self._handle(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._handle(head=False)

        # -- helpers
        def _send(self, status: int, body: bytes, content_type: str = "text/html",
                  headers: Mapping[str, str] | None = None, head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _redirect(self, location: str, head: bool) -> None:
            self._send(HTTPStatus.MOVED_PERMANENTLY, b"", headers={"Location": location},
                       head=head)

        def _not_found(self, head: bool) -> None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head=head)

        def _handle(self, head: bool) -> None:
            if server is not None and server.delay and not server._stall(unquote(urlsplit(self.path).path)):
                self.close_connection = True  # stopped while stalling: the client is gone or refused
                return
            if expected is not None and self.headers.get("Authorization") != expected:
                self._send(HTTPStatus.UNAUTHORIZED, b"unauthorized\n", "text/plain",
                           {"WWW-Authenticate": 'Basic realm="uvextra-localindex"'}, head)
                return
            path = urlsplit(self.path).path
            parts = [unquote(p) for p in path.split("/")]
            # parts[0] == "" (leading slash); a trailing slash gives a last "".
            trailing = path.endswith("/")
            segs = [p for p in parts if p]
            if not segs:
                links = [f'<a href="{html.escape(quote(i))}/simple/">{html.escape(i)}</a>'
                         for i in catalog.indexes()]
                self._send(HTTPStatus.OK, _page("Indexes", links), head=head)
                return
            index = segs[0]
            if catalog.folder(index) is None:
                self._not_found(head)
                return
            rest = segs[1:]
            if not rest:
                self._redirect(f"/{quote(index)}/simple/", head)
                return
            kind = rest[0]
            if kind == "simple":
                self._simple(index, rest[1:], trailing, head)
            elif kind == "flat":
                if len(rest) != 1:
                    self._not_found(head)
                elif not trailing:
                    self._redirect(f"/{quote(index)}/flat/", head)
                else:
                    links = [_file_link(e, "../files/") for e in catalog.files(index)]
                    self._send(HTTPStatus.OK, _page(f"Links for {index}", links), head=head)
            elif kind == "files" and len(rest) == 2:
                self._file(index, rest[1], head)
            else:
                self._not_found(head)

        def _simple(self, index: str, rest: list[str], trailing: bool, head: bool) -> None:
            base = f"/{quote(index)}/simple/"
            if not rest:
                if not trailing:
                    self._redirect(base, head)
                    return
                projects = sorted({e.project for e in catalog.files(index)})
                links = [f'<a href="{quote(p)}/">{html.escape(p)}</a>' for p in projects]
                self._send(HTTPStatus.OK, _page(f"Simple index {index}", links), head=head)
                return
            if len(rest) != 1:
                self._not_found(head)
                return
            project = normalize_name(rest[0])
            if project != rest[0] or not trailing:
                self._redirect(f"{base}{quote(project)}/", head)
                return
            entries = [e for e in catalog.files(index) if e.project == project]
            if not entries:
                self._not_found(head)
                return
            links = [_file_link(e, "../../files/") for e in entries]
            self._send(HTTPStatus.OK, _page(f"Links for {project}", links), head=head)

        def _file(self, index: str, filename: str, head: bool) -> None:
            folder = catalog.folder(index)
            want_metadata = filename.endswith(".whl.metadata")
            wheel = filename[: -len(".metadata")] if want_metadata else filename
            if folder is None or "/" in wheel or not wheel.endswith(".whl"):
                self._not_found(head)
                return
            path = folder / wheel
            if not path.is_file():
                self._not_found(head)
                return
            if want_metadata:
                self._send(HTTPStatus.OK, catalog.entry(path).metadata, "text/plain", head=head)
            else:
                # Like real indexes (PyPI's file host, the PyTorch index): an ETag, and 304 to a
                # revalidation, so `uv sync --reinstall-package X` (which implies a refresh)
                # reuses uv's cache instead of downloading the wheel again.
                etag = f'"{catalog.entry(path).sha256}"'
                if etag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]:
                    self._send(HTTPStatus.NOT_MODIFIED, b"", headers={"ETag": etag}, head=True)
                    return
                self._send(HTTPStatus.OK, path.read_bytes(), "application/octet-stream",
                           headers={"ETag": etag}, head=head)

    return Handler


class IndexServer:
    """Serve ``root/<index>/*.whl`` as package indexes on ``http://127.0.0.1:PORT``.

    * ``simple_url(index)`` -> ``http://127.0.0.1:PORT/<index>/simple/``: a PEP 503 simple
      index (root page listing projects, ``/<index>/simple/<normalized-name>/`` listing files
      with ``#sha256=`` fragments and PEP 658 ``.metadata`` files; non-normalized names are
      redirected to the normalized page).
    * ``flat_url(index)`` -> ``http://127.0.0.1:PORT/<index>/flat/``: one HTML page of links
      to every wheel of the folder, a flat index for ``format = "flat"`` / ``--find-links``.
    * ``flat_path(index)`` -> the folder itself, a flat index by path.
    * ``auth=("user", "secret")`` requires HTTP basic auth (401 otherwise); the URLs then
      carry the credentials unless ``credentials=False`` is passed.
    * ``delay={"torch-2.9.0+cu128": 60}`` stalls every request whose (unquoted) path contains
      a key for that many seconds (a slow download, for interrupt and concurrency tests);
      ``stalled`` is an event set when a request starts stalling.  ``delay`` is read live, and
      :meth:`stop` cuts stalls short.

    Use as a context manager, or call :meth:`start`/:meth:`stop`; :meth:`start` after
    :meth:`stop` serves again on the same port.  The listing follows the folders live.
    """

    def __init__(self, root: Path, auth: tuple[str, str] | None = None, port: int = 0,
                 delay: Mapping[str, float] | None = None) -> None:
        self.root = Path(root)
        self.auth = auth
        self.delay: dict[str, float] = dict(delay or {})
        self.stalled = threading.Event()
        self._stopping = threading.Event()
        self._port = port
        self._catalog = _Catalog(self.root)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> IndexServer:
        """Start serving (again, on the same port once one was picked); returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        handler = _make_handler(self._catalog, self.auth, self)
        server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"uvextra-index-{self._port}", daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving: connections to the port are refused until :meth:`start`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._stopping.set()  # ends any stalled request
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def _stall(self, path: str) -> bool:
        """Stall a request for ``path`` as ``delay`` says; False when :meth:`stop` cut the stall short."""
        seconds = max((s for key, s in list(self.delay.items()) if key in path), default=0.0)
        if seconds > 0:
            self.stalled.set()
            return not self._stopping.wait(seconds)
        return True

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("IndexServer has not been started")
        return self._port

    def base_url(self, *, credentials: bool = True) -> str:
        """``http://[user:secret@]127.0.0.1:PORT`` (no trailing slash)."""
        userinfo = ""
        if self.auth is not None and credentials:
            userinfo = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        return f"http://{userinfo}127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, with credentials when the server requires them."""
        return self.base_url()

    def simple_url(self, index: str, *, credentials: bool = True) -> str:
        """PEP 503 simple index URL of ``index`` (ends with ``/simple/``)."""
        return f"{self.base_url(credentials=credentials)}/{quote(index)}/simple/"

    def flat_url(self, index: str, *, credentials: bool = True) -> str:
        """URL of the flat HTML page of links of ``index`` (for ``format = "flat"``)."""
        return f"{self.base_url(credentials=credentials)}/{quote(index)}/flat/"

    def flat_path(self, index: str) -> Path:
        """The local folder of ``index`` (a flat index by path)."""
        return flat_path(self.root, index)

    def indexes(self) -> list[str]:
        """Names of the index folders under ``root``."""
        return self._catalog.indexes()


# --------------------------------------------------------------------------- projects

_BACKEND_MODULE = "uvextra_tiny_backend"

_BACKEND_SOURCE = r'''"""A stdlib-only PEP 517/660 build backend written by uvextra._localindex.

It lets uv build and install the project with no index at all: ``requires = []``.
It only knows a src layout: ``src/<import name>/``.
"""
import base64
import hashlib
import json
import os
import re
import zipfile

_DATE = (2020, 1, 1, 0, 0, 0)
# [project] as written by uvextra._localindex.write_project, used where tomllib is missing.
_WRITTEN = json.loads(%(written)s)


def _project():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return _WRITTEN
    with open("pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _names():
    project = _project()
    name = project["name"]
    dist = re.sub(r"[-_.]+", "_", name).lower()
    return project, name, dist, project["version"]


def _metadata(project):
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"], "Version: " + project["version"]]
    if project.get("requires-python"):
        lines.append("Requires-Python: " + project["requires-python"])
    for req in project.get("dependencies", []):
        lines.append("Requires-Dist: " + req)
    for extra, reqs in sorted(project.get("optional-dependencies", {}).items()):
        lines.append("Provides-Extra: " + extra)
        for req in reqs:
            marker = 'extra == "%s"' % extra
            if ";" in req:
                req, old = req.split(";", 1)
                marker = "(%s) and %s" % (old.strip(), marker)
            lines.append("Requires-Dist: %s; %s" % (req.strip(), marker))
    return "\n".join(lines) + "\n\n"


def _hash(data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=" + d


def _write(wheel_directory, members):
    project, name, dist, version = _names()
    info = "%s-%s.dist-info" % (dist, version)
    members = list(members)
    members.append((info + "/METADATA", _metadata(project).encode()))
    members.append((info + "/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: uvextra-tiny-backend\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n").encode()))
    record = ["%s,%s,%d" % (p, _hash(d), len(d)) for p, d in members] + [info + "/RECORD,,"]
    members.append((info + "/RECORD", ("\n".join(record) + "\n").encode()))
    filename = "%s-%s-py3-none-any.whl" % (dist, version)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in members:
            zi = zipfile.ZipInfo(path, date_time=_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    members = []
    for top, dirs, files in os.walk("src"):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for fn in sorted(files):
            full = os.path.join(top, fn)
            rel = os.path.relpath(full, "src").replace(os.sep, "/")
            with open(full, "rb") as f:
                members.append((rel, f.read()))
    return _write(wheel_directory, members)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _, _, dist, _ = _names()
    src = os.path.abspath("src")
    return _write(wheel_directory, [("_%s_editable.pth" % dist, (src + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    import tarfile

    _, _, dist, version = _names()
    base = "%s-%s" % (dist, version)
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tf:
        for path in ["pyproject.toml", "_backend"] + (["src"] if os.path.isdir("src") else []):
            tf.add(path, arcname=base + "/" + path,
                   filter=lambda ti: None if "__pycache__" in ti.name else ti)
    return filename
'''


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
    package: bool = False,
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

    ``package=False`` (default) writes no ``[build-system]``, exactly like the seed: uv then
    treats the project as virtual and never needs a build backend, so everything works
    offline.  ``package=True`` adds ``[build-system]`` with ``requires = []`` and a stdlib-only
    in-tree backend (``backend-path = ["_backend"]``, written into the project): any real
    backend would have to be fetched from an index, and ours are local and carry none.
    ``src/<name>/__init__.py`` is written in both cases.

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
            lines += [f"{extra} = [", f"  {_toml_str(torch_requirement)},",
                      *(f"  {_toml_str(c)}," for c in companions), "]"]
        lines += _table_lines((more_groups if groups else more_extras) or {})
        lines.append("")
    if (more_extras if groups else more_groups) or (not extras and (more_extras or more_groups)):
        for header, table in (("[project.optional-dependencies]", more_extras), ("[dependency-groups]", more_groups)):
            if table and (not extras or (header == "[dependency-groups]") != groups):
                lines += ["", header, *_table_lines(table), ""]
    if package:
        lines += [
            "",
            "[build-system]",
            "requires = []",
            f'build-backend = "{_BACKEND_MODULE}"',
            'backend-path = ["_backend"]',
            "",
        ]
    lines += ["", "[tool.uv]", *uv_settings]
    if len(extras) >= 2:
        lines += ["conflicts = [", "  ["]
        lines += [f"    {{ {kind} = {_toml_str(e)} }}," for e in extras]
        lines += ["  ],", "]"]
    lines.append("")

    sourced = [e for e in extras if e in indexes]
    if sourced:
        lines += ["", "[tool.uv.sources]", "torch = ["]
        lines += [
            f"  {{ index = {_toml_str('pytorch-' + e)}, {kind} = {_toml_str(e)} }},"
            for e in sourced
        ]
        lines += ["]", ""]
        for name in routed:  # companions routed like torch (``companions`` not named here are left to the default)
            lines += [f"{name} = ["]
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
    if package:
        backend = path / "_backend"
        backend.mkdir(exist_ok=True)
        written = {
            "name": name,
            "version": "0.1.0",
            "requires-python": requires_python,
            "dependencies": list(extra_deps),
            "optional-dependencies": {**{e: [torch_requirement, *companions] for e in (() if groups else extras)},
                                      **{e: list(r) for e, r in (more_extras or {}).items()}},
        }
        source = _BACKEND_SOURCE.replace("%(written)s", repr(json.dumps(written)))
        (backend / f"{_BACKEND_MODULE}.py").write_text(source, encoding="utf-8")
    return path


def _table_lines(table: Mapping[str, Sequence[str]]) -> list[str]:
    return [line for key, reqs in table.items() for line in (f"{key} = [", *(f"  {_toml_str(r)}," for r in reqs), "]")]


def iter_wheels(folder: Path) -> Iterator[Path]:
    """The wheels of an index folder, sorted by name."""
    yield from sorted(Path(folder).glob("*.whl"))
