"""The user env engine (``uvextra.userenv``) with real uv, real venvs and the local stand-in indexes.

An "image" venv holds a CUDA stand-in torch and the ``ipykernel`` stand-in; the user's env for a project is made
from it, switched to ``cpu``, then to ``cu128``: the user's torch comes first, the image's packages are visible
and never changed (every byte hashed before and after), the kernelspec names project and backend, and
``uvextra envs`` lists and removes the env with its kernelspec. The multi-user scenario with the real CPU torch
and real kernels is tests/e2e/test_userenv_users.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import run_cli
from support.venvs import tree_digest
from uvextra.core import userenv
from uvextra.core.environment import Environment
from uvextra.core.errors import UvextraError


def ask(python: Path, code: str) -> str:
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr  # a broken .pth prints here and exits 0
    return done.stdout.strip()


@pytest.fixture
def image(make_venv, tmp_path: Path) -> Environment:
    venv = make_venv(tmp_path / "image", packages=["torch==2.9.0+cu128"], indexes=("pypi", "cu128"))
    return Environment(venv, venv / "bin" / "python")


@pytest.fixture
def user_environ(tmp_path: Path, uv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS"):
        monkeypatch.setenv(key, uv_env[key])
    monkeypatch.delenv("UVEXTRA_UV", raising=False)
    monkeypatch.setenv("UVEXTRA_ENVS_DIR", str(tmp_path / "home" / "envs"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "home" / "jupyter"))
    return {"UVEXTRA_ENVS_DIR": str(tmp_path / "home" / "envs"), "JUPYTER_DATA_DIR": str(tmp_path / "home" / "jupyter")}


def test_user_env_is_layered_on_the_image_and_switches_without_touching_it(
    make_project, image: Environment, user_environ: dict[str, str], tmp_path: Path
) -> None:
    project = make_project()
    before = tree_digest(image.prefix)
    image_torch = ask(image.python, "import torch; print(torch.__version__, torch.version.cuda)")
    assert image_torch == "2.9.0+cu128 12.8"

    made = userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
    assert made.created and made.report.failure is None, made.report.failure
    env = made.env
    assert env.prefix.parent == Path(user_environ["UVEXTRA_ENVS_DIR"])
    assert stat.S_IMODE(env.prefix.stat().st_mode) == 0o700  # nobody else may read or change it
    # The user's torch first; the image's site-packages after the user's own, and the image's packages importable.
    seen = json.loads(
        ask(env.python, "import json, sys, torch; print(json.dumps([torch.__version__, torch.version.cuda, sys.path]))")
    )
    assert seen[:2] == ["2.9.0+cpu", None]
    own, theirs = str(env.prefix / "lib"), str(image.prefix / "lib")
    order = [p for p in seen[2] if p.startswith((own, theirs))]
    assert order and order[0].startswith(own) and order[-1].startswith(theirs), order
    assert made.report.errors == [] and made.report.extras == ["cpu"]
    assert [c.name for c in made.report.changes.removed] == []
    assert made.notes == ["your environment's torch 2.9.0+cpu is used in its kernels, not the image's 2.9.0+cu128"]
    # the image: the same bytes, and still its own CUDA build
    assert tree_digest(image.prefix) == before
    assert ask(image.python, "import torch; print(torch.__version__, torch.version.cuda)") == image_torch

    spec = json.loads((Path(user_environ["JUPYTER_DATA_DIR"]) / "kernels" / env.kernelspec / "kernel.json").read_text())
    assert spec["argv"][:3] == [str(env.python), "-m", "ipykernel_launcher"]
    assert spec["display_name"] == f"{env.project_name} (cpu, your env)"

    # The same project again, another backend: the same env, switched; the kernelspec follows.
    again = userenv.ensure_user_env(["cu128"], project, image=image, probe=False)
    assert (again.created, again.env.prefix) == (False, env.prefix)
    assert again.report.errors == [] and again.report.extras == ["cu128"]
    assert ask(env.python, "import torch; print(torch.__version__)") == "2.9.0+cu128"
    spec = json.loads((Path(user_environ["JUPYTER_DATA_DIR"]) / "kernels" / env.kernelspec / "kernel.json").read_text())
    assert spec["display_name"] == f"{env.project_name} (cu128, your env)"
    assert tree_digest(image.prefix) == before
    assert [e.prefix for e in userenv.list_user_envs()] == [env.prefix]


def test_a_user_env_from_a_user_envs_kernel_layers_on_the_image_not_on_itself(
    make_project, image: Environment, user_environ: dict[str, str]
) -> None:
    made = userenv.ensure_user_env(["cpu"], make_project(), image=image, probe=False)
    assert userenv.image_of(made.env.environment()).prefix == image.prefix
    assert userenv.image_of(image).prefix == image.prefix


def test_envs_lists_and_removes_with_the_kernelspec(
    make_project,
    image: Environment,
    user_environ: dict[str, str],
    uv_env: dict[str, str],
) -> None:
    made = userenv.ensure_user_env(["cpu"], make_project(), image=image, probe=False)
    env = dict(os.environ)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("envs", *args, env=env, timeout=120)

    listed = cli("--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["backend"], r["kernelspec"], r["project"]) for r in rows] == [
        (made.env.name, ["cpu"], made.env.kernelspec, made.env.project)
    ]
    assert rows[0]["own_bytes"] > 0 and rows[0]["last_used"] >= made.env.created
    text = cli()
    assert text.returncode == 0 and made.env.name in text.stdout and "cpu" in text.stdout, text

    missing = cli("remove", "nope")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    assert "uvextra envs" in missing.stderr

    removed = cli("remove", made.env.name)
    assert removed.returncode == 0, removed.stderr
    assert not made.env.prefix.exists()
    assert not (Path(user_environ["JUPYTER_DATA_DIR"]) / "kernels" / made.env.kernelspec).exists()
    assert image.python.exists()
    assert json.loads(cli("--json").stdout) == []


def test_bad_input_is_one_line(
    tmp_path: Path,
    image: Environment,
    user_environ: dict[str, str],
    make_project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UvextraError, match="name the backend"):
        userenv.ensure_user_env([], make_project(), image=image)
    with pytest.raises(UvextraError, match="pyproject.toml"):
        userenv.ensure_user_env(["cpu"], tmp_path / "nowhere", image=image)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    monkeypatch.setenv("UVEXTRA_ENVS_DIR", str(blocked / "envs"))
    with pytest.raises(UvextraError, match="UVEXTRA_ENVS_DIR"):
        userenv.ensure_user_env(["cpu"], make_project(), image=image)


def test_an_admins_prefetched_layer_is_linked_not_copied_and_never_changed(
    make_project,
    make_venv,
    image: Environment,
    user_environ: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``$UVEXTRA_LAYERS``: a read-only venv with the cpu backend. The user's env links its torch (a symlink to the
    layer's folder, a small dist-info copy) instead of installing it; switching away unlinks, never deletes in the
    layer; switching back links again."""
    layer = make_venv(tmp_path / "layers" / "moo-cpu", packages=["torch==2.9.0+cpu"], indexes=("pypi", "cpu"))
    monkeypatch.setenv("UVEXTRA_LAYERS", str(tmp_path / "layers"))
    before, image_before = tree_digest(layer), tree_digest(image.prefix)
    project = make_project()

    made = userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
    site = made.env.environment().site_packages()[0]
    assert (site / "torch").is_symlink() and (site / "torch").resolve() == (layer / "lib").glob(
        "python3*/site-packages/torch"
    ).__next__().resolve()
    assert (made.report.errors, made.report.failure) == ([], None), made.report.to_dict()
    assert (
        made.notes[0]
        == "linked read-only from the admin's prefetched backends (not copied): filelock 3.20.0, torch 2.9.0+cpu"
    )
    assert made.report.unverified == [], made.report.unverified
    assert ask(made.env.python, "import torch; print(torch.__version__, torch.version.cuda)") == "2.9.0+cpu None"
    assert userenv.disk_usage(made.env.prefix).own_bytes < 200_000  # links and a dist-info copy, not torch
    rows = list(userenv.iter_summaries())
    assert [r["linked"] for r in rows] == [["filelock 3.20.0", "torch 2.9.0+cpu"]]
    listed = run_cli("envs", env=dict(os.environ), timeout=120)
    assert (
        "    linked read-only from the admin's layers: filelock 3.20.0, torch 2.9.0+cpu" in listed.stdout.splitlines()
    )

    away = userenv.ensure_user_env(["cu128"], project, image=image, probe=False)
    assert (away.report.errors, away.report.failure) == ([], None), away.report.to_dict()
    assert not (site / "torch").is_symlink()
    assert ask(made.env.python, "import torch; print(torch.__version__)") == "2.9.0+cu128"
    back = userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
    assert (back.report.errors, back.report.failure) == ([], None), back.report.to_dict()
    assert (site / "torch").is_symlink()
    assert tree_digest(layer) == before, "the layer changed"
    assert tree_digest(image.prefix) == image_before, "the image changed"


