"""What a running kernel must know after its environment changed: which imported modules are stale, how to restart.

Core-side: imports neither IPython nor ipykernel. The notebook layer hands in what only it knows (the kernel's
connection file, a callback that makes the kernel exit).

Stale modules. A module imported into this process keeps the code it was imported with; a switch or repair that
replaces its files on disk leaves the kernel running the old build (``torch`` imported as ``2.9.0+cpu`` while the
disk now holds ``2.9.0+cu128``). Two signals, both cheap:
  * the file of each top-level module imported from the environment's site-packages is fingerprinted (device,
    inode, size, mtime) when first seen; uv replaces files on every (re)install — a hard link to another cached
    wheel, or a fresh copy — so a different fingerprint means the code in memory is no longer what is on disk, and
    the same fingerprint means it is: such a module is never stale, whatever its ``__version__`` says;
  * for a module imported afresh since (``del sys.modules[...]``), whose first fingerprint says nothing: its own
    ``__version__`` against its distribution's version now, counted only when that version changed since the
    module was first seen. A ``__version__`` that only adds a local tag to its distribution's version is the same
    build (PyPI's CUDA torch: ``2.14.1+cu130`` in memory, ``2.14.1`` in its METADATA).
Modules that a ``.pth`` file imports at interpreter startup (``_distutils_hack`` from setuptools'
``distutils-precedence.pth``, ``_virtualenv``, editable-install finders) are site machinery, not the user's imports:
they are not watched, so removing setuptools never asks for a restart.

Restart. Like the toolbar's restart where possible: ``POST /api/kernels/{id}/restart`` on the Jupyter server
that owns the kernel (found from ``JPY_PARENT_PID`` → ``{runtime dir}/jpserver-{pid}.json``, which holds the
server's URL and token; on JupyterHub the token there is empty and ``JUPYTERHUB_API_TOKEN`` serves). Where no
server file is found but something will bring the kernel back (a server's restarter, or whoever launched the
kernel set ``UVEXTRA_KERNEL_RESTARTER=1``), the kernel exits and is restarted. Otherwise (nbclient, papermill,
a script): an instruction, no button. Tokens never leave :class:`RestartPlan` — not in its repr, not in messages.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import UvextraError
from .redact import redact

__all__ = [
    "RESTARTER_ENV_VAR",
    "ImportWatch",
    "KernelState",
    "RestartPlan",
    "StaleModule",
    "find_restart",
    "request_restart",
]

# Set by whoever launches a kernel under an auto-restarter that is not a Jupyter server (a custom
# jupyter_client KernelManager with autorestart, a test): exiting the kernel is then a restart.
RESTARTER_ENV_VAR = "UVEXTRA_KERNEL_RESTARTER"
# jupyter_server writes jpserver-{pid}.json; the classic notebook (< 7) wrote nbserver-{pid}.json.
_SERVER_FILES = ("jpserver-{pid}.json", "nbserver-{pid}.json")
# jupyter_client / jupyter_server name a kernel's connection file kernel-{kernel id}.json.
_CONNECTION_FILE = re.compile(r"^kernel-(?P<id>[0-9A-Za-z-]+)\.json$")
RESTART_TIMEOUT_S = 60.0  # the server answers once the new kernel is up
REST_DELAY_S = 0.3  # lets the clicking handler return before the server shuts this kernel down
EXITING = "the kernel is exiting; its restarter starts it again in a few seconds"
RESTARTING = "restarting through the Jupyter server (the kernel comes back in a few seconds)"

_Stat = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------------- stale modules

@dataclass(frozen=True)
class StaleModule:
    """A module of this process whose code on disk changed after it was imported."""

    module: str
    distribution: str | None  # the distribution that now owns its files (None: uninstalled)
    imported: str | None  # the version in memory, when the module says (``__version__``)
    on_disk: str | None  # the version installed now
    reason: str  # one line: why the kernel must restart to use what is on disk

    def __str__(self) -> str:
        return f"{self.module}: {self.reason}"


def _stat(path: str) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _running_site_dirs() -> list[str]:
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return sorted(os.path.abspath(p) for p in paths if p)


def _module_version(module: object) -> str | None:
    # The module's own dict: a module-level __getattr__ may warn (deprecations) or import things for this.
    value = getattr(module, "__dict__", {}).get("__version__")
    return str(value) if isinstance(value, str) and value else None


# What a .pth line imports: `import a, b.c`, `from a import x`, `__import__('a')`, `importlib.import_module('a')`.
_PTH_IMPORT = re.compile(r"\bfrom\s+([\w.]+)\s+import\b|\bimport\s+([\w.]+(?:\s*,\s*[\w.]+)*)"
                         r"|(?:__import__|import_module)\(\s*['\"]([\w.]+)")


def _pth_imports(site_dirs: Sequence[str]) -> set[str]:
    """Top-level names the ``.pth`` files of ``site_dirs`` import (``site`` runs their lines that start with import)."""
    names: set[str] = set()
    for site in site_dirs:
        for pth in Path(site).glob("*.pth"):
            try:
                lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith(("import ", "import\t")):
                    for match in _PTH_IMPORT.finditer(line):
                        for group in filter(None, match.groups()):
                            names.update(n.strip().partition(".")[0] for n in group.split(","))
    return names


@dataclass(frozen=True)
class _Seen:
    path: str
    stat: _Stat | None  # fingerprint at first sight
    module_id: int  # id of the module object then
    version: str | None  # version of the distribution named like the module then


class ImportWatch:
    """Fingerprints of the modules this process imported from a site-packages folder, taken when first seen.

    ``update()`` is cheap enough for every cell (it returns at once when ``sys.modules`` did not grow) and must run
    before anything changes the environment; ``stale()`` compares with the disk now. Modules named in an import line
    of a ``.pth`` file of the site folders when the watch is made are never watched: ``site`` imported them at
    startup (``_distutils_hack``, ``_virtualenv``, editable finders), the user did not, and restarting for them
    after their package is gone helps nobody.
    """

    def __init__(self, site_dirs: Iterable[str | os.PathLike[str]] | None = None,
                 modules: Mapping[str, object] | None = None) -> None:
        dirs = _running_site_dirs() if site_dirs is None else [os.path.abspath(p) for p in site_dirs]
        self.site_dirs: tuple[str, ...] = tuple(d.rstrip(os.sep) + os.sep for d in dirs)
        self._modules = sys.modules if modules is None else modules
        self._startup = _pth_imports(self.site_dirs)
        self._seen: dict[str, _Seen] = {}
        self._checked: set[str] = set()
        self._namespaces: set[str] = set()
        self._size = -1
        self.update()

    def _in_site(self, path: str | None) -> bool:
        return bool(path) and path.startswith(self.site_dirs)  # type: ignore[union-attr]

    def update(self) -> None:
        """Fingerprint every module imported since the last call (top-level ones, and children of namespaces)."""
        if len(self._modules) == self._size:
            return
        fresh: dict[str, tuple[str, object]] = {}
        for name, module in list(self._modules.items()):
            if name in self._checked:
                continue
            self._checked.add(name)
            top, dot, rest = name.partition(".")
            if (dot and (top not in self._namespaces or "." in rest)) or top in self._startup:
                continue
            path = getattr(module, "__file__", None)
            if not isinstance(path, str):
                search = getattr(module, "__path__", None)
                if not dot and search is not None and any(self._in_site(str(p)) for p in list(search)):
                    self._namespaces.add(name)  # e.g. `nvidia`: its children are separate distributions
                continue
            if self._in_site(path):
                fresh[name] = (path, module)
        if fresh:
            from .names import canonicalize_name

            dists = _scan_site(self.site_dirs, {canonicalize_name(n) for n in fresh})
            for name, (path, module) in fresh.items():
                named = dists.get(canonicalize_name(name))
                self._seen[name] = _Seen(path, _stat(path), id(module), named.version if named else None)
        self._size = len(self._modules)

    @property
    def watched(self) -> list[str]:
        return sorted(self._seen)

    def stale(self, installed: Mapping[str, Any] | None = None) -> list[StaleModule]:
        """Imported modules whose files or version on disk differ from what this process runs.

        ``installed`` maps normalized distribution names to objects with ``.version`` and ``.dist_info``
        (``uvextra.installed.scan``); by default the site-packages folders are read here.
        """
        from .names import canonicalize_name

        found: list[StaleModule] = []
        dists = _scan_site(self.site_dirs) if installed is None else installed
        for name in sorted(self._seen):
            module = self._modules.get(name)
            if module is None:
                continue  # deleted from sys.modules: the next import reads the disk anyway
            seen = self._seen[name]
            now = _stat(seen.path)
            imported = _module_version(module)
            if seen.module_id == id(module):
                if now == seen.stat:
                    continue  # the files it was imported from are still there: what runs is what is on disk
                replaced = True
            else:
                # Imported afresh since (del sys.modules[...]), when is unknown: its first fingerprint says nothing.
                # Its version counts only where its distribution's changed since the module was first seen.
                named = dists.get(canonicalize_name(name))
                version = None if named is None or _same_version(named.version, seen.version) else named.version
                if now is not None and not (imported and version and _differs(imported, version)):
                    continue
                replaced = now is None
            dist = _owner(name, seen.path, self.site_dirs, dists)
            on_disk = getattr(dist, "version", None)
            dist_name = str(getattr(dist, "name", "")) or None
            if now is None:
                reason = "uninstalled since it was imported"
                if dist is not None:
                    reason = f"its file is gone; {dist_name} {on_disk} is installed now"
            elif imported and on_disk and (_differs(imported, on_disk)
                                           or (replaced and not _same_version(seen.version, on_disk))):
                # its distribution's version changed since the import (2.9.0+cpu → 2.9.0): that is the news
                reason = f"imported as {imported}, the disk now has {on_disk}"
            elif replaced:
                what = f"{dist_name} {on_disk}" if dist_name else "its files"
                reason = f"{what} was reinstalled since it was imported (other files on disk now)"
            else:
                continue  # a __version__ that disagrees with a distribution that does not own the module
            found.append(StaleModule(name, dist_name, imported, on_disk, reason))
        return found


def _same_version(a: str | None, b: str | None) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return a == b or (a is not None and b is not None and Version(a) == Version(b))
    except InvalidVersion:
        return False


def _differs(module: str, dist: str) -> bool:
    """Whether a module's ``__version__`` names another build than its distribution's ``dist`` version.

    A module may add a local tag its distribution's version lacks: PyPI's CUDA torch says ``2.14.1+cu130`` while
    its METADATA says ``2.14.1``. Otherwise the versions must be equal (``2.9.0+cpu`` ≠ ``2.9.0+cu128``, and
    ``2.9.0`` ≠ ``2.9.0+cpu``).
    """
    from packaging.version import InvalidVersion, Version

    try:
        mine, theirs = Version(module), Version(dist)
    except InvalidVersion:
        return module != dist
    return mine != theirs and not (theirs.local is None and mine.public == theirs.public)


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str
    dist_info: Path


def _scan_site(site_dirs: Sequence[str], only: Collection[str] | None = None) -> dict[str, _Dist]:
    """The distributions installed in ``site_dirs``; with ``only`` (normalized names), just those named so."""
    from .installed import name_and_version  # the one dist-info reader
    from .names import canonicalize_name

    found: dict[str, _Dist] = {}
    for site in site_dirs:
        for dist_info in sorted(Path(site).glob("*.dist-info")):
            # {name}-{version}.dist-info: only the METADATA of the wanted names is read
            if only is not None and canonicalize_name(dist_info.stem.rpartition("-")[0]) not in only:
                continue
            read = name_and_version(dist_info)
            if read is not None:
                found.setdefault(read[0], _Dist(read[0], read[1], dist_info))
    return found


def _record_paths(dist_info: Path) -> set[str]:
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {line.split(",", 1)[0] for line in text.splitlines() if line}


def _owner(module: str, path: str, site_dirs: Sequence[str], dists: Mapping[str, Any]) -> Any:
    """The installed distribution whose RECORD lists ``path`` (tried first: the one named like the module)."""
    from .names import canonicalize_name

    rel = next((path[len(d):] for d in site_dirs if path.startswith(d)), None)
    if rel is None:
        return None
    rel = rel.replace(os.sep, "/")
    guess = dists.get(canonicalize_name(module.replace(".", "-"))) or dists.get(canonicalize_name(module))
    ordered = [guess] if guess is not None else []
    ordered += [d for d in dists.values() if d is not guess]
    for dist in ordered:
        if rel in _record_paths(dist.dist_info):
            return dist
    return None


# ---------------------------------------------------------------------------------------------------- restart

@dataclass(frozen=True)
class RestartPlan:
    """How this kernel can be restarted: ``server`` (REST), ``exit`` (a restarter brings it back) or ``manual``."""

    how: str
    why: str  # one line for the user; never contains a token
    url: str | None = None  # the restart endpoint, without credentials
    fallback_exit: bool = False  # a restarter exists: exiting is a restart too, should the REST call fail
    _token: str = field(default="", repr=False, compare=False)

    @property
    def available(self) -> bool:
        return self.how != "manual"

    def to_dict(self) -> dict[str, object]:
        return {"how": self.how, "why": self.why, "url": self.url}


@dataclass
class KernelState:
    """The kernel's side of a report: modules that need a restart, and how to restart."""

    stale: list[StaleModule]
    restart: RestartPlan
    restarting: str | None = None  # set once a restart was requested: what is happening

    @property
    def needs_restart(self) -> bool:
        return bool(self.stale)

    def to_dict(self) -> dict[str, object]:
        return {
            "needs_restart": self.needs_restart,
            "stale": [vars(s) for s in self.stale],
            "restart": self.restart.to_dict(),
        }


