"""Your own backend on a shared image, with real unprivileged users, real kernels, a real server and the real CPU torch.

Root (the tests' user, and CI's) builds a root-owned "image" venv the way a hub image has one: ``python -m venv``
of a Python every user may run, the Jupyter stack (ipykernel, jupyter_server) from the local indexes in pip's
configuration, ``packaging`` (its files from the running interpreter, as a wheel) and the uvextra wheel built from
this checkout; uv on the image's ``bin``. Two users are made with ``useradd`` for this module and removed after it.
Everything a user does runs as that user (``runuser``) through ``tests/support/userenv_driver.py`` with the image's Python
and jupyter_client:

* the first user runs ``%uvextra cpu --project ~/moo --user-env`` in a kernel of the image: their env holds the real
  ``torch-*+cpu`` wheel, a kernel from the new kernelspec imports it and has ``%uvextra`` (the image's auto-load
  file), and reports no drift; the image is byte-for-byte the same;
* the second user: the image's kernel has no torch and their ``%uvextra cpu`` is refused in one line that offers
  ``--user-env``; they cannot list, read or write the first user's env, nor write any file the first user's torch
  loads (the env's paths and the hard-linked ones in the first user's uv cache);
* under a Jupyter server run as the first user, the notebook's session moves to the new kernelspec
  (``GET /api/sessions``), and its new kernel runs in the user's env.

Skips, saying why, where it cannot run: not root, no ``useradd``/``runuser``, no CPU torch wheel for this Python in
pip's find-links folder, local indexes without the Jupyter stack, no Python that other users may run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from support.localindex import build_wheel
from support.pip_indexes import cpu_torch_wheel, indexes_with, local_simple_indexes
from support.real_torch import TORCH_DEPS, write_real_project
from support.run import run_uv
from support.venvs import tree_digest
from uvextra.core import userenv

STACK = ("ipykernel", "jupyter-server", "jupyter-client", "ipython", "ipywidgets", "nbformat")
DRIVER = Path(__file__).parents[1] / "support" / "userenv_driver.py"
SWITCH_TIMEOUT_S = 900  # the first user's first switch unpacks torch into their own cache and imports it


def _missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root, to make real users (useradd) and act as them (runuser)"
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if cpu_torch_wheel() is None:
        return "no torch-*+cpu wheel for this Python in pip's find-links folders"
    absent = [n for n in (*STACK, *TORCH_DEPS) if not indexes_with(n)]
    if absent:
        return f"pip's file:// indexes do not list {', '.join(absent)}"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@dataclass
class Hub:
    base: Path
    image: Path
    users: tuple[str, str]
    homes: dict[str, Path]
    env: dict[str, str]  # what the users' processes get (PATH with the image's bin first)

    def as_user(
        self, user: str, *args: str, timeout: float = SWITCH_TIMEOUT_S, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "HOME": str(self.homes[user]), "USER": user, "LOGNAME": user, **(extra or {})}
        cmd = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=self.homes[user], stdin=subprocess.DEVNULL
        )

    def drive(
        self, user: str, mode: str, *args: str, timeout: float = SWITCH_TIMEOUT_S, extra: dict[str, str] | None = None
    ) -> dict:
        done = self.as_user(
            user,
            str(self.image / "bin" / "python"),
            str(self.base / DRIVER.name),
            mode,
            *args,
            timeout=timeout,
            extra=extra,
        )
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 0 and lines, (
            f"driver {mode} as {user}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return json.loads(lines[-1])


def _image_python(users: tuple[str, str]) -> str | None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in dict.fromkeys(candidates):
        if not Path(candidate).exists():
            continue
        probe = subprocess.run(
            ["runuser", "-u", users[0], "--", candidate, "-c", "import venv, ensurepip"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if probe.returncode == 0:
            return candidate
    return None


def _packaging_wheel(dest: Path) -> Path:
    """The running interpreter's ``packaging`` (uvextra needs a newer one than the local indexes may have)."""
    import packaging

    source = Path(packaging.__file__).parent
    files = {f"packaging/{p.relative_to(source)}": p.read_text(encoding="utf-8") for p in sorted(source.rglob("*.py"))}
    files["packaging/py.typed"] = ""
    return build_wheel(dest, "packaging", packaging.__version__, files)


