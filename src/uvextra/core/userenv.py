"""A user's own environment for a project, layered on the kernel's (image) environment: create, switch, register, list.

On a hub the kernel's environment usually belongs to the image: root-owned, or writable but thrown away when the
user's server restarts. :func:`ensure_user_env` makes the user an environment of their own for one project, in a
place that persists (``$UVEXTRA_ENVS_DIR``, else ``~/.local/share/uvextra/envs``; one env per project, so a later
switch switches that env):

* a venv made by the image's own interpreter (``python -m venv --without-pip``), in a folder only its owner may
  enter (mode 0700), so no other user can read or change what it loads;
* **layered** on the image: a ``.pth`` file, processed after every other one of the user's site-packages, adds the
  image's site-packages *after* the user's own (``site.addsitedir``, so the image's own ``.pth`` files work too).
  The Jupyter stack, ipykernel and uvextra come from the image and are not copied; what the user's env installs
  comes first. The image is never written to;
* synced to the backend through :func:`uvextra.core.verbs.switch`, so every safety rule holds. The image's packages are
  outside the user's site-packages: uv and uvextra never see them as installed, never remove them and never count
  them as the project's;
* registered as a Jupyter kernelspec in the user's Jupyter data dir, whose display name says project and backend.

Nothing here imports IPython; the magic and the CLI call it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .environment import STATE_DIR, Environment, resolve_environment
from .errors import UvextraError

if TYPE_CHECKING:
    from .progress import Progress
    from .report import Report
    from .vocabulary import Backend

LineCallback = Callable[[str], None]

ENVS_DIR_VAR = "UVEXTRA_ENVS_DIR"
RECORD = "userenv.json"  # in <env>/.uvextra/: which project and image the env belongs to, its kernelspec
# Processed after the user's own .pth files (Python reads them sorted by name): the image's paths come last.
LAYER_PTH = "zzz-uvextra-image-layer.pth"
KERNELSPEC_PREFIX = "uvextra-"
STARTUP_FILE = "90-uvextra.py"  # the image's auto-load file (see docs/jupyterhub.md), copied into the user's env
VENV_TIMEOUT_S = 300.0
# Read-only environments an admin prefetched backends into (os.pathsep-separated: a venv, or a folder of venvs).
LAYERS_VAR: Final = "UVEXTRA_LAYERS"
SEEDS = "layer-seeds.json"  # in <env>/.uvextra/: the distributions linked from a layer, their links


@dataclass(frozen=True)
class UserEnv:
    """One user environment as recorded in its folder."""

    prefix: Path
    project: str  # the project's root folder
    project_name: str
    image: str  # the prefix of the environment it is layered on
    kernelspec: str  # the kernelspec's name (folder name in the Jupyter data dir)
    created: float = 0.0
    extras: tuple[str, ...] = ()  # the backend it was last switched to (uvextra's state in the env)

    @property
    def name(self) -> str:
        return self.prefix.name

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    def environment(self) -> Environment:
        return Environment(self.prefix, self.python, source="your own environment for this project")


@dataclass
class Made:
    """What :func:`ensure_user_env` did: the env, whether it was new, the switch's report, the kernelspec."""

    env: UserEnv
    created: bool
    report: Report
    kernelspec_dir: Path | None = None
    display_name: str = ""
    notes: list[str] = field(default_factory=list)


# -- where ---------------------------------------------------------------------------------------------------------


def envs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$UVEXTRA_ENVS_DIR`` when an admin sets it, else ``$XDG_DATA_HOME/uvextra/envs`` (``~/.local/share/…``)."""
    env = os.environ if environ is None else environ
    configured = env.get(ENVS_DIR_VAR, "").strip()
    if configured:
        return Path(os.path.expandvars(configured)).expanduser().absolute()
    data = env.get("XDG_DATA_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data).absolute() / "uvextra" / "envs"


def jupyter_kernels_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's Jupyter data dir's ``kernels`` folder, as ``jupyter kernelspec list`` reads it."""
    env = os.environ if environ is None else environ
    if environ is None:
        try:
            from jupyter_core.paths import jupyter_data_dir  # beside ipykernel in every kernel's environment

            return Path(jupyter_data_dir()) / "kernels"
        except ImportError:
            pass
    if env.get("JUPYTER_DATA_DIR"):
        return Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    data = env.get("XDG_DATA_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "jupyter" / "kernels"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.").lower() or "project"


