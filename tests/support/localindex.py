"""Test support: the demo's stand-in wheels plus what only the tests need, served as real package indexes.

The wheels themselves (a stand-in torch, torchvision, torch's dependencies) and the project writer are the demo's,
shipped in :mod:`uvextra._demo_wheels`; this module adds the test harness around them, so that the *real* ``uv``
(any version) can lock, sync and ``uv pip install`` against them without touching the network.

What it adds
------------
:func:`torch_files`
    The demo's stand-in ``torch`` with fault switches for probe tests: ``UVEXTRA_FAKE_TORCH_CRASH=1`` makes
    ``import torch`` abort the process, ``UVEXTRA_FAKE_TORCH_HANG=1`` makes it hang, and ``UVEXTRA_FAKE_GPU=0``
    makes ``torch.cuda.is_available()`` false on a machine with a driver.
:func:`build_demo_indexes`
    One folder of wheels per index (:data:`DEMO_INDEXES`): the demo's ``pypi`` (``torch 2.9.0`` CUDA build with
    ``nvidia-*``/``triton`` requirements, and ``2.8.0``), ``cpu`` (``2.9.0+cpu``, ``2.8.0+cpu``), ``cu128``
    (``2.9.0+cu128``), ``mirror`` (a CPU ``torch 2.9.0`` with pypi's exact version string *and* requirements: only
    recorded provenance tells them apart), plus ``mirror-meta`` (a CPU ``torch 2.9.0`` whose requirements differ),
    each torch with the fault switches.  ``kernelish=True`` adds an index with stand-ins for
    ``ipykernel``/``tornado``/``comm``.
:class:`IndexServer`
    A context manager serving such a root folder: a PEP 503 simple index per folder (``simple_url(index)``, with
    ``#sha256=`` links and PEP 658/714 metadata files), a flat page of links per folder (``flat_url(index)``, for
    ``format = "flat"``), optional HTTP basic auth, stalled requests (``delay``), PEP 691/700 JSON pages with each
    file's ``size`` (``sizes=True``, opt-in: uv then locks the sizes), and ``stop()``/``start()`` on the same port
    (for "index unreachable" tests).  :func:`flat_path` gives a folder to use as a flat index by path.
:func:`write_project`
    The demo's project writer (:func:`uvextra._demo_wheels.write_project`), plus ``package=True``: a
    ``[build-system]`` with a stdlib-only in-tree backend.

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
import sys
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

from uvextra import _demo_wheels
from uvextra._demo_wheels import DEMO_TORCH_BUILDS, Dist, TorchBuild, build_wheel, module_files, write_dist

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

__all__ = [
    "DEMO_INDEXES",
    "KERNELISH_INDEX",
    "IndexServer",
    "build_demo_indexes",
    "build_wheel",
    "flat_path",
    "normalize_name",
    "torch_files",
    "write_project",
]

#: Names of the indexes :func:`build_demo_indexes` writes (without the opt-in ``kernelish``).
DEMO_INDEXES: tuple[str, ...] = ("pypi", "cpu", "cu128", "mirror", "mirror-meta")
#: Name of the opt-in index with stand-ins for ``ipykernel``, ``tornado`` and ``comm``.
KERNELISH_INDEX = "kernelish"
#: The demo's torch builds and one more: a CPU ``torch 2.9.0`` whose requirements differ from PyPI's.
TEST_TORCH_BUILDS: dict[str, tuple[TorchBuild, ...]] = {
    **DEMO_TORCH_BUILDS,
    "mirror-meta": (TorchBuild("2.9.0", None, "mirror-meta", ("filelock",)),),
}

_KERNELISH: tuple[Dist, ...] = (
    Dist("ipykernel", "7.4.0", module_files("ipykernel", "7.4.0"), ("tornado>=6.2", "comm>=0.1.1")),
    Dist("tornado", "6.5.2", module_files("tornado", "6.5.2")),
    Dist("comm", "0.2.3", module_files("comm", "0.2.3")),
)


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return str(canonicalize_name(name))


# --------------------------------------------------------------------------- stand-in torch with fault switches

_FAULTS = """\
import os as _os

if _os.environ.get("UVEXTRA_FAKE_TORCH_CRASH") == "1":
    _os.abort()
if _os.environ.get("UVEXTRA_FAKE_TORCH_HANG") == "1":
    import time as _time

    while True:
        _time.sleep(3600)