@pytest.fixture(scope="module")
def hub(uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]) -> Iterator[Hub]:
    base = Path(tempfile.mkdtemp(prefix="uvextra-hub-", dir="/tmp"))  # pytest's own tmp is root's alone (0700)
    base.chmod(0o755)
    tag = secrets.token_hex(3)
    users = (f"uvx{tag}a", f"uvx{tag}b")
    homes = {u: base / "home" / u for u in users}
    (base / "home").mkdir(mode=0o755)
    made: list[str] = []
    try:
        for user in users:
            subprocess.run(
                [
                    "useradd",
                    "--create-home",
                    "--home-dir",
                    str(homes[user]),
                    "--shell",
                    "/bin/sh",
                    "--user-group",
                    user,
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            made.append(user)
        python = _image_python(users)
        if python is None:
            pytest.skip(
                f"no Python {sys.version_info.major}.{sys.version_info.minor} with venv that another user may run"
            )
        image = base / "image"
        subprocess.run([python, "-m", "venv", str(image)], check=True, capture_output=True, timeout=300)
        indexes = local_simple_indexes()
        index_args = [
            "--index-url",
            indexes[0],
            *(a for i in indexes[1:] for a in ("--extra-index-url", i)),
            "--index-strategy",
            "unsafe-best-match",
        ]
        image_python = str(image / "bin" / "python")
        run_uv(uv_new, "pip", "install", "--python", image_python, *index_args, *STACK, env=uv_env, timeout=600)
        wheels = base / "wheels"
        run_uv(
            uv_new,
            "pip",
            "install",
            "--python",
            image_python,
            "--no-deps",
            _packaging_wheel(wheels),
            uvextra_wheel,
            env=uv_env,
        )
        shutil.copy2(uv_new, image / "bin" / "uv")  # the image's uv (the `uv` wheel is not on the local indexes)
        shutil.copy2(DRIVER, base / DRIVER.name)
        (base / DRIVER.name).chmod(0o644)
        env = {
            "PATH": f"{image / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        }
        wheel = cpu_torch_wheel()
        assert wheel is not None
        for user in users:  # each user's project `moo`: the same one, in their own home, locked as them
            project = write_real_project(homes[user] / "moo", cpu=wheel, cuda=None, indexes=indexes)
            pyproject = project / "pyproject.toml"
            pyproject.write_text(pyproject.read_text().replace('name = "realtorch"', 'name = "moo"'))
            subprocess.run(["chown", "-R", f"{user}:{user}", str(project)], check=True, timeout=60)
        # The admin's prefetched backend: a read-only layer synced to `cpu` by root with uvextra, as the docs say.
        admin = write_real_project(base / "admin" / "moo", cpu=wheel, cuda=None, indexes=indexes)
        admin_toml = admin / "pyproject.toml"
        admin_toml.write_text(admin_toml.read_text().replace('name = "realtorch"', 'name = "moo"'))
        run_uv(uv_new, "lock", env=uv_env, cwd=admin, timeout=600)
        layer = base / "layers" / "moo-cpu"
        subprocess.run(
            [python, "-m", "venv", "--without-pip", str(layer)], check=True, capture_output=True, timeout=300
        )
        synced = subprocess.run(
            [
                sys.executable,
                "-m",
                "uvextra",
                "switch",
                "cpu",
                "--project",
                str(admin),
                "--python",
                str(layer / "bin" / "python"),
                "--no-probe",
                "--json",
            ],
            capture_output=True,
            text=True,
            env={**uv_env, "UVEXTRA_UV": uv_new},
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        hub = Hub(base, image, users, homes, env)
        for user in users:
            locked = hub.as_user(user, "uv", "lock", "--project", str(homes[user] / "moo"), timeout=600)
            assert locked.returncode == 0, locked.stderr
        yield hub
    finally:
        for user in made:
            subprocess.run(["userdel", "--remove", user], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_first_user_gets_their_own_backend_second_user_is_untouched_and_locked_out(hub: Hub) -> None:
    first, second = hub.users
    image_before = tree_digest(hub.image, owners=True)
    wheel = cpu_torch_wheel()
    assert wheel is not None
    version = str(parse_wheel_filename(wheel.name)[1])

    seen = hub.drive(first, "first")
    assert seen["switch_error"] is None, seen
    assert seen["extras"] == ["cpu"] and seen["drift"] == [], seen
    assert seen["verdict"] == f"CPU build of torch ({version}); CUDA not expected", seen
    env = Path(seen["environment"])
    assert env.is_relative_to(hub.homes[first]), env  # persistent: in the user's home
    assert seen["said"].startswith("uvextra: pick the kernel “moo (cpu, your env)”"), seen["said"]
    # the kernel from the new kernelspec: the real torch from the user's env, %uvextra without %load_ext, no drift
    assert seen["kernelspecs"] == [seen["kernelspec"]] and seen["display_name"] == "moo (cpu, your env)"
    assert seen["new_kernel"]["torch"] == version
    assert Path(seen["new_kernel"]["torch_file"]).is_relative_to(env)
    assert seen["new_kernel"]["prefix"] == str(env)
    assert seen["new_kernel"]["magic"] is True
    assert (seen["new_kernel"]["error"], seen["new_kernel"]["drift"]) == (None, []), seen["new_kernel"]
    assert seen["new_kernel"]["status_environment"] == str(env)
    assert seen["new_kernel"]["switch_again"] == {
        "error": None,
        "extras": ["cpu"],
        "drift": [],
        "environment": str(env),
    }
    assert tree_digest(hub.image, owners=True) == image_before, "the image changed"

    # The second user: the image as it was, their switch refused with the way out, the first user's env closed.
    torch_files = [str(p) for p in (env / "lib").glob("python3*/site-packages/torch/**/*") if p.is_file()]
    assert len(torch_files) > 1000
    inodes = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in torch_files}
    cache = hub.homes[first] / ".cache" / "uv"
    linked = [str(p) for p in cache.rglob("*") if p.is_file() and (p.stat().st_dev, p.stat().st_ino) in inodes]
    (hub.base / "targets.json").write_text(json.dumps({"env": str(env), "files": torch_files + linked}))
    other = hub.drive(second, "second", str(hub.base / "targets.json"))
    assert other["image_torch"].startswith("ModuleNotFoundError"), other
    assert other["refusal"].startswith(f"the environment {hub.image} is read-only"), other
    assert other["refusal"] == (
        f"the environment {hub.image} is read-only; uvextra changes nothing there — make your own "
        "environment for this project, layered on this one, in one step: "
        f"`%uvextra cpu --project {hub.homes[second] / 'moo'} --user-env`"
    ), other
    assert other["list_env"].startswith("PermissionError"), other
    assert other["writable"] == [] and other["opened_for_writing"] == [], other
    assert other["checked"] == len(torch_files) + len(linked)
    assert other["kernelspecs"] == [], other  # the first user's kernel is not theirs to see
    assert tree_digest(hub.image, owners=True) == image_before, "the image changed"
    own = sum(os.lstat(p).st_blocks * 512 for p in torch_files if os.lstat(p).st_nlink == 1)
    total = sum(os.lstat(p).st_blocks * 512 for p in torch_files)
    print(
        f"torch in the user's env: {total / 1e6:.0f} MB unpacked, {own / 1e6:.1f} MB not hard-linked to the user's "
        f"uv cache ({len(linked)} of {len(torch_files)} files linked)"
    )
    assert own < total / 10, (own, total)


def test_under_a_jupyter_server_the_notebook_moves_to_the_new_kernel(hub: Hub) -> None:
    first = hub.users[0]
    seen = hub.drive(first, "server")
    assert seen["said"].startswith("uvextra: moving this notebook to the kernel “moo (cpu, your env)”"), seen
    assert seen["before"] == "python3", seen
    assert seen["after"].startswith("uvextra-moo-"), seen  # GET /api/sessions: the session's kernel is the new one
    assert seen["old_kernel_gone"] is True, seen
    assert seen["new_prefix"].startswith(str(hub.homes[first])), seen
    assert seen["magic"] is True, seen


def test_with_the_admins_prefetched_layer_a_users_torch_costs_links_and_nobody_can_change_it(hub: Hub) -> None:
    """The docs' setup: ``UVEXTRA_LAYERS`` names a root-owned venv the admin synced to ``cpu``. The second user clicks
    the card's "Make my own environment" on the image's refusal; their env links torch from the layer: their env's
    own bytes and their uv cache stay small, the kernel imports the real torch, and neither user can write a file
    that torch loads."""
    first, second = hub.users
    layers = hub.base / "layers"
    layer_torch = next((layers / "moo-cpu" / "lib").glob("python3*/site-packages/torch"))
    layer_before = tree_digest(layers, owners=True)
    # This time through the card: the refusal on the read-only image offers the button, and the click does it.
    seen = hub.drive(second, "click", extra={"UVEXTRA_LAYERS": str(layers)})
    assert seen["refused"].startswith(f"the environment {hub.image} is read-only"), seen["refused"]
    assert (seen["switch_error"], seen["extras"], seen["drift"]) == (None, ["cpu"], []), seen
    assert "pick the kernel “moo (cpu, your env)”" in seen["card"], seen["card"]
    env = Path(seen["environment"])
    assert seen["new_kernel"]["torch"] == str(parse_wheel_filename(cpu_torch_wheel().name)[1])  # type: ignore[union-attr]
    assert seen["new_kernel"]["torch_file"] == str(next(env.glob("lib/python3*/site-packages/torch")) / "__init__.py")
    assert Path(seen["new_kernel"]["torch_file"]).resolve().is_relative_to(layer_torch)
    assert (seen["new_kernel"]["error"], seen["new_kernel"]["drift"]) == (None, []), seen["new_kernel"]
    # switched again from its own kernel: still linked from the layer
    assert seen["new_kernel"]["switch_again"] == {
        "error": None,
        "extras": ["cpu"],
        "drift": [],
        "environment": str(env),
    }
    assert next(env.glob("lib/python3*/site-packages/torch")).is_symlink()

    torch_bytes = sum(p.lstat().st_blocks * 512 for p in layer_torch.rglob("*") if p.is_file())
    usage = userenv.disk_usage(env)
    cache = hub.homes[second] / ".cache" / "uv"
    cache_bytes = sum(p.lstat().st_blocks * 512 for p in cache.rglob("*") if p.is_file() and not p.is_symlink())
    print(
        f"with the layer: torch {torch_bytes / 1e6:.0f} MB unpacked (in the layer, once); the user's env "
        f"{usage.own_bytes / 1e6:.1f} MB own + {usage.shared_bytes / 1e6:.1f} MB hard-linked, their uv cache "
        f"{cache_bytes / 1e6:.1f} MB"
    )
    assert usage.own_bytes + usage.shared_bytes < torch_bytes / 10
    assert usage.own_bytes + cache_bytes < torch_bytes / 10

    files = [str(p) for p in layer_torch.rglob("*") if p.is_file()]
    (hub.base / "layer-targets.json").write_text(json.dumps({"env": str(env), "files": files}))
    for user in (first, second):
        other = hub.drive(user, "second", str(hub.base / "layer-targets.json"))
        assert other["writable"] == [] and other["opened_for_writing"] == [], (user, other)
        assert other["checked"] == len(files) > 1000
    assert hub.drive(first, "second", str(hub.base / "layer-targets.json"))["list_env"].startswith("PermissionError")
    assert tree_digest(layers, owners=True) == layer_before, "the layer changed"