def _runtime_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(environ["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir  # present wherever ipykernel is

        return Path(jupyter_runtime_dir())
    except ImportError:
        data = environ.get("JUPYTER_DATA_DIR") or os.path.join(
            environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter")
        return Path(data) / "runtime"


def _local_url(info: Mapping[str, object]) -> str | None:
    url = str(info.get("url") or "")
    if not url:
        host, port = info.get("hostname") or "127.0.0.1", info.get("port")
        if not port:
            return None
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://{host}:{port}{info.get('base_url') or '/'}"
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: this machine is one of them
        host = "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def find_restart(
    connection_file: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> RestartPlan:
    """Work out how this kernel can be restarted; ``connection_file`` is ``ipykernel.get_connection_file()``."""
    env = os.environ if environ is None else environ
    restarter = env.get(RESTARTER_ENV_VAR, "").strip().lower() in ("1", "true", "yes")
    parent = env.get("JPY_PARENT_PID", "").strip()
    info: dict[str, object] | None = None
    if parent.isdigit():
        folder = Path(runtime_dir) if runtime_dir is not None else _runtime_dir(env)
        for pattern in _SERVER_FILES:
            try:
                info = json.loads((folder / pattern.format(pid=parent)).read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                continue
    exit_plan = RestartPlan(
        "exit", "the kernel exits and its restarter starts it again (as after a crash: the page may say so)")
    if info is None:
        if restarter:
            return exit_plan
        return RestartPlan(
            "manual",
            "no Jupyter server owns this kernel and nothing would start it again (nbclient, papermill, a script): "
            "restart it yourself (Kernel → Restart, or run the notebook again)",
        )
    kernel_id = None
    if connection_file is not None:
        match = _CONNECTION_FILE.match(Path(connection_file).name)
        kernel_id = match.group("id") if match else None
    base = _local_url(info)
    if kernel_id is None or base is None or info.get("sock"):
        why = "the kernel id is unknown" if kernel_id is None else "the server's address is not a TCP URL"
        return RestartPlan("exit", f"{why}; the server's restarter brings the kernel back after it exits")
    token = str(info.get("token") or "") or env.get("JUPYTERHUB_API_TOKEN", "")
    endpoint = f"{base}api/kernels/{kernel_id}/restart"
    where = "JupyterHub's" if not info.get("token") and env.get("JUPYTERHUB_API_TOKEN") else "the"
    return RestartPlan(
        "server", f"restart through {where} Jupyter server at {redact(base)}, as the toolbar does",
        url=endpoint, fallback_exit=True, _token=token,
    )


def _post(plan: RestartPlan, timeout: float) -> None:
    import urllib.request

    assert plan.url is not None
    headers = {"Content-Type": "application/json"}
    if plan._token:
        headers["Authorization"] = f"token {plan._token}"
    req = urllib.request.Request(plan.url, data=b"{}", headers=headers, method="POST")
    # The server is on this machine: a proxy from the environment must not see the request (or the token).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as response:
        response.read()


def _describe_http_error(plan: RestartPlan, exc: BaseException) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        what = {401: "refused the credentials", 403: "refused the request", 404: "does not know this kernel"}
        text = what.get(exc.code, f"answered HTTP {exc.code}")
    elif isinstance(exc, urllib.error.URLError):
        text = f"could not be reached ({exc.reason})"
    else:
        text = f"could not be reached ({type(exc).__name__}: {exc})"
    message = f"the Jupyter server at {plan.url} {text}"
    return redact(message.replace(plan._token, "***") if plan._token else message)


def request_restart(
    plan: RestartPlan,
    shutdown: Callable[[], None] | None = None,
    *,
    timeout: float = RESTART_TIMEOUT_S,
    on_error: Callable[[str], None] | None = None,
    wait: bool = False,
    connection_file: str | None = None,
    after: Mapping[str, Any] | None = None,
) -> str:
    """Start a restart as ``plan`` says; returns one line saying what happens now.

    ``shutdown`` makes this kernel exit (``get_ipython().kernel.do_shutdown(True)``). A REST restart runs in a
    background thread (``wait=False``), a moment later: the server shuts this kernel down before it answers, and
    the caller — a button's handler on the kernel's main thread — must first return and its last messages (the
    card saying "restarting") reach the frontend. ``on_error`` hears a failure of that request (then, where a
    restarter exists, the kernel exits instead).

    With ``connection_file`` the request is made by a process of its own (:mod:`uvextra._restart_helper`), which
    outlives this kernel and then nudges the new one, so that JupyterLab's status comes back to Idle, and has it
    redraw the card (``after``: its widget ids, project, extras; see :mod:`uvextra._after_restart`).
    """
    if plan.how == "manual" or (plan.how == "exit" and shutdown is None):
        raise UvextraError(f"cannot restart this kernel from inside: {plan.why}")
    if plan.how == "exit":
        assert shutdown is not None
        shutdown()
        return EXITING

    def failed(message: str) -> None:
        if plan.fallback_exit and shutdown is not None:
            message += "; exiting the kernel instead (the server's restarter brings it back)"
        if on_error is not None:
            on_error(message)
        if plan.fallback_exit and shutdown is not None:
            shutdown()

    def attempt() -> None:
        try:
            if not wait:
                time.sleep(REST_DELAY_S)
            _post(plan, timeout)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the card
            failed(_describe_http_error(plan, exc))

    if wait:
        attempt()
    elif connection_file is None or not _restart_from_outside(plan, timeout, connection_file, after, failed):
        threading.Thread(target=attempt, name="uvextra-restart", daemon=True).start()
    return RESTARTING


def _restart_from_outside(plan: RestartPlan, timeout: float, connection_file: str, after: Mapping[str, Any] | None,
                          failed: Callable[[str], None]) -> bool:
    """Start :mod:`uvextra._restart_helper`; False when it cannot start (the caller then posts from a thread)."""
    import subprocess

    job = {"url": plan.url, "token": plan._token, "delay": REST_DELAY_S, "timeout": timeout,
           "connection_file": connection_file, "after": dict(after or {})}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "uvextra._restart_helper"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                                text=True, encoding="utf-8")
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job) + "\n")  # the token on stdin: never in a process listing
        proc.stdin.close()
    except (OSError, ValueError):
        return False

    def watch() -> None:  # alive only while this kernel is: hears a refused or unreachable server
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        proc.wait()
        if line.startswith("error: "):
            failed(line.removeprefix("error: "))

    threading.Thread(target=watch, name="uvextra-restart", daemon=True).start()
    return True
