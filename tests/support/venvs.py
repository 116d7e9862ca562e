"""Reading a venv the way a test checks it: its ``site-packages`` and the ``.dist-info`` folders in it."""

from __future__ import annotations

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
