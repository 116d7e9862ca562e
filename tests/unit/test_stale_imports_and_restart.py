"""uvextra.kernel on fabricated site-packages and a restart endpoint served on 127.0.0.1 (no kernel, no IPython)."""

from __future__ import annotations

import json
import os
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from uvextra.core.errors import UvextraError
from uvextra.kernel.restart import RESTARTER_ENV_VAR, find_restart, request_restart
from uvextra.kernel.stale_imports import ImportWatch

# ---------------------------------------------------------------------------------------------------- stale modules


def _install(site: Path, name: str, version: str, body: str | None = None, *, package: bool = True) -> Path:
    """A dist in ``site`` the way an installer leaves it: files replaced (new inode), dist-info with RECORD."""
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    rel = f"{name}/__init__.py" if package else f"{name}.py"
    target = site / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(body if body is not None else f"__version__ = {version!r}\n")
    os.replace(tmp, target)  # a new file, as uv's hard link or copy makes
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{rel},,\n{name}-{version}.dist-info/METADATA,,\n")
    return target


def _module(name: str, path: Path, version: str | None) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    if version is not None:
        mod.__version__ = version  # type: ignore[attr-defined]
    return mod


def test_a_switch_under_an_imported_module_is_seen(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    path = _install(site, "torch", "2.9.0+cpu")
    modules = {"torch": _module("torch", path, "2.9.0+cpu"), "json": json}
    watch = ImportWatch([site], modules)
    assert watch.watched == ["torch"]  # only what lives in the environment's site-packages
    assert watch.stale() == []
    _install(site, "torch", "2.9.0+cu128")
    [stale] = watch.stale()
    assert (stale.module, stale.distribution, stale.imported, stale.on_disk) == (
        "torch",
        "torch",
        "2.9.0+cpu",
        "2.9.0+cu128",
    )
    assert str(stale) == "torch: imported as 2.9.0+cpu, the disk now has 2.9.0+cu128"


def test_same_version_other_build_is_seen_by_its_files(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    path = _install(site, "torch", "2.9.0", "__version__ = '2.9.0'\n_build = 'mirror-cpu'\n")
    modules = {"torch": _module("torch", path, "2.9.0")}
    watch = ImportWatch([site], modules)
    _install(site, "torch", "2.9.0", "__version__ = '2.9.0'\n_build = 'pypi-cu128'\n")
    [stale] = watch.stale()
    assert stale.reason == "torch 2.9.0 was reinstalled since it was imported (other files on disk now)"


def test_modules_imported_later_are_fingerprinted_on_update(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    modules: dict[str, types.ModuleType] = {}
    watch = ImportWatch([site], modules)
    path = _install(site, "plain", "1.0", "X = 1\n", package=False)
    modules["plain"] = _module("plain", path, None)
    watch.update()
    _install(site, "plain", "1.1", "X = 2\n", package=False)
    [stale] = watch.stale()
    assert (stale.module, stale.imported, stale.on_disk) == ("plain", None, "1.1")


def test_a_module_imported_afresh_is_not_stale(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    path = _install(site, "plain", "1.0", "X = 1\n", package=False)
    modules = {"plain": _module("plain", path, None)}
    watch = ImportWatch([site], modules)
    _install(site, "plain", "1.1", "X = 2\n", package=False)
    modules["plain"] = _module("plain", path, None)  # del sys.modules["plain"]; import plain
    assert watch.stale() == []


def test_uninstalled_and_namespace_children(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    gone = _install(site, "gone", "1.0")
    cublas = _install(site / "nvidia", "cublas", "12.8")
    namespace = types.ModuleType("nvidia")
    namespace.__path__ = [str(site / "nvidia")]  # type: ignore[attr-defined]
    modules = {
        "gone": _module("gone", gone, None),
        "nvidia": namespace,
        "nvidia.cublas": _module("nvidia.cublas", cublas, None),
    }
    watch = ImportWatch([site], modules)
    assert watch.watched == ["gone", "nvidia.cublas"]
    gone.unlink()  # uninstalled: files and dist-info gone
    for f in (site / "gone-1.0.dist-info").iterdir():
        f.unlink()
    (site / "gone-1.0.dist-info").rmdir()
    [stale] = watch.stale()
    assert (stale.module, stale.reason) == ("gone", "uninstalled since it was imported")


def test_a_version_attribute_that_never_matched_is_no_reason(tmp_path: Path) -> None:
    """Some packages' __version__ differs from their distribution's for good; only a change on disk counts."""
    site = tmp_path / "site-packages"
    path = _install(site, "odd", "1.0", "__version__ = '0.9-dev'\n")
    (site / "other-1.0.dist-info").mkdir()
    (site / "other-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: odd\nVersion: 1.0\n")
    watch = ImportWatch([site], {"odd": _module("odd", path, "0.9-dev")})
    # The dist named like the module does not own the file: no claim is made.
    (site / "odd-1.0.dist-info" / "RECORD").write_text("")
    assert watch.stale() == []


def test_a_module_whose_files_did_not_change_is_never_stale(tmp_path: Path) -> None:
    """A freshly started kernel is not told to restart: only files replaced since import count."""
    site = tmp_path / "site-packages"
    torch = _install(site, "torch", "2.14.1", "__version__ = '2.14.1+cu130'\n")  # PyPI's CUDA torch says so
    odd = _install(site, "odd", "1.0", "__version__ = '0.9-dev'\n")  # its own dist, but a version never bumped
    modules = {"torch": _module("torch", torch, "2.14.1+cu130"), "odd": _module("odd", odd, "0.9-dev")}
    watch = ImportWatch([site], modules)
    assert watch.watched == ["odd", "torch"]
    assert watch.stale() == []
    # Imported afresh (del sys.modules[...]) while its distribution did not change: still no reason.
    modules["odd"] = _module("odd", odd, "0.9-dev")
    assert watch.stale() == []


def test_a_local_tag_only_the_module_adds_is_the_same_build(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    path = _install(site, "torch", "2.13.0")
    modules = {"torch": _module("torch", path, "2.13.0")}
    watch = ImportWatch([site], modules)
    _install(site, "torch", "2.14.1", "__version__ = '2.14.1+cu130'\n")
    modules["torch"] = _module("torch", path, "2.14.1+cu130")  # imported afresh: what is on disk now
    assert watch.stale() == []
    watch = ImportWatch([site], modules)  # a kernel that imported it first, then a repair reinstalled it
    _install(site, "torch", "2.14.1", "__version__ = '2.14.1+cu130'\n_build = 'again'\n")
    [stale] = watch.stale()  # the same version: told as a reinstall, not as a version mismatch
    assert str(stale) == "torch: torch 2.14.1 was reinstalled since it was imported (other files on disk now)"


def test_a_local_tag_that_differs_or_only_the_disk_has_is_another_build(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    path = _install(site, "torch", "2.9.0")
    modules = {"torch": _module("torch", path, "2.9.0")}
    watch = ImportWatch([site], modules)
    _install(site, "torch", "2.9.0+cpu")
    assert [str(s) for s in watch.stale()] == ["torch: imported as 2.9.0, the disk now has 2.9.0+cpu"]
    modules["torch"] = _module("torch", path, "2.9.0+cpu")  # imported afresh, then switched under it
    _install(site, "torch", "2.9.0+cu128")
    assert [str(s) for s in watch.stale()] == ["torch: imported as 2.9.0+cpu, the disk now has 2.9.0+cu128"]


def test_modules_a_pth_file_imported_at_startup_are_not_the_users(tmp_path: Path) -> None:
    """setuptools' distutils-precedence.pth imports _distutils_hack at startup; removing setuptools is no restart."""
    site = tmp_path / "site-packages"
    _install(site, "setuptools", "80.9.0")
    hack = site / "_distutils_hack" / "__init__.py"
    hack.parent.mkdir()
    hack.write_text("def add_shim(): pass\n")
    pth = site / "distutils-precedence.pth"  # as setuptools 80 ships it
    pth.write_text(
        "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == 'local'; "
        "enabled and __import__('_distutils_hack').add_shim(); \n"
    )
    finder = site / "__editable___mylib_0_1_finder.py"
    finder.write_text("def install(): pass\n")
    (site / "__editable__.mylib-0.1.pth").write_text(
        "import __editable___mylib_0_1_finder; __editable___mylib_0_1_finder.install()\n"
    )
    torch = _install(site, "torch", "2.9.0+cpu")
    modules = {
        "_distutils_hack": _module("_distutils_hack", hack, None),
        "torch": _module("torch", torch, "2.9.0+cpu"),
        "__editable___mylib_0_1_finder": _module("__editable___mylib_0_1_finder", finder, None),
    }
    watch = ImportWatch([site], modules)
    assert watch.watched == ["torch"]
    for gone in (
        hack,
        hack.parent,
        pth,
        finder,
        *site.glob("__editable__*.pth"),
        site / "setuptools" / "__init__.py",
        site / "setuptools",
    ):  # uninstalled
        gone.rmdir() if gone.is_dir() else gone.unlink()
    for f in (site / "setuptools-80.9.0.dist-info").iterdir():
        f.unlink()
    (site / "setuptools-80.9.0.dist-info").rmdir()
    assert watch.stale() == []
    _install(site, "torch", "2.9.0+cu128")  # what the user imported is still watched
    assert [s.module for s in watch.stale()] == ["torch"]


# ---------------------------------------------------------------------------------------------------- restart plan


def _server_file(runtime: Path, pid: int, **info: object) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    data = {
        "base_url": "/",
        "hostname": "127.0.0.1",
        "port": 8888,
        "secure": False,
        "sock": "",
        "token": "t0k3n-secret",
        "url": "http://127.0.0.1:8888/",
        "pid": pid,
    }
    data.update(info)
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(data))


CONNECTION = "/run/jupyter/kernel-5b7e4f0c-9a1d-4c2e-8f00-0123456789ab.json"
KERNEL_ID = "5b7e4f0c-9a1d-4c2e-8f00-0123456789ab"


def test_no_server_and_no_restarter_means_an_instruction(tmp_path: Path) -> None:
    plan = find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path)
    assert plan.how == "manual" and not plan.available
    assert "nbclient, papermill" in plan.why and "Kernel → Restart" in plan.why
    with pytest.raises(UvextraError, match="cannot restart this kernel from inside"):
        request_restart(plan, shutdown=lambda: None)


def test_a_declared_restarter_means_exit(tmp_path: Path) -> None:
    plan = find_restart(CONNECTION, environ={RESTARTER_ENV_VAR: "1"}, runtime_dir=tmp_path)
    assert plan.how == "exit"
    called = []
    message = request_restart(plan, shutdown=lambda: called.append(True))
    assert called == [True] and "restarter starts it again" in message


def test_the_owning_server_is_found_from_the_parent_pid(tmp_path: Path) -> None:
    _server_file(tmp_path, 4242, url="http://0.0.0.0:8888/lab-base/", base_url="/lab-base/")
    plan = find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path)
    assert plan.how == "server" and plan.fallback_exit
    assert plan.url == f"http://127.0.0.1:8888/lab-base/api/kernels/{KERNEL_ID}/restart"
    for shown in (plan.why, repr(plan), json.dumps(plan.to_dict())):
        assert "t0k3n-secret" not in shown
    # Another server's file (another parent) is not ours.
    other = find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4343"}, runtime_dir=tmp_path)
    assert other.how == "manual"
    # A unix-socket server, or an unknown kernel id: its restarter still brings an exited kernel back.
    _server_file(tmp_path, 4444, sock="/run/jupyter.sock")
    assert find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4444"}, runtime_dir=tmp_path).how == "exit"
    assert find_restart("/tmp/weird.json", environ={"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path).how == "exit"


class _Restarts(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "x", "name": "python3"}')

    def log_message(self, *args: object) -> None:
        pass


Served = tuple[int, type[_Restarts]]


@pytest.fixture
def restart_server() -> Iterator[Served]:
    handler = type("Handler", (_Restarts,), {"seen": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_rest_restart_carries_the_token_and_ignores_proxies(
    tmp_path: Path, restart_server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, handler = restart_server
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy would swallow the request (and the token)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    _server_file(tmp_path, 4242, url=f"http://127.0.0.1:{port}/")
    plan = find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path)
    errors: list[str] = []
    message = request_restart(plan, shutdown=lambda: errors.append("exited"), on_error=errors.append, wait=True)
    assert "restarting through the Jupyter server" in message
    assert handler.seen == [(f"/api/kernels/{KERNEL_ID}/restart", "token t0k3n-secret")]
    assert errors == []


def test_jupyterhub_token_serves_when_the_server_file_has_none(tmp_path: Path, restart_server: Served) -> None:
    port, handler = restart_server
    _server_file(tmp_path, 4242, url=f"http://127.0.0.1:{port}/user/ada/", token="")
    env = {"JPY_PARENT_PID": "4242", "JUPYTERHUB_API_TOKEN": "hub-t0k3n"}
    plan = find_restart(CONNECTION, environ=env, runtime_dir=tmp_path)
    assert "JupyterHub's Jupyter server" in plan.why and "hub-t0k3n" not in repr(plan)
    request_restart(plan, wait=True, shutdown=lambda: None)
    assert handler.seen == [(f"/user/ada/api/kernels/{KERNEL_ID}/restart", "token hub-t0k3n")]


def test_a_refused_restart_is_one_line_without_the_token_then_exit(tmp_path: Path, restart_server: Served) -> None:
    port, handler = restart_server
    handler.status = 403
    _server_file(tmp_path, 4242, url=f"http://127.0.0.1:{port}/")
    plan = find_restart(CONNECTION, environ={"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path)
    heard: list[str] = []
    request_restart(plan, shutdown=lambda: heard.append("exit"), on_error=heard.append, wait=True)
    assert heard[-1] == "exit"
    assert heard[0].startswith(f"the Jupyter server at http://127.0.0.1:{port}/api/kernels/")
    assert "refused the request; exiting the kernel instead" in heard[0]
    assert "t0k3n-secret" not in heard[0]
