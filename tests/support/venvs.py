"""Venvs and interpreters as a test reads them: `site-packages`, `.dist-info` folders, a byte-for-byte digest of a
tree, and the Pythons this machine has."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

#: ``make_project(extras_map=None, *, lock=True, **write_project_kwargs) -> Path`` (the conftest fixture)
MakeProject = Callable[..., Path]
#: ``make_venv(path, python=sys.executable, packages=(), indexes=("pypi", "kernelish")) -> Path`` (the conftest fixture)
MakeVenv = Callable[..., Path]


def site_packages(venv: Path) -> Path:
    """The ``site-packages`` folder of a POSIX venv."""
    found = sorted(Path(venv).glob("lib/python*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[0]


def dist_infos(venv: Path, name: str | None = None) -> list[str]:
    """Names of the ``.dist-info`` folders in ``venv`` (only ``name``'s when given)."""
    prefix = None if name is None else name.replace("-", "_").lower() + "-"
    return sorted(
        p.name for p in site_packages(venv).glob("*.dist-info") if prefix is None or p.name.lower().startswith(prefix)
    )


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` that runs: ``python3.X`` on PATH (a pyenv shim may not), else pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        proc = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return candidate
    return None


def tree_digest(root: Path, *, owners: bool = False) -> dict[str, str]:
    """Every file, link and folder under ``root`` with its content (or target) and mode: "byte for byte"; with
    ``owners``, each one's owning uid too (an image that must stay root's)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        owner = f":{st.st_uid}" if owners else ""
        if stat.S_ISLNK(st.st_mode):
            out[rel] = "link:" + os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = f"dir:{st.st_mode:o}{owner}"
        else:
            out[rel] = f"{st.st_mode:o}{owner}:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out
