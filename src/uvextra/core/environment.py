"""The target virtual environment: the kernel's own by default, or the one whose interpreter ``--python`` names.

The command line chooses its default target like uv does (:func:`cli_target`): ``$VIRTUAL_ENV``, else the
project's environment (``UV_PROJECT_ENVIRONMENT``, else ``<project>/.venv``) — never uvextra's own (tool) venv
unless it is that one. The magic keeps the kernel's own environment (``python=None``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from . import cache as _cache
from .errors import UvextraError
from .vocabulary import EnvironmentSource

STATE_DIR = ".uvextra"  # inside the venv: state.json, the switch lock, cached exports
# python=None: the interpreter running uvextra (in a kernel, its own)
KERNEL_SOURCE: EnvironmentSource = "this kernel's environment"
PYTHON_SOURCE: EnvironmentSource = "--python"
VIRTUAL_ENV_SOURCE: EnvironmentSource = "$VIRTUAL_ENV"
UV_PROJECT_ENVIRONMENT_SOURCE: EnvironmentSource = "UV_PROJECT_ENVIRONMENT"
PROJECT_VENV_SOURCE: EnvironmentSource = "the project's .venv"
RUNNING_SOURCE: EnvironmentSource = "the Python running uvextra: no $VIRTUAL_ENV, no project upward"


@dataclass(frozen=True)
class Environment:
    """A virtual environment and the interpreter uvextra was pointed at."""

    prefix: Path
    python: Path
    source: EnvironmentSource = field(default="", compare=False)  # why this environment is the target, in words

    def __fspath__(self) -> str:
        # An Environment may stand wherever an interpreter path is expected (``python=`` of the core's verbs).
        return str(self.python)

    @property
    def state_dir(self) -> Path:
        return self.prefix / STATE_DIR

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


def resolve_environment(
    python: str | os.PathLike[str] | Environment | None = None, *, source: EnvironmentSource | None = None
) -> Environment:
    """The venv of ``python`` (default: the running interpreter); refuses anything that is not a venv.

    An :class:`Environment` (as :func:`cli_target` chose it) is returned as it is.
    """
    if isinstance(python, Environment):
        return python
    if python is None:
        prefix = Path(sys.prefix).absolute()
        if sys.prefix == sys.base_prefix or not (prefix / "pyvenv.cfg").is_file():
            raise UvextraError(
                f"this Python ({sys.executable}) is not in a virtual environment; uvextra only changes venvs — "
                "start the kernel from the project's .venv, or pass --python .venv/bin/python"
            )
        return Environment(prefix=prefix, python=Path(sys.executable).absolute(), source=source or KERNEL_SOURCE)
    path = Path(python).expanduser().absolute()
    try:
        if path.is_dir():  # accept the venv folder itself, too
            for sub in ("bin/python", "Scripts/python.exe"):
                if os.path.lexists(path / sub):  # a dangling link too: it is said below, not "no pyvenv.cfg"
                    path = path / sub
                    break
        _refuse_dangling(path)
        exists = path.exists()
        root = _venv_root_of(path) if exists else None
    except OSError as exc:  # e.g. a venv whose interpreter links into a folder this user may not enter
        raise UvextraError(
            f"--python {python}: cannot access it ({exc.strerror or exc}); pass a venv's python that you may run"
        ) from None
    if not exists:
        raise UvextraError(
            f"--python {python}: no such interpreter; pass the python of the target venv (.venv/bin/python)"
        )
    if root is None:
        raise UvextraError(
            f"{path} is not in a virtual environment (no pyvenv.cfg next to it); "
            "uvextra only changes venvs — create one with `uv venv` and pass its python"
        )
    return Environment(prefix=root, python=path, source=source or PYTHON_SOURCE)


def _interpreter_in(prefix: Path) -> Path | None:
    for sub in ("bin/python", "bin/python3", "Scripts/python.exe"):
        if (prefix / sub).exists():
            return prefix / sub
    _refuse_dangling(prefix / "bin" / "python")
    return None


def _refuse_dangling(python: Path) -> None:
    """A venv's python that links to an interpreter that is gone (the base Python was moved, upgraded or removed)
    is said as such: the venv is there, it cannot run."""
    if not python.is_symlink() or python.exists():
        return
    target = Path(os.readlink(python))
    if not target.is_absolute():
        target = python.parent / target
    broken = target
    while broken.is_symlink() and os.path.lexists(broken) and not broken.exists():  # a chain: name the last link
        nxt = Path(os.readlink(broken))
        broken = nxt if nxt.is_absolute() else broken.parent / nxt
        if not os.path.lexists(broken):
            break
    venv = python.parent.parent
    raise UvextraError(
        f"{python} points to {broken}, which no longer exists: the venv's base interpreter was moved or removed; "
        f"recreate it (`uv venv {venv}`, then switch again), or pass the python of another venv"
    )


def environment_at(prefix: str | os.PathLike[str], source: EnvironmentSource, *, create_hint: str) -> Environment:
    """The venv folder ``prefix`` (chosen for ``source``); a one-line error saying how to create it if it is not one."""
    path = Path(prefix).expanduser().absolute()
    named = f"{source} ({path})" if source.startswith(("$", "UV_")) else f"{source} {path}"
    try:
        exists = path.exists()
        is_venv = (path / "pyvenv.cfg").is_file()
        python = _interpreter_in(path) if is_venv else None
    except OSError as exc:
        raise UvextraError(f"{named}: cannot access it ({exc.strerror or exc}); pass --python PY") from None
    if not exists:
        raise UvextraError(f"{named} does not exist: create it ({create_hint}), or pass --python PY")
    if not is_venv:
        raise UvextraError(
            f"{named} is not a virtual environment (no pyvenv.cfg); uvextra only changes venvs — "
            f"create one ({create_hint}), or pass --python PY"
        )
    if python is None:
        raise UvextraError(f"{named} has no bin/python: recreate it ({create_hint}), or pass --python PY")
    return Environment(prefix=path, python=python, source=source)


def project_environment(root: Path, environ: Mapping[str, str] | None = None) -> tuple[Path, EnvironmentSource]:
    """The environment uv uses for the project at ``root``: ``UV_PROJECT_ENVIRONMENT`` (relative: to the project
    root, as uv resolves it), else ``<root>/.venv``; with the reason in words."""
    env = os.environ if environ is None else environ
    configured = env.get("UV_PROJECT_ENVIRONMENT", "")
    if configured:  # uv ignores an empty value
        path = Path(configured).expanduser()
        return (path if path.is_absolute() else root / path), UV_PROJECT_ENVIRONMENT_SOURCE
    return root / ".venv", PROJECT_VENV_SOURCE


def cli_target(
    python: str | None,
    project_root: Path | None,
    *,
    project_required: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Environment:
    """The command line's target, chosen like uv chooses it.

    ``--python`` if given; else ``$VIRTUAL_ENV`` if set; else the project's environment (``UV_PROJECT_ENVIRONMENT``,
    else ``<project>/.venv``); with no project (``probe`` only, ``project_required=False``) the running interpreter's
    venv. Never uvextra's own tool venv unless it is that one.
    """
    env = os.environ if environ is None else environ
    if python:
        return resolve_environment(python, source=PYTHON_SOURCE)
    active = env.get("VIRTUAL_ENV", "")
    if active:
        return environment_at(active, VIRTUAL_ENV_SOURCE, create_hint=f"`uv venv {active}`")
    if project_root is None:
        if project_required:  # the caller finds the project first; this is a programming error
            raise UvextraError("no project to take the environment from; pass --project DIR or --python PY")
        return resolve_environment(None, source=RUNNING_SOURCE)
    prefix, source = project_environment(project_root, env)
    hint = (
        f"`uv sync` or `uv venv` in {project_root}"
        if source == PROJECT_VENV_SOURCE
        else f"`uv sync` in {project_root}, or `uv venv {prefix}`"
    )
    return environment_at(prefix, source, create_hint=hint)


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
    """Marker environment and supported tags of ``python`` (in-process when it is the running interpreter).

    Asking another interpreter costs a process start and packaging's imports there (~80 ms, on every CLI call);
    the answer is kept in the venv (``.uvextra/exports/interp-*.json``) under a key of everything that changes it:
    the interpreter's path and file identity (its symlink and what it points at, so a replaced base interpreter
    is asked again), the venv's ``pyvenv.cfg``, the C library and the packaging version that computes the tags.
    """
    entry = _interpreter_entry(python)
    if entry is not None:
        stored = _cache.read_json(entry, _interpreter_from_json)
        if stored is not None:
            return stored
    info = _ask_interpreter(python)
    if entry is not None and entry.parent.parent.is_dir():  # kept where uvextra is at work (.uvextra exists) only
        _cache.write_json(entry, {"marker_env": info.marker_env, "tags": list(info.tags)})
    return info


def _ask_interpreter(python: str) -> Interpreter:
    import subprocess

    from packaging import markers

    if Path(python).absolute() == Path(sys.executable).absolute():
        from packaging import tags

        marker_env = {key: str(value) for key, value in markers.default_environment().items()}
        return Interpreter(marker_env, tuple(str(t) for t in tags.sys_tags()))
    packaging_parent = str(Path(markers.__file__).parent.parent)
    try:
        out = subprocess.run(
            [python, "-I", "-c", _INTERPRETER_SCRIPT, packaging_parent],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise UvextraError(f"cannot run {python} to read its platform tags ({exc}); is the venv broken?") from None
    return Interpreter(data["marker_env"], tuple(data["tags"]))


def _interpreter_from_json(data: dict[str, object]) -> Interpreter:
    marker_env, tags = data["marker_env"], data["tags"]
    if not isinstance(marker_env, dict) or not isinstance(tags, list):
        raise TypeError("not an interpreter entry")
    return Interpreter({str(k): str(v) for k, v in marker_env.items()}, tuple(map(str, tags)))


def _stat_key(path: str | os.PathLike[str], *, follow: bool = True) -> str:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError:
        return "-"
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _interpreter_entry(python: str) -> Path | None:
    """Where the answer for ``python`` is kept, named by what invalidates it; None outside a venv."""
    path = Path(python).absolute()
    root = _venv_root_of(path)
    if root is None:
        return None
    try:
        cfg = (root / "pyvenv.cfg").read_bytes()
        real = os.path.realpath(path)
    except OSError:
        return None
    home = next(
        (
            line.split(b"=", 1)[1].strip().decode("utf-8", "replace")
            for line in cfg.splitlines()
            if line.split(b"=", 1)[0].strip() == b"home"
        ),
        "",
    )
    import packaging

    libc = ""
    if hasattr(os, "confstr"):
        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (ValueError, OSError):
            libc = ""
    return _cache.entry(
        root / STATE_DIR,
        "interp",
        str(path),
        _stat_key(path, follow=False),
        real,
        _stat_key(real),
        cfg,
        _stat_key(Path(home) / path.name) if home else "",
        libc,
        packaging.__version__,
        _INTERPRETER_SCRIPT,
    )