def test_an_image_that_is_no_venv_is_layered_on_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A conda env or a system Python (hub images often are): never switched, but a user env may layer on it."""

    def not_a_venv(python: object = None) -> Environment:
        raise UvextraError("this Python is not in a virtual environment")

    monkeypatch.setattr(userenv, "resolve_environment", not_a_venv)
    kernel = userenv.kernel_environment()
    assert (kernel.prefix, kernel.python) == (Path(sys.prefix).absolute(), Path(sys.executable).absolute())
    import site

    assert userenv._site_dirs(kernel) == [d for d in site.getsitepackages() if Path(d).is_dir()]


def test_a_writable_env_on_a_container_image_outside_home_is_called_throwaway(tmp_path: Path) -> None:
    venv = tmp_path / "opt" / "conda"
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    env = Environment(venv, venv / "bin" / "python")
    line = userenv.throwaway_line(env, home=tmp_path / "home", container=True)
    assert line == (
        f"{venv} is part of this server's container image, outside your home: a switch there lasts until "
        "your server restarts; for an environment of your own that persists: "
        "`%uvextra EXTRA --project DIR --user-env`"
    )
    assert userenv.throwaway_line(env, home=tmp_path / "home", container=False) is None  # a plain machine
    assert userenv.throwaway_line(env, home=tmp_path, container=True) is None  # in the home: it persists
    venv.chmod(0o555)
    try:
        if os.access(venv, os.W_OK):  # root: a read-only venv is refused anyway, offering --user-env
            return
        assert userenv.throwaway_line(env, home=tmp_path / "home", container=True) is None
    finally:
        venv.chmod(0o755)


def test_two_kernels_asking_at_once_get_one_env(
    make_project,
    image: Environment,
    user_environ: dict[str, str],
) -> None:
    import threading

    project = make_project()
    made: list[userenv.Made] = []
    failed: list[BaseException] = []

    def ask_for_it() -> None:
        try:
            made.append(userenv.ensure_user_env(["cpu"], project, image=image, probe=False))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failed.append(exc)

    threads = [threading.Thread(target=ask_for_it) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failed == [] and len(made) == 2, failed
    assert {m.env.prefix for m in made} == {e.prefix for e in userenv.list_user_envs()}
    assert all((m.report.failure, m.report.errors) == (None, []) for m in made)
    assert [p.name for p in Path(user_environ["UVEXTRA_ENVS_DIR"]).iterdir()] == [made[0].env.name]  # no leftovers


def test_an_env_whose_python_went_away_with_the_old_image_says_how_to_start_again(
    make_project, image: Environment, user_environ: dict[str, str], tmp_path: Path
) -> None:
    project = make_project()
    made = userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
    real = os.path.realpath(made.env.python)
    (made.env.prefix / "bin" / Path(os.readlink(made.env.python)).name).unlink()
    os.symlink(tmp_path / "gone" / "python3.11", made.env.prefix / "bin" / Path(os.readlink(made.env.python)).name)
    with pytest.raises(UvextraError) as caught:
        userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
    message = str(caught.value)
    assert message == (
        f"your environment {made.env.prefix} has lost its Python ({tmp_path / 'gone' / 'python3.11'} "
        "is gone: the image's Python changed): remove it (`uvextra envs remove "
        f"{made.env.name}` in a terminal) and run this again to make it anew"
    ), message
    assert "\n" not in message and os.path.exists(real)


def test_a_cuda_layer_with_namespace_packages_is_linked_below_the_namespace(
    make_project,
    make_venv,
    image: Environment,
    user_environ: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``nvidia-*`` wheels share the folder ``nvidia/`` (a namespace package): linking that folder whole would send
    the next install into the layer. Each package is linked below it (``nvidia/cublas``), the folder is the user's."""
    layer = make_venv(tmp_path / "layers" / "moo-cu128", packages=["torch==2.9.0+cu128"], indexes=("pypi", "cu128"))
    layer_site = next(layer.glob("lib/python3*/site-packages"))
    assert sorted(p.name for p in (layer_site / "nvidia").iterdir()) == ["cublas", "cuda_runtime"]
    monkeypatch.setenv("UVEXTRA_LAYERS", str(tmp_path / "layers"))
    before = tree_digest(layer)
    made = userenv.ensure_user_env(["cu128"], make_project(), image=image, probe=False)
    assert (made.report.errors, made.report.failure) == ([], None), made.report.to_dict()
    site = made.env.environment().site_packages()[0]
    assert (site / "nvidia").is_dir() and not (site / "nvidia").is_symlink()
    assert sorted(p.name for p in (site / "nvidia").iterdir() if p.is_symlink()) == ["cublas", "cuda_runtime"]
    assert ask(made.env.python, "import torch, nvidia.cublas; print(torch.__version__)") == "2.9.0+cu128"
    away = userenv.ensure_user_env(["cpu"], made.env.project, image=image, probe=False)
    assert (away.report.errors, away.report.failure) == ([], None), away.report.to_dict()
    assert not (site / "nvidia").exists()  # the links went, and the folder that held only them
    assert tree_digest(layer) == before, "the layer changed"
