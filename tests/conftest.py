"""Shared pytest fixtures: real uv binaries, real local package indexes, real projects and venvs; the tiers' markers.

The tests live in three folders, one per tier, and each test carries its folder's marker (see ``TIERS``):
``unit/`` (no uv process, no kernel), ``integration/`` (the real uv, real kernels, the CLI in processes) and
``e2e/`` (a real browser, a real hub, real torch wheels, real users). The harness they share is the package
``tests/support`` (imported as ``support.…``); fixtures are here and only here.

Everything here runs the real ``uv`` against indexes served on 127.0.0.1 by
:class:`support.localindex.IndexServer`; nothing is mocked and nothing reaches the network
(except the one-time install of the old uv 0.9.4 binary, see ``uv_old``).

Fixtures
--------
``uv_env`` (session)
    ``dict`` of environment variables for uv subprocesses: ``os.environ`` without the
    variables that would redirect uv (``VIRTUAL_ENV``, ``UV_PYTHON``, ``UV_PROJECT_ENVIRONMENT``,
    ``CONDA_PREFIX``, ``UV_INDEX*``, ``PIP_*`` and a few more, see ``_DROPPED``) plus a
    session ``UV_CACHE_DIR``, ``UV_PYTHON_DOWNLOADS=never``, ``UV_NO_PROGRESS=1``, and
    ``FORCE_COLOR=1`` ``CLICOLOR_FORCE=1`` (ipykernel sets both in every kernel, so every uvextra
    started from a notebook runs with them; see :data:`support.run.KERNEL_COLOR_ENV`).  Shared by
    the whole session: copy it (``dict(uv_env, X="1")``) before changing anything.
``uv_new`` (session)
    ``str`` path of the newest uv: ``uv.find_uv_bin()`` of the running interpreter.
``uv_old`` (session)
    ``str`` path of a uv 0.9.4 binary (has the astral-sh/uv#16368 bug), installed once into
    ``~/.cache/uvextra-tests/uv-0.9.4`` and reused; ``UVEXTRA_TEST_UV_OLD`` may name a binary
    instead.  Skips (with the reason) only when it cannot be installed.
``index_root`` (session)
    ``Path`` of a folder holding one folder of wheels per index: the demo indexes of
    :func:`support.localindex.build_demo_indexes` (``pypi``, ``cpu``, ``cu128``, ``mirror``,
    ``mirror-meta``) plus ``kernelish`` (stand-ins for ``ipykernel``, ``tornado``, ``comm``).
``index_server`` (session)
    A started :class:`~support.localindex.IndexServer` serving ``index_root``.  Do not stop
    it; for "index unreachable" tests start your own ``IndexServer(index_root)``.
``uvextra_wheel`` (session)
    ``Path`` of the uvextra wheel of this checkout, built offline once (skips without hatchling).
``make_project`` (function)
    Factory ``make_project(extras_map=None, *, lock=True, **write_project_kwargs) -> Path``:
    a seed-shaped project in a fresh folder under ``tmp_path``, locked with ``uv_new``.
``make_venv`` (function)
    Factory ``make_venv(path, python=sys.executable, packages=(), indexes=("pypi",
    "kernelish")) -> Path``: ``uv venv`` (nothing seeded) and, if ``packages`` are given,
    ``uv pip install`` of them from the local indexes.
``target_venv`` (function)
    ``Path`` of a venv a switch *targets*: made by uv, holding the stand-in ipykernel only.
``pyvenv`` (function)
    ``Path`` of the same made as users make it: ``python -m venv`` (pip, setuptools), then the stand-in ipykernel.
``kernel_python`` (function)
    ``Path`` of the python of a venv that *runs* real kernels, with this checkout's uvextra wheel.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

if importlib.util.find_spec("uvextra") is None:  # not installed (yet): use the source tree
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from support.kernels import build_uvextra_wheel, make_kernel_venv
from support.localindex import IndexServer, build_demo_indexes, write_project
from support.run import KERNEL_COLOR_ENV, run_uv
from support.venvs import MakeProject, MakeVenv

#: The old uv release that still has the astral-sh/uv#16368 bug.
UV_OLD_VERSION = "0.9.4"

_DROPPED = {
    "VIRTUAL_ENV",
    "UV_PYTHON",
    "UV_PROJECT_ENVIRONMENT",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_OFFLINE",
    "UV_FROZEN",
    "UV_LOCKED",
    "UV_PROJECT",
    "UV_SYSTEM_PYTHON",
    "UV_CACHE_DIR",
    "UVEXTRA_FAKE_TORCH_CRASH",
    "UVEXTRA_FAKE_TORCH_HANG",
}


#: Each folder under tests/ is a tier; its tests carry the tier's marker (``pytest -m unit`` runs the fast ones).
TIERS = ("unit", "integration", "e2e")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def uv_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _DROPPED and not key.startswith(("UV_INDEX", "PIP_"))
    }
    env["UV_CACHE_DIR"] = str(tmp_path_factory.mktemp("uv-cache"))
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    env.update(KERNEL_COLOR_ENV)
    return env


@pytest.fixture(scope="session")
def uv_new() -> str:
    from uv import find_uv_bin

    return os.fspath(find_uv_bin())


def _uv_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [os.fspath(binary), "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except OSError:
        return None
    parts = out.stdout.split()
    return parts[1] if out.returncode == 0 and len(parts) >= 2 else None


@pytest.fixture(scope="session")
def uv_old(uv_new: str) -> str:
    override = os.environ.get("UVEXTRA_TEST_UV_OLD")
    if override:
        return override
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base = cache_home / "uvextra-tests"
    final = base / f"uv-{UV_OLD_VERSION}"
    binary = final / "bin" / "uv"
    if _uv_version(binary) == UV_OLD_VERSION:
        return os.fspath(binary)
    base.mkdir(parents=True, exist_ok=True)
    # One installer at a time (parallel pytest runs, xdist workers); others wait and reuse.
    with open(base / f"uv-{UV_OLD_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _uv_version(binary) == UV_OLD_VERSION:
            return os.fspath(binary)
        staging = base / f"uv-{UV_OLD_VERSION}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        # The machine's own package registry configuration applies here (not the test env).
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"VIRTUAL_ENV", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "UV_OFFLINE"}
        }
        try:
            proc = subprocess.run(
                [
                    uv_new,
                    "pip",
                    "install",
                    "--python",
                    sys.executable,
                    "--target",
                    os.fspath(staging),
                    f"uv=={UV_OLD_VERSION}",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"cannot install uv=={UV_OLD_VERSION} for the old-uv tests: {exc}")
        staged = staging / "bin" / "uv"
        if proc.returncode != 0 or _uv_version(staged) != UV_OLD_VERSION:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(
                f"cannot install uv=={UV_OLD_VERSION} for the old-uv tests "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
    return os.fspath(binary)


@pytest.fixture(scope="session")
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexes")
    build_demo_indexes(root, kernelish=True)
    return root


@pytest.fixture(scope="session")
def index_server(index_root: Path) -> Iterator[IndexServer]:
    with IndexServer(index_root) as server:
        yield server


@pytest.fixture
def make_project(tmp_path: Path, index_server: IndexServer, uv_new: str, uv_env: dict[str, str]) -> MakeProject:
    """Factory for seed-shaped projects (see the module docstring)."""
    counter = iter(range(1, 10_000))

    def factory(
        extras_map: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        lock: bool = True,
        **kwargs: object,
    ) -> Path:
        """``extras_map``: extra -> index name on ``index_server`` (or a URL / folder).

        Index names become ``simple_url(name)``, or ``flat_url(name)`` for extras listed in
        ``flat=``.  The default index is the local ``pypi`` one.  Other keyword arguments go
        to :func:`support.localindex.write_project`.
        """
        if extras_map is None:
            extras_map = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}
        flat = set(kwargs.get("flat", ()))  # type: ignore[call-overload]
        indexes: dict[str, str | os.PathLike[str]] = {}
        for extra, where in extras_map.items():
            if isinstance(where, os.PathLike) or "://" in where or where.startswith("/"):
                indexes[extra] = where
            elif extra in flat:
                indexes[extra] = index_server.flat_url(where)
            else:
                indexes[extra] = index_server.simple_url(where)
        kwargs.setdefault("extras", tuple(extras_map))
        kwargs.setdefault("default_index", index_server.simple_url("pypi"))
        path = tmp_path / f"project{next(counter)}"
        write_project(path, indexes, **kwargs)  # type: ignore[arg-type]
        if lock:
            run_uv(uv_new, "lock", env=uv_env, cwd=path)
        return path

    return factory


@pytest.fixture
def make_venv(index_server: IndexServer, uv_new: str, uv_env: dict[str, str]) -> MakeVenv:
    """Factory for venvs made by the newest uv (see the module docstring)."""

    def factory(
        path: Path,
        python: str = sys.executable,
        packages: Sequence[str] = (),
        indexes: Sequence[str] = ("pypi", "kernelish"),
    ) -> Path:
        path = Path(path).absolute()
        run_uv(uv_new, "venv", "--quiet", "--python", python, path, env=uv_env)
        if packages:
            index_args: list[str] = []
            for n, name in enumerate(indexes):
                index_args += ["--index-url" if n == 0 else "--extra-index-url", index_server.simple_url(name)]
            run_uv(uv_new, "pip", "install", "--python", path / "bin" / "python", *index_args, *packages, env=uv_env)
        return path

    return factory


@pytest.fixture(scope="session")
def uvextra_wheel(tmp_path_factory: pytest.TempPathFactory, uv_new: str, uv_env: dict[str, str]) -> Path:
    """The uvextra wheel of this checkout (with its startup file), built once per session."""
    if importlib.util.find_spec("hatchling") is None:  # the build must not fetch its backend from a registry
        pytest.skip("building the uvextra wheel offline needs hatchling in the test environment (the `test` extra)")
    return build_uvextra_wheel(uv_new, tmp_path_factory.mktemp("uvextra-wheel"), uv_env)


# ---------------------------------------------------------------------------------------------------- venvs
# Two kinds, named apart: a venv a switch *targets* (what a kernel runs from, without a kernel running), and a venv
# that *runs* a real kernel with this checkout's uvextra (its python).


@pytest.fixture
def target_venv(make_venv: MakeVenv, tmp_path: Path) -> Path:
    """A venv as a kernel's, made by uv: the stand-in ipykernel (with tornado and comm) and nothing else."""
    return make_venv(tmp_path / "kernel-venv", packages=["ipykernel"])


@pytest.fixture
def pyvenv(tmp_path: Path, uv_new: str, uv_env: dict[str, str], index_server: IndexServer) -> Path:
    """A kernel venv as users make one: ``python -m venv`` (pip, setuptools), then the stand-in ipykernel."""
    venv = tmp_path / "kernel-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    run_uv(
        uv_new,
        "pip",
        "install",
        "--python",
        venv / "bin" / "python",
        "--index-url",
        index_server.simple_url("kernelish"),
        "--extra-index-url",
        index_server.simple_url("pypi"),
        "ipykernel",
        env=uv_env,
    )
    return venv


@pytest.fixture
def kernel_python(tmp_path: Path, uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]) -> Path:
    """The python of a fresh venv that runs real kernels: this checkout's uvextra wheel installed, ipykernel and the
    rest linked from the test environment (:func:`support.kernels.make_kernel_venv`)."""
    return make_kernel_venv(tmp_path / "venv", uvextra_wheel, uv_new, uv_env)
