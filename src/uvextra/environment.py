"""The target virtual environment: the kernel's own by default, or the one whose interpreter ``--python`` names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging import markers, tags

from .errors import UvextraError

STATE_DIR = ".uvextra"  # inside the venv: state.json, the switch lock, cached exports


@dataclass(frozen=True)
class Environment:
    """A virtual environment and the interpreter uvextra was pointed at."""

    prefix: Path
    python: Path

    @property
    def state_dir(self) -> Path:
        return self.prefix / STATE_DIR

    @property
    def is_current(self) -> bool:
        """True when the target is the interpreter running uvextra (in a kernel: the kernel's own env)."""
        return Path(sys.prefix).absolute() == self.prefix

    def site_packages(self) -> list[Path]:
        found = sorted(self.prefix.glob("lib/python3*/site-packages")) + sorted(self.prefix.glob("Lib/site-packages"))
        return [p for p in found if p.is_dir()]

    def writable(self) -> bool:
        return all(os.access(p, os.W_OK) for p in [self.prefix, *self.site_packages()])


def _venv_root_of(python: Path) -> Path | None:
    # Do not resolve symlinks: a venv's bin/python links to the base interpreter.
    for candidate in (python.parent.parent, python.parent):
        if (candidate / "pyvenv.cfg").is_file():
            return candidate
    return None


def resolve_environment(python: str | os.PathLike[str] | None = None) -> Environment:
    """The venv of ``python`` (default: the running interpreter); refuses anything that is not a venv."""
    if python is None:
        prefix = Path(sys.prefix).absolute()
        if sys.prefix == sys.base_prefix or not (prefix / "pyvenv.cfg").is_file():
            raise UvextraError(
                f"this Python ({sys.executable}) is not in a virtual environment; uvextra only changes venvs — "
                "start the kernel from the project's .venv, or pass --python .venv/bin/python"
            )
        return Environment(prefix=prefix, python=Path(sys.executable).absolute())
    path = Path(python).expanduser().absolute()
    try:
        if path.is_dir():  # accept the venv folder itself, too
            for sub in ("bin/python", "Scripts/python.exe"):
                if (path / sub).exists():
                    path = path / sub
                    break
        exists = path.exists()
        root = _venv_root_of(path) if exists else None
    except OSError as exc:  # e.g. a venv whose interpreter links into a folder this user may not enter
        raise UvextraError(
            f"--python {python}: cannot access it ({exc.strerror or exc}); pass a venv's python that you may run"
        ) from None
    if not exists:
        raise UvextraError(f"--python {python}: no such interpreter; pass the python of the target venv (.venv/bin/python)")
    if root is None:
        raise UvextraError(
            f"{path} is not in a virtual environment (no pyvenv.cfg next to it); "
            "uvextra only changes venvs — create one with `uv venv` and pass its python"
        )
    return Environment(prefix=root, python=path)


@dataclass(frozen=True)
class Interpreter:
    """What wheel selection and marker evaluation need to know about the target interpreter."""

    marker_env: dict[str, str]
    tags: tuple[str, ...]  # most preferred first


# Runs in the target interpreter with uvextra's own copy of `packaging` on sys.path (pure Python, no install needed).
_INTERPRETER_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from packaging import markers, tags
print(json.dumps({"marker_env": dict(markers.default_environment()), "tags": [str(t) for t in tags.sys_tags()]}))
"""


@cache
def interpreter_info(python: str) -> Interpreter:
    """Marker environment and supported tags of ``python`` (in-process when it is the running interpreter)."""
    if Path(python).absolute() == Path(sys.executable).absolute():
        return Interpreter(dict(markers.default_environment()), tuple(str(t) for t in tags.sys_tags()))
    packaging_parent = str(Path(markers.__file__).parent.parent)
    try:
        out = subprocess.run(
            [python, "-I", "-c", _INTERPRETER_SCRIPT, packaging_parent],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise UvextraError(f"cannot run {python} to read its platform tags ({exc}); is the venv broken?") from None
    return Interpreter(data["marker_env"], tuple(data["tags"]))