def env_name(project_root: Path, project_name: str) -> str:
    """One env per project: its name and a short hash of its folder (two projects called ``moo`` stay apart)."""
    digest = hashlib.sha256(str(project_root.resolve()).encode()).hexdigest()[:8]
    return f"{_slug(project_name)}-{digest}"


def backend_words(extras: Sequence[str]) -> str:
    return "+".join(extras) or "no backend"


def display_name(project_name: str, extras: Sequence[str]) -> str:
    """The kernel's name in JupyterLab's launcher and kernel picker: project and backend."""
    return f"{project_name} ({backend_words(extras)}, your env)"


# -- reading -------------------------------------------------------------------------------------------------------


def read_user_env(prefix: str | os.PathLike[str]) -> UserEnv | None:
    """The user env at ``prefix``, or None when the folder is not one (no record, or an unreadable one)."""
    root = Path(prefix)
    try:
        data = json.loads((root / STATE_DIR / RECORD).read_text(encoding="utf-8"))
        extras: tuple[str, ...] = ()
        state_file = root / STATE_DIR / "state.json"
        if state_file.is_file():
            extras = tuple(str(e) for e in json.loads(state_file.read_text(encoding="utf-8")).get("extras") or ())
        return UserEnv(
            prefix=root,
            project=str(data["project"]),
            project_name=str(data["project_name"]),
            image=str(data["image"]),
            kernelspec=str(data["kernelspec"]),
            created=float(data.get("created", 0.0)),
            extras=extras,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def list_user_envs(environ: Mapping[str, str] | None = None) -> list[UserEnv]:
    """Every user env in :func:`envs_dir`, by name."""
    folder = envs_dir(environ)
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []
    return [env for env in map(read_user_env, children) if env is not None]


def find_user_env(name_or_path: str, environ: Mapping[str, str] | None = None) -> UserEnv:
    """The user env named ``name_or_path`` (its folder name, its kernelspec, its project folder or its path)."""
    envs = list_user_envs(environ)
    path = Path(name_or_path).expanduser()
    for env in envs:
        if name_or_path in (env.name, env.kernelspec) or (
            path.is_absolute() and path in (env.prefix, Path(env.project))
        ):
            return env
    if path.exists():
        resolved = path.resolve()
        for env in envs:
            if resolved in (env.prefix.resolve(), Path(env.project).resolve()):
                return env
    names = ", ".join(e.name for e in envs) or "none yet"
    raise UvextraError(
        f"no user environment {name_or_path!r} in {envs_dir(environ)} (there: {names}); `uvextra envs` lists them"
    )


@dataclass(frozen=True)
class Usage:
    """Disk use of an env: its own bytes (files no other path shares) and bytes shared by hard links (uv's cache)."""

    own_bytes: int
    shared_bytes: int
    files: int


def disk_usage(prefix: str | os.PathLike[str]) -> Usage:
    """Bytes of the env's files: a file with other hard links (uv's cache, another env) counts as shared."""
    own = shared = files = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, names in os.walk(prefix):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            files += 1
            size = st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
            if st.st_nlink > 1:
                shared += size
            else:
                own += size
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return Usage(own, shared, files)


def last_used(env: UserEnv) -> float:
    """When uvextra last touched the env (a switch, a check, a kernel that ran ``%uvextra``): newest record."""
    newest = env.created
    for path in (env.prefix / STATE_DIR).rglob("*"):
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return newest


# -- making --------------------------------------------------------------------------------------------------------


def image_of(kernel_env: Environment) -> Environment:
    """The environment a user env is layered on: the kernel's own, or, in a user env's kernel, that env's image."""
    own = read_user_env(kernel_env.prefix)
    if own is None:
        return kernel_env
    return Environment(Path(own.image), Path(own.image) / "bin" / "python", source="the image your env is layered on")


def kernel_environment() -> Environment:
    """The running kernel's environment: its venv, or, on hubs whose image is a conda env or a system Python (not a
    venv, which uvextra never switches), that installation — it is only read, to layer the user's env on it."""
    try:
        return resolve_environment(None)
    except UvextraError:
        return Environment(
            Path(sys.prefix).absolute(),
            Path(sys.executable).absolute(),
            source="this kernel's environment (not a venv)",
        )


def _site_dirs(env: Environment) -> list[str]:
    if env.prefix == Path(sys.prefix).absolute():  # the running one: as it sees itself (Debian's dist-packages too)
        import site

        dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
        if dirs:
            return dirs
    return [str(p) for p in env.site_packages()]


def _layer_line(image: Environment) -> str:
    # A .pth line that starts with "import" is run by site.py; addsitedir appends (after the user's own paths) and
    # reads the image's own .pth files, as they are read when the image's interpreter starts.
    # (site.py runs the line with exec(): a comprehension there would not see the imported name, map does)
    return f"import site; list(map(site.addsitedir, {_site_dirs(image)!r}))\n"


def _make_venv(image: Environment, prefix: Path, record: Callable[[Path], None]) -> None:
    """``python -m venv --without-pip`` with the image's interpreter, built beside its final place (``record`` writes
    uvextra's record into it), then moved in."""
    import tempfile

    building = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.building-", dir=prefix.parent))  # 0700 from the start
    try:
        done = subprocess.run(
            [str(image.python), "-m", "venv", "--without-pip", str(building)],
            capture_output=True,
            text=True,
            timeout=VENV_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UvextraError(
            f"cannot run {image.python} to create your environment ({exc}); is the image's Python usable by you?"
        ) from None
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UvextraError(f"`{image.python} -m venv` failed ({last}); the image needs Python's venv module")
    os.chmod(building, 0o700)  # only its owner may read or change what its kernels load
    site = next(iter(sorted(building.glob("lib/python3*/site-packages"))), None)
    if site is None:
        shutil.rmtree(building, ignore_errors=True)
        raise UvextraError(f"the venv made by {image.python} has no site-packages; is the image's Python a CPython?")
    (site / LAYER_PTH).write_text(_layer_line(image), encoding="utf-8")
    startup = image.prefix / "etc" / "ipython" / "startup" / STARTUP_FILE
    if startup.is_file():  # %uvextra without %load_ext in the user's kernels too, with the same opt-out
        target = building / "etc" / "ipython" / "startup"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(startup, target / STARTUP_FILE)
    record(building)  # in place before the env appears: no one ever sees it unrecorded
    try:
        os.replace(building, prefix)
    except OSError:  # another kernel of this user made it meanwhile: theirs stands, ours goes
        shutil.rmtree(building, ignore_errors=True)
        if not (prefix / "pyvenv.cfg").is_file():
            raise


def _site_version(env: Environment) -> str | None:
    """The ``3.X`` of an environment's ``lib/python3.X/site-packages``."""
    dirs = env.site_packages()
    return dirs[0].parent.name.removeprefix("python") if dirs else None


def _broken(env: UserEnv, image: Environment) -> str | None:
    """Why an existing user env cannot run any more (the image's Python went away or changed), or None."""
    if not os.path.exists(os.path.realpath(env.python)):
        return f"has lost its Python ({os.path.realpath(env.python)} is gone: the image's Python changed)"
    mine, theirs = _site_version(env.environment()), _site_version(image)
    if mine and theirs and mine != theirs:
        return f"was made with Python {mine}, the image now has Python {theirs}"
    return None


def _write_record(prefix: Path, project_root: Path, project_name: str, image: Environment, kernelspec: str) -> None:
    from .cache import atomic_write

    record = {
        "project": str(project_root),
        "project_name": project_name,
        "image": str(image.prefix),
        "kernelspec": kernelspec,
        "created": time.time(),
    }
    state = prefix / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    atomic_write(state / RECORD, json.dumps(record, indent=1) + "\n")


def _ensure_private_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UvextraError(
            f"cannot create {folder} for your environments ({exc.strerror or exc}); set "
            f"{ENVS_DIR_VAR} to a folder of yours that persists"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UvextraError(f"{folder} is not writable by you; set {ENVS_DIR_VAR} to a folder of yours that persists")


def register_kernelspec(
    env: UserEnv, extras: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """Write (or rewrite) the env's kernelspec in the user's Jupyter data dir; returns its folder and display name."""
    from .cache import atomic_write

    folder = jupyter_kernels_dir(environ) / env.kernelspec
    folder.mkdir(parents=True, exist_ok=True)
    name = display_name(env.project_name, extras)
    spec = {
        "argv": [str(env.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": {
            "debugger": True,
            "uvextra": {"env": str(env.prefix), "project": env.project, "extras": list(extras)},
        },
    }
    atomic_write(folder / "kernel.json", json.dumps(spec, indent=1) + "\n")
    return folder, name


def refresh_kernelspec(prefix: str | os.PathLike[str], extras: Sequence[str]) -> str | None:
    """After a switch of a user env (from its own kernel): its kernelspec's display name follows the backend."""
    env = read_user_env(prefix)
    if env is None:
        return None
    folder = jupyter_kernels_dir() / env.kernelspec
    if not (folder / "kernel.json").is_file():
        return None
    return register_kernelspec(env, extras)[1]


def _project_of(project: str | os.PathLike[str] | None) -> tuple[Path, str]:
    from .project import load_project

    loaded = load_project(Path(project) if project is not None else None)
    return loaded.root, loaded.name


def ensure_user_env(
    extras: Sequence[Backend | str],
    project: str | os.PathLike[str] | None = None,
    *,
    image: Environment | None = None,
    probe: bool = True,
    keep_extraneous: bool = False,
    no_default_groups: bool = False,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
    remarks: Callable[[Environment], Sequence[str]] | None = None,
) -> Made:
    """The user's own env for ``project``, made if new, switched to ``extras``, checked and registered as a kernel.

    ``image``: the environment to layer on (default: the running kernel's, or its image when that is a user env).
    The image is only read. A failed switch leaves the env in place (the next call switches it again) and registers
    no kernel.
    """
    from . import verbs as core

    if not extras:
        raise UvextraError("name the backend for your environment: `%uvextra EXTRA --project DIR --user-env`")
    kernel = kernel_environment()
    base = image_of(kernel) if image is None else image
    if project is None:  # in a user env's kernel: its own project
        own = read_user_env(kernel.prefix)
        project = own.project if own is not None else None
    root, name = _project_of(project)
    prefix = envs_dir(environ) / env_name(root, name)
    existing = read_user_env(prefix)
    created = existing is None
    if existing is None:
        if prefix.exists():
            raise UvextraError(
                f"{prefix} exists but is no environment of uvextra's; move it away, or set "
                f"{ENVS_DIR_VAR} to another folder"
            )
        _ensure_private_dir(prefix.parent)
        if progress is not None and progress.uv_line is not None:
            progress.uv_line(f"creating your environment {prefix}, layered on {base.prefix}")
        _make_venv(
            base, prefix, lambda building: _write_record(building, root, name, base, KERNELSPEC_PREFIX + prefix.name)
        )
        existing = read_user_env(prefix)
        if existing is None:
            raise UvextraError(f"could not record {prefix / STATE_DIR / RECORD}; is the folder writable?")
    env = existing
    broken = _broken(env, base)
    if broken:
        raise UvextraError(
            f"your environment {env.prefix} {broken}: remove it (`uvextra envs remove {env.name}` in a "
            "terminal) and run this again to make it anew"
        )
    unseed(env)  # links of the last backend go first: uv never removes through them
    seeded = seed_from_layers(env, root, extras, environ)
    notes: list[str] = []
    if seeded:
        notes.append(
            "linked read-only from the admin's prefetched backends (not copied): "
            + ", ".join(f"{name} {version}" for name, version in seeded)
        )

    def said(target: Environment) -> list[str]:
        """The caller's remarks, then what the layering means, read once the switch is done: on the report."""
        lines = list(remarks(target)) if remarks is not None else []
        notes.extend(layer_notes(env, base))
        return lines + notes

    report = core.switch(
        list(extras),
        str(root),
        env.environment(),
        probe=probe,
        keep_extraneous=keep_extraneous,
        no_default_groups=no_default_groups,
        progress=progress,
        remarks=said,
    )
    made = Made(env=env, created=created, report=report, notes=notes)
    if report.failure is None and not report.interrupted:
        made.kernelspec_dir, made.display_name = register_kernelspec(env, [e.name for e in report.extras])
    return made


def layer_notes(env: UserEnv, image: Environment) -> list[str]:
    """What the layering means for this env's kernels: the image's packages the env's own copies hide, and the
    image's packages whose requirements the env's copies break (a torchvision of the image that does not fit the
    user's torch), each one line."""
    from packaging.requirements import InvalidRequirement, Requirement

    from .installed import Installed, read_dist_info, scan

    try:
        mine = scan(env.environment())
        theirs: dict[
            str, Installed
        ] = {}  # read without installed.scan's cache: that would be a file written into the image
        for site in image.site_packages():
            for folder in sorted(site.glob("*.dist-info")):
                dist = read_dist_info(folder)
                if dist is not None:
                    theirs.setdefault(dist.name, dist)
    except Exception:  # noqa: BLE001 - notes only: an unreadable dist-info must not cost the user the env
        return []
    notes = [
        f"your environment's {n} {mine[n].version} is used in its kernels, not the image's {theirs[n].version}"
        for n in sorted(mine)
        if n in theirs and mine[n].version != theirs[n].version
    ]
    for name in sorted(set(theirs) - set(mine)):
        for line in theirs[name].requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            dep = req.name.lower().replace("_", "-").replace(".", "-")
            if dep not in mine or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
                continue
            if not req.specifier.contains(mine[dep].version, prereleases=True):
                notes.append(
                    f"the image's {name} {theirs[name].version} requires {req.name}{req.specifier}, but your "
                    f"environment has {dep} {mine[dep].version}: importing {name} may fail — add {name} to "
                    "the project's dependencies for this backend"
                )
    return notes


# -- a writable environment that does not last -------------------------------------------------------------------

CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")  # Docker, Podman; Kubernetes sets the variable below


def in_container(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) or any(os.path.exists(m) for m in CONTAINER_MARKERS)


def throwaway_line(
    env: Environment, *, home: str | os.PathLike[str] | None = None, container: bool | None = None
) -> str | None:
    """For a writable kernel environment outside the user's home on a container image (a venv in the image, writable
    by the notebook user): a switch there is gone when the server restarts — one line that says so and offers the
    way out."""
    if read_user_env(env.prefix) is not None or not env.writable():
        return None
    home_dir = Path(home if home is not None else os.path.expanduser("~")).resolve()
    if env.prefix.resolve().is_relative_to(home_dir):
        return None
    if not (in_container() if container is None else container):
        return None
    return (
        f"{env.prefix} is part of this server's container image, outside your home: a switch there lasts until "
        "your server restarts; for an environment of your own that persists: "
        "`%uvextra EXTRA --project DIR --user-env`"
    )


# -- layers: backends an admin prefetched, linked read-only -------------------------------------------------------


def layer_envs(environ: Mapping[str, str] | None = None) -> list[Environment]:
    """The venvs ``$UVEXTRA_LAYERS`` names (each entry a venv, or a folder of venvs), in that order."""
    env = os.environ if environ is None else environ
    found: list[Environment] = []
    for entry in filter(None, env.get(LAYERS_VAR, "").split(os.pathsep)):
        folder = Path(entry).expanduser()
        try:
            candidates = (
                [folder]
                if (folder / "pyvenv.cfg").is_file()
                else sorted(p for p in folder.iterdir() if (p / "pyvenv.cfg").is_file())
            )
        except OSError:
            continue
        found += [Environment(p, p / "bin" / "python", source=LAYERS_VAR) for p in candidates]
    return found


def _namespace(folder: Path) -> bool:
    return folder.is_dir() and not (folder / "__init__.py").is_file()


def _record_links(dist_info: Path, layer_site: Path) -> set[str] | None:
    """What to link for a distribution: the paths its RECORD installs into site-packages, each cut at the first
    folder that is a regular package (has ``__init__.py``) or at the file — below namespace folders that other
    distributions share (``nvidia/`` of the ``nvidia-*`` wheels), which stay the user's own. None: no RECORD, or
    nothing in site-packages."""
    from .installed import record_entries  # the one RECORD reader

    rows = record_entries(dist_info)
    if rows is None:
        return None
    links: set[str] = set()
    for path, _digest, _size in rows:
        if not path or path.startswith(("../", "/")):
            continue  # console scripts (torchrun): their shebang names the layer's Python; `python -m` still works
        parts = path.split("/")
        if parts[0] == dist_info.name or parts[0] == "__pycache__":
            continue
        depth = 1
        while depth < len(parts) and _namespace(layer_site.joinpath(*parts[:depth])):
            depth += 1  # a folder other distributions may share: go below it
        links.add("/".join(parts[:depth]))
    return links or None


def _layer_provenance(layer: Environment) -> dict[str, str]:
    """name -> the wheel's sha256, as uvextra recorded it when the admin switched the layer (empty when unknown)."""
    try:
        data = json.loads((layer.state_dir / "state.json").read_text(encoding="utf-8"))
        return {str(k): str(v.get("sha256") or "") for k, v in (data.get("packages") or {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def seed_from_layers(
    env: UserEnv, project_root: Path, extras: Sequence[Backend | str], environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Link into the user's env what an admin's layer holds exactly as the lock wants it for ``extras``.

    Per distribution: its top-level folders become symlinks to the layer's (root-owned, read-only: nobody can change
    them through the link), its ``.dist-info`` a small copy whose RECORD lists those links, so uv counts it as
    installed and, should a later switch remove it, unlinks the links and never touches the layer. Exact means the
    same version and, where the layer's uvextra records say which wheel it came from, the same wheel (sha256).
    """
    layers = layer_envs(environ)
    if not layers:
        return []
    from . import verbs as core
    from .installed import read_dist_info
    from .lock import export_pylock, wanted_from_pylock

    ctx = core.open_context(str(project_root), env.environment())
    wanted = wanted_from_pylock(export_pylock(ctx.project, ctx.env, ctx.uv, list(extras)), ctx.project, ctx.env)
    site = env.environment().site_packages()[0]
    own = {d.name: d for d in map(read_dist_info, site.glob("*.dist-info")) if d is not None}
    seeded: list[tuple[str, str, list[str], str]] = []
    for layer in layers:
        recorded = _layer_provenance(layer)
        for layer_site in layer.site_packages():
            for dist_info in sorted(layer_site.glob("*.dist-info")):
                dist = read_dist_info(dist_info)
                want = None if dist is None else wanted.get(dist.name)
                if dist is None or want is None or want.version != dist.version:
                    continue
                if want.wheel_hash and recorded.get(dist.name) and recorded[dist.name] != want.wheel_hash:
                    continue  # the same version string, another build: uv installs the lock's own
                tops = _record_links(dist_info, layer_site)
                if tops is None or any(s[0] == dist.name for s in seeded):
                    continue
                if dist.name in own and own[dist.name].version != want.version:
                    _uninstall(ctx, dist.name)  # the user's own copy of another backend: the layer's replaces it
                    own.pop(dist.name)
                if any(os.path.lexists(site / t) for t in (*tops, dist_info.name)):
                    continue  # the user's env has it (or files of that name) itself: leave it to uv
                for top in sorted(tops):
                    (site / top).parent.mkdir(parents=True, exist_ok=True)  # a namespace folder: the user's own
                    os.symlink(layer_site / top, site / top)
                copy = site / dist_info.name
                shutil.copytree(dist_info, copy, symlinks=True)
                files = sorted(p.name for p in copy.iterdir() if p.is_file() and p.name != "RECORD")
                record = (
                    [f"{t},," for t in sorted(tops)] + [f"{copy.name}/{f},," for f in files] + [f"{copy.name}/RECORD,,"]
                )
                (copy / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")
                seeded.append((dist.name, dist.version, sorted(tops), copy.name))
    from .cache import atomic_write

    atomic_write(
        env.prefix / STATE_DIR / SEEDS,
        json.dumps([{"name": n, "version": v, "links": links, "dist_info": d} for n, v, links, d in seeded], indent=1),
    )
    return [(n, v) for n, v, _, _ in seeded]


def _uninstall(ctx: Any, name: str) -> None:
    from .uv import capture_uv

    done = capture_uv(
        ctx.uv, ["pip", "uninstall", "--python", str(ctx.env.python), name], ctx.env, cwd=ctx.project.root
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UvextraError(f"could not remove your env's own {name} to link the prefetched one: {last}")


def linked(env: UserEnv) -> list[str]:
    """``name version`` of what the env links from an admin's layer now (uvextra's record of its last seeding)."""
    try:
        seeds = json.loads((env.prefix / STATE_DIR / SEEDS).read_text(encoding="utf-8"))
        return [f"{s['name']} {s['version']}" for s in seeds]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def unseed(env: UserEnv) -> None:
    """Remove the links of earlier seeding (only symlinks, and the small dist-info copies uvextra wrote)."""
    record = env.prefix / STATE_DIR / SEEDS
    try:
        seeds = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    site = env.environment().site_packages()[0]
    for seed in seeds:
        for link in seed.get("links", []):
            path = site / link
            if path.is_symlink():
                path.unlink()
            for parent in path.parents:  # the namespace folders seeding made, once empty
                if parent == site or not parent.is_relative_to(site):
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break
        copy = site / seed.get("dist_info", "")
        if seed.get("dist_info") and copy.is_dir() and not copy.is_symlink():
            shutil.rmtree(copy)
    record.unlink()


def remove_user_env(env: UserEnv, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Delete the env and its kernelspec; returns what was removed. The image and uv's cache are not touched."""
    removed: list[Path] = []
    spec = jupyter_kernels_dir(environ) / env.kernelspec
    if (spec / "kernel.json").is_file():
        shutil.rmtree(spec)
        removed.append(spec)
    shutil.rmtree(env.prefix)
    removed.append(env.prefix)
    return removed


def iter_summaries(environ: Mapping[str, str] | None = None) -> Iterator[dict[str, object]]:
    """One row per env for ``uvextra envs`` (``--json`` prints these)."""
    kernels = jupyter_kernels_dir(environ)
    for env in list_user_envs(environ):
        usage = disk_usage(env.prefix)
        spec = kernels / env.kernelspec
        yield {
            "name": env.name,
            "project": env.project,
            "project_name": env.project_name,
            "backend": list(env.extras),
            "path": str(env.prefix),
            "image": env.image,
            "own_bytes": usage.own_bytes,
            "shared_bytes": usage.shared_bytes,
            "linked": linked(env),
            "last_used": last_used(env),
            "kernelspec": env.kernelspec if (spec / "kernel.json").is_file() else None,
        }
