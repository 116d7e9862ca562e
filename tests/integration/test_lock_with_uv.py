"""Reading a real lock with the real uv (``uvextra.core.lock``): the pylock export for one extra and what it selects
here, kept in the venv so that a check after no edit runs no uv, and whether ``uv.lock`` still fits
``pyproject.toml``. The small-file cases without uv are in ``tests/unit/test_lock.py``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from support.localindex import IndexServer
from support.venvs import MakeProject, MakeVenv
from uvextra.core.environment import Environment
from uvextra.core.errors import UvextraError
from uvextra.core.lock import export_pylock, read_uv_lock, stale_lock, wanted_from_pylock
from uvextra.core.project import Project, load_project
from uvextra.core.uv import Uv

STALE = "uv.lock no longer fits pyproject.toml (uv lock --check: the lockfile needs to be updated)"


@pytest.fixture
def uv(uv_new: str, uv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Uv:
    """The newest uv, called in-process by the core with the session's uv settings (cache, no downloads)."""
    for key in ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS"):
        monkeypatch.setenv(key, uv_env[key])
    for key in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_OFFLINE", "UV_FROZEN", "UV_LOCKED"):
        monkeypatch.delenv(key, raising=False)
    out = subprocess.run([uv_new, "--version"], capture_output=True, text=True, check=True).stdout
    return Uv(uv_new, Version(out.split()[1]))


@pytest.fixture
def setup(make_project: MakeProject, make_venv: MakeVenv, tmp_path: Path) -> tuple[Project, Environment]:
    venv = make_venv(tmp_path / "venv")
    return load_project(make_project()), Environment(prefix=venv, python=venv / "bin" / "python")


def test_the_export_for_an_extra_selects_its_build_with_the_wheels_hash(
    setup: tuple[Project, Environment], uv: Uv, index_server: IndexServer, index_root: Path
) -> None:
    project, env = setup
    text = export_pylock(project, env, uv, ["cpu"])
    got = wanted_from_pylock(text, project, env)
    torch = got["torch"]
    wheel = next((index_root / "cpu").glob("torch-2.9.0+cpu-*.whl"))
    assert (torch.version, torch.kind, torch.wheel) == ("2.9.0+cpu", "index", wheel.name)
    assert torch.wheel_hash == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert torch.index is not None and torch.index.startswith(index_server.simple_url("cpu", credentials=False)[:16])
    assert torch.index.rstrip("/").endswith("/cpu/simple")
    # the other extra's build is another wheel from another index
    other = wanted_from_pylock(export_pylock(project, env, uv, ["cu128"]), project, env)["torch"]
    assert (other.version, other.index is not None and other.index.rstrip("/").endswith("/cu128/simple")) == (
        "2.9.0+cu128",
        True,
    )


def test_an_export_is_kept_in_the_venv_and_not_asked_of_uv_again(
    setup: tuple[Project, Environment], uv: Uv, tmp_path: Path
) -> None:
    project, env = setup
    text = export_pylock(project, env, uv, ["cpu"])
    gone = Uv(str(tmp_path / "no-uv-here"), uv.version)  # a uv that cannot start: only the kept copy can answer
    assert export_pylock(project, env, gone, ["cpu"]) == text
    with pytest.raises(UvextraError) as caught:
        export_pylock(project, env, gone, ["pypi"])  # not asked before: uv must run, and cannot
    assert str(caught.value).startswith(f"cannot start uv at {gone.path}: ")


def test_an_edited_lock_is_exported_again(setup: tuple[Project, Environment], uv: Uv, tmp_path: Path) -> None:
    project, env = setup
    export_pylock(project, env, uv, ["cpu"])
    project.lockfile.write_text(project.lockfile.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(UvextraError):
        export_pylock(project, env, Uv(str(tmp_path / "no-uv-here"), uv.version), ["cpu"])


def test_a_uv_too_old_to_export_is_refused_saying_what_to_install(setup: tuple[Project, Environment], uv: Uv) -> None:
    project, env = setup
    with pytest.raises(UvextraError) as caught:
        export_pylock(project, env, Uv(uv.path, Version("0.6.14")), ["cpu"])
    assert str(caught.value) == (
        "uv 0.6.14 has no `uv export --format pylock.toml` (added in uv 0.6.15); "
        "install a newer uv: `pip install 'uv>=0.9.24'` or unset UVEXTRA_UV"
    )


def test_an_unknown_extra_is_refused_naming_the_projects_extras(setup: tuple[Project, Environment], uv: Uv) -> None:
    project, env = setup
    with pytest.raises(UvextraError) as caught:
        export_pylock(project, env, uv, ["nope"])
    assert str(caught.value) == "unknown extra 'nope'; this project's extras are: cpu, cu128, pypi"


def test_a_lock_uv_cannot_read_is_uvs_error_in_one_line(setup: tuple[Project, Environment], uv: Uv) -> None:
    project, env = setup
    project.lockfile.write_text("version = 1\nrevision = 3\n\n[[package]]\nname = 7\n", encoding="utf-8")
    with pytest.raises(UvextraError) as caught:
        export_pylock(project, env, uv, ["cpu"])
    message = str(caught.value)
    assert message.startswith("uv could not export the lock for extras ['cpu']: error: "), message
    assert "uv.lock" in message and "\n" not in message


def test_a_fresh_lock_fits_and_an_edited_pyproject_does_not(
    setup: tuple[Project, Environment], uv: Uv, tmp_path: Path
) -> None:
    project, env = setup
    assert stale_lock(project, env, uv) is None
    text = project.pyproject.read_text(encoding="utf-8")
    edited = re.sub(r"^dependencies = \[", 'dependencies = ["filelock", ', text, count=1, flags=re.M)
    assert edited != text, "the seed project has no dependencies line"
    project.pyproject.write_text(edited, encoding="utf-8")
    assert stale_lock(project, env, uv) == STALE
    # both answers are kept by the files' text: asked again, no uv runs
    gone = Uv(str(tmp_path / "no-uv-here"), uv.version)
    assert stale_lock(project, env, gone) == STALE
    project.pyproject.write_text(text, encoding="utf-8")
    assert stale_lock(project, env, gone) is None


def test_the_lock_read_matches_what_uv_locked(setup: tuple[Project, Environment]) -> None:
    project, _env = setup
    info = read_uv_lock(project)
    torch = {version: keys for (name, version), keys in info.sources.items() if name == "torch"}
    assert {"2.9.0+cpu", "2.9.0+cu128", "2.9.0"} <= set(torch)
    assert all(len(keys) == 1 and keys[0].startswith("registry:") for keys in torch.values())