"""


# Appended to torch/cuda/__init__.py: the functions that ask is_available() find this one.
_HIDE_GPU = """

_driver_is_available = is_available


def is_available() -> bool:
    return _os.environ.get("UVEXTRA_FAKE_GPU") != "0" and _driver_is_available()
"""


def torch_files(version: str, cuda: str | None, hip: str | None = None, build_label: str = "") -> dict[str, str]:
    """The demo's stand-in torch (:func:`uvextra._demo_wheels.torch_files`), its ``import`` failing on demand
    (``UVEXTRA_FAKE_TORCH_CRASH=1``, ``UVEXTRA_FAKE_TORCH_HANG=1``) and its GPU hidden by ``UVEXTRA_FAKE_GPU=0``."""
    files = _demo_wheels.torch_files(version, cuda, hip, build_label)
    docstring, _, body = files["torch/__init__.py"].partition("\n")
    files["torch/__init__.py"] = f"{docstring}\n{_FAULTS}{body}"
    files["torch/cuda/__init__.py"] += _HIDE_GPU
    return files


def build_demo_indexes(root: Path, *, kernelish: bool = False) -> dict[str, Path]:
    """Write one folder of wheels per index of :data:`DEMO_INDEXES` under ``root``; return ``{index: folder}``.

    See :func:`uvextra._demo_wheels.build_indexes`; the torch wheels here have the fault switches of
    :func:`torch_files`.  With ``kernelish=True`` a ``kernelish`` index with stand-ins for ``ipykernel`` (requires
    ``tornado``, ``comm``), ``tornado`` and ``comm`` is added.  Deterministic: calling it again rewrites identical
    files.
    """
    out = _demo_wheels.build_indexes(
        root, TEST_TORCH_BUILDS, lambda b: torch_files(b.version, b.cuda, b.hip, b.build_label)
    )
    if kernelish:
        folder = Path(root) / KERNELISH_INDEX
        for dist in _KERNELISH:
            write_dist(folder, dist)
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
    size: int = 0


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
            size=len(data),
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


#: PEP 691's JSON form of the simple API; ``api-version`` 1.1 (PEP 700) is the one with ``size`` per file.
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def _wants_json(accept: str) -> bool:
    """Whether an ``Accept`` header prefers PEP 691 JSON over HTML (uv's: JSON first, HTML at ``q=0.2``)."""
    best: tuple[float, str] = (-1.0, "")
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = next((float(v) for k, _, v in (p.partition("=") for p in params) if k.strip() == "q"), 1.0)
        if (
            kind
            in (
                SIMPLE_JSON,
                "application/vnd.pypi.simple.latest+json",
                "application/vnd.pypi.simple.v1+html",
                "text/html",
            )
            and q > best[0]
        ):
            best = (q, kind)
    return best[1].endswith("+json")


def _json_page(project: str, entries: list[_FileEntry], href_prefix: str, sizes: Mapping[str, int] | None) -> bytes:
    """A PEP 691/700 project page: every file with its ``size`` (``sizes`` overrides it per file-name substring)."""
    files = []
    for e in entries:
        size = max((n for key, n in (sizes or {}).items() if key in e.filename), default=e.size)
        files.append(
            {
                "filename": e.filename,
                "url": f"{href_prefix}{quote(e.filename)}",
                "hashes": {"sha256": e.sha256},
                "requires-python": e.requires_python,
                "size": size,
                "upload-time": "2025-10-15T00:00:00.000000Z",
                **({"core-metadata": {"sha256": e.metadata_sha256}} if e.metadata else {}),
            }
        )
    versions = sorted({parse_wheel_filename(e.filename)[1] for e in entries})
    page = {"meta": {"api-version": "1.1"}, "name": project, "files": files, "versions": [str(v) for v in versions]}
    return json.dumps(page).encode()


def _make_handler(
    catalog: _Catalog, auth: tuple[str, str] | None, server: IndexServer | None = None
) -> type[BaseHTTPRequestHandler]:
    expected = None
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        expected = f"Basic {token}"

    class Handler(BaseHTTPRequestHandler):
        server_version = "uvextra-localindex/1"

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet

        def do_HEAD(self) -> None:
            self._handle(head=True)

        def do_GET(self) -> None:
            self._handle(head=False)

        # -- helpers
        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "text/html",
            headers: Mapping[str, str] | None = None,
            head: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _redirect(self, location: str, head: bool) -> None:
            self._send(HTTPStatus.MOVED_PERMANENTLY, b"", headers={"Location": location}, head=head)

        def _not_found(self, head: bool) -> None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head=head)

        def _handle(self, head: bool) -> None:
            if server is not None and server.delay and not server._stall(unquote(urlsplit(self.path).path)):
                self.close_connection = True  # stopped while stalling: the client is gone or refused
                return
            if expected is not None and self.headers.get("Authorization") != expected:
                self._send(
                    HTTPStatus.UNAUTHORIZED,
                    b"unauthorized\n",
                    "text/plain",
                    {"WWW-Authenticate": 'Basic realm="uvextra-localindex"'},
                    head,
                )
                return
            path = urlsplit(self.path).path
            parts = [unquote(p) for p in path.split("/")]
            # parts[0] == "" (leading slash); a trailing slash gives a last "".
            trailing = path.endswith("/")
            segs = [p for p in parts if p]
            if not segs:
                links = [f'<a href="{html.escape(quote(i))}/simple/">{html.escape(i)}</a>' for i in catalog.indexes()]
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
            if server is not None and server.sizes is not None and _wants_json(self.headers.get("Accept") or ""):
                body = _json_page(project, entries, "../../files/", server.sizes)
                self._send(HTTPStatus.OK, body, SIMPLE_JSON, {"Vary": "Accept"}, head=head)
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
                self._send(
                    HTTPStatus.OK, path.read_bytes(), "application/octet-stream", headers={"ETag": etag}, head=head
                )

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
    * ``sizes=True`` (opt-in) answers a client that asks for PEP 691 JSON (uv does) with the JSON project page
      of PEP 700, each file with its ``size``: uv then records ``size`` in ``uv.lock`` and its pylock export, which
      the HTML pages (and flat indexes) cannot give it.  ``sizes={"torch-2.9.0+cu128-": 2_500_000_000}`` publishes
      that size instead of the real one for files whose name contains a key (a stand-in for a multi-GB wheel; uv
      checks the hash, not the size).  Without it every page is HTML, as before.

    Use as a context manager, or call :meth:`start`/:meth:`stop`; :meth:`start` after
    :meth:`stop` serves again on the same port.  The listing follows the folders live.
    """

    def __init__(
        self,
        root: Path,
        auth: tuple[str, str] | None = None,
        port: int = 0,
        delay: Mapping[str, float] | None = None,
        sizes: bool | Mapping[str, int] = False,
    ) -> None:
        self.root = Path(root)
        self.auth = auth
        #: None: HTML only; otherwise the JSON pages publish sizes, these overriding the real ones by name.
        self.sizes: dict[str, int] | None = ({} if sizes else None) if isinstance(sizes, bool) else dict(sizes)
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
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"uvextra-index-{self._port}",
            daemon=True,
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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

_BACKEND_SOURCE = r'''"""A stdlib-only PEP 517/660 build backend written by the tests' support.localindex.

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
# [project] as written by the tests' support.localindex.write_project, used where tomllib is missing.
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


