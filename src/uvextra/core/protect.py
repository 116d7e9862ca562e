"""What a switch may remove, and what it must keep.

The safety model: after a switch, a package is removed only when all three hold —
  * the new selection does not want it (it is not in the lock's export for the chosen extras);
  * the running kernel does not need it (:func:`kernel_closure`: ipykernel, ipywidgets, uvextra, a Jupyter server
    in the same venv, and everything they require *with the extras they ask for*);
  * it came from this project (:func:`project_owned`): the project's ``uv.lock`` locks it for some extra or group,
    or uvextra's own records say one of its switches or repairs installed it.
Everything else — pip, setuptools and wheel (a venv's seed), what a user or an admin installed by hand, the server
stack — is kept and reported as kept. ``exact`` (opt-in) is uv's own exact sync, except that the kernel closure
is still kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from .installed import Installed
from .names import canonicalize_name

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# The kernel process itself, its widgets, uvextra (which the kernel is running right now), and a notebook server
# that may run from the same venv (removing it would pull the server out from under the user's browser tab).
KERNEL_ROOTS = (
    "ipykernel",
    "ipywidgets",
    "uvextra",
    "jupyter-server",
    "jupyterlab",
    "notebook",
    "nbclassic",
    "jupyterhub",
    "nbconvert",
    "jupyter-client",
)
# What `python -m venv` / `virtualenv` put into every venv: `%pip` and `%uv` need them; never the project's to take.
SEED_PACKAGES = frozenset({"pip", "setuptools", "wheel"})


def _requirement(line: str) -> Requirement | None:
    from packaging.requirements import InvalidRequirement, Requirement  # only when a kernel's package is installed

    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def _applies(req: Requirement, env: Mapping[str, str], extras: Collection[str]) -> bool:
    """Does ``req`` apply on this interpreter when its owner was asked for with ``extras``?"""
    if req.marker is None:
        return True
    from packaging.markers import UndefinedEnvironmentName

    try:
        return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))
    except UndefinedEnvironmentName:
        return False


def kernel_closure(
    installed: Mapping[str, Installed], marker_env: Mapping[str, str], roots: Iterable[str] = KERNEL_ROOTS
) -> set[str]:
    """The installed roots and everything they require, transitively, following extras.

    ``jupyter-events`` requires ``jsonschema[format-nongpl]``: jsonschema's requirements marked
    ``extra == "format-nongpl"`` (fqdn, isoduration, …) are then part of the closure too. Markers are evaluated for
    the target interpreter; only what is installed is followed.
    """
    env = dict(marker_env)
    todo: list[tuple[str, frozenset[str]]] = [(canonicalize_name(r), frozenset()) for r in roots]
    expanded: dict[str, set[str]] = {}  # name -> extras already followed ("" = the plain requirements)
    while todo:
        name, extras = todo.pop()
        if name not in installed:
            continue
        done = expanded.get(name)
        if done is not None and extras <= done:
            continue
        expanded.setdefault(name, set()).update(extras)
        for line in installed[name].requires:
            req = _requirement(line)
            if req is not None and _applies(req, env, extras):
                todo.append((canonicalize_name(req.name), frozenset(canonicalize_name(e) for e in req.extras)))
    return set(expanded)


def project_owned(locked_names: Iterable[str], recorded: Iterable[str]) -> set[str]:
    """Names this project put (or may put) into the venv: locked in ``uv.lock`` for any extra, or recorded by uvextra.

    The venv's seed (pip, setuptools, wheel) is never counted as the project's, even when the lock names it.
    """
    return {str(canonicalize_name(n)) for n in (*locked_names, *recorded)} - SEED_PACKAGES


def removable(
    installed: Iterable[str],
    wanted: Collection[str],
    kernel: Collection[str],
    owned: Collection[str],
    *,
    exact: bool = False,
) -> tuple[list[str], list[str]]:
    """Split what is installed but not wanted into (to remove, kept because it is not the project's).

    The kernel's closure is in neither list: it is always kept and reported on its own.
    """
    remove: list[str] = []
    foreign: list[str] = []
    for name in sorted(installed):
        if name in wanted or name in kernel:
            continue
        if exact or name in owned:
            remove.append(name)
        else:
            foreign.append(name)
    return remove, foreign
