#!/usr/bin/env python3
"""What a user's own backend costs on disk on a shared hub (issue 19): bytes per user, three setups, the real CPU torch.

    python benchmarks/userenv_disk.py            # about 2 minutes; prints a markdown table

Each setup makes two users' envs for the same project and backend (``cpu``: the real ``torch-*+cpu`` wheel found
through pip's configuration, its dependencies from pip's local indexes) with ``uvextra.userenv.ensure_user_env``,
layered on one image venv, and counts every inode once:

* **shared cache, copy** — the old docs' advice: one uv cache for everyone (``UV_LINK_MODE=copy``): each env is a
  full copy. (With hard links instead, per-user bytes drop to nothing, but every user who can write the cache can
  change every env: the write path the issue forbids.)
* **own cache, hard links** — each user's uv cache in their home, on the env's file system: the env's files are
  hard links into the user's own cache, so the user pays torch once (in the cache), not twice.
* **admin layer** — ``UVEXTRA_LAYERS``: a root-owned venv the admin synced to ``cpu`` once; users' envs link it.

"per user" is what the second user adds (their env and their own cache); "shared" is paid once per hub (the shared
cache, the layer). Runs as any user; the isolation (who can write what) is tested with real users in
tests/e2e/test_userenv_users.py. Benchmarks are not tests: nothing here fails on a number.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:
    import uvextra  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from support.pip_indexes import cpu_torch_wheel, local_simple_indexes  # noqa: E402
from support.real_torch import write_real_project  # noqa: E402
from uvextra.core import userenv  # noqa: E402
from uvextra.core.environment import Environment  # noqa: E402


def du(*roots: Path) -> int:
    """Bytes on disk under ``roots``, each inode once (hard links are one file)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for top, dirs, files in os.walk(root):
            for name in files:
                st = os.lstat(os.path.join(top, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
    return total


@contextmanager
def environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> int:
    wheel, indexes = cpu_torch_wheel(), local_simple_indexes()
    if wheel is None or not indexes:
        print("skipped: needs the torch-*+cpu wheel in pip's find-links and pip's local file:// indexes")
        return 0
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    work = Path(tempfile.mkdtemp(prefix="uvextra-userenv-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "UVEXTRA_"))}
    rows: list[tuple[str, int, int, float]] = []
    try:
        project = write_real_project(work / "moo", cpu=wheel, cuda=None, indexes=indexes)
        subprocess.run(
            [uv, "lock"],
            cwd=project,
            check=True,
            capture_output=True,
            env={**base_env, "UV_CACHE_DIR": str(work / "lock-cache")},
        )
        image_dir = work / "image"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(image_dir)], check=True)
        image = Environment(image_dir, image_dir / "bin" / "python")
        common = {"UVEXTRA_UV": uv, "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}

        def make(setup: str, user: str, **extra: str) -> float:
            started = time.perf_counter()
            with environ(
                **common,
                UVEXTRA_ENVS_DIR=str(work / setup / user / "envs"),
                JUPYTER_DATA_DIR=str(work / setup / user / "jupyter"),
                **extra,
            ):
                made = userenv.ensure_user_env(["cpu"], project, image=image, probe=False)
            assert made.report.failure is None and not made.report.errors, made.report.to_dict()
            return time.perf_counter() - started

        # 1. the old docs: one shared cache, files copied into each env
        shared = work / "copy" / "shared-cache"
        times = [make("copy", u, UV_CACHE_DIR=str(shared), UV_LINK_MODE="copy") for u in ("a", "b")]
        rows.append(("shared cache, `UV_LINK_MODE=copy` (the old docs)", du(work / "copy" / "b"), du(shared), times[1]))
        # 2. each user's own cache in their home, hard links from it
        times = [
            make("own", u, UV_CACHE_DIR=str(work / "own" / u / "cache"), UV_LINK_MODE="hardlink") for u in ("a", "b")
        ]
        rows.append(("own uv cache per user, hard links (no write path)", du(work / "own" / "b"), 0, times[1]))
        # 3. an admin layer: synced once, linked read-only by every user's env
        layer = work / "layers" / "moo-cpu"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(layer)], check=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "uvextra",
                "switch",
                "cpu",
                "--project",
                str(project),
                "--python",
                str(layer / "bin" / "python"),
                "--no-probe",
                "--json",
            ],
            check=True,
            capture_output=True,
            env={**base_env, **common, "UV_CACHE_DIR": str(work / "admin-cache")},
        )
        times = [
            make("layer", u, UV_CACHE_DIR=str(work / "layer" / u / "cache"), UVEXTRA_LAYERS=str(work / "layers"))
            for u in ("a", "b")
        ]
        rows.append(
            (
                "admin layer (`UVEXTRA_LAYERS`), own cache for the rest (no write path)",
                du(work / "layer" / "b"),
                du(layer),
                times[1],
            )
        )
        torch_dir = next(layer.glob("lib/python3*/site-packages/torch"))
        torch_bytes = du(torch_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"torch {wheel.name}: {torch_bytes / 1e6:,.0f} MB unpacked; project `moo`, backend `cpu`, 2 users\n")
    print("| setup | per user (the second user's env + own cache) | shared, once per hub | second user's env made in |")
    print("|---|---|---|---|")
    for name, per_user, once, took in rows:
        print(
            f"| {name} | {per_user / 1e6:,.1f} MB ({100 * per_user / torch_bytes:.1f}% of torch) | "
            f"{once / 1e6:,.0f} MB | {took:.1f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