def write_project(
    path: Path, indexes: Mapping[str, str | os.PathLike[str]], *, package: bool = False, **options: Any
) -> Path:
    """:func:`uvextra._demo_wheels.write_project` (its ``options``), and with ``package=True`` a package project.

    ``package=False`` (default) writes no ``[build-system]``, exactly like the seed: uv then treats the project as
    virtual and never needs a build backend, so everything works offline.  ``package=True`` adds ``[build-system]``
    with ``requires = []`` and a stdlib-only in-tree backend (``backend-path = ["_backend"]``, written into the
    project): any real backend would have to be fetched from an index, and ours are local and carry none.
    """
    path = _demo_wheels.write_project(path, indexes, **options)
    if package:
        pyproject = path / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8")
        pyproject.write_text(
            text + "\n[build-system]\nrequires = []\n"
            f'build-backend = "{_BACKEND_MODULE}"\nbackend-path = ["_backend"]\n',
            encoding="utf-8",
        )
        written = tomllib.loads(text)["project"]  # what the backend reads where tomllib is missing
        backend = path / "_backend"
        backend.mkdir(exist_ok=True)
        source = _BACKEND_SOURCE.replace("%(written)s", repr(json.dumps(written)))
        (backend / f"{_BACKEND_MODULE}.py").write_text(source, encoding="utf-8")
    return path
