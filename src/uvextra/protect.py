"""The packages a running kernel needs: never removed by a switch, even when the lock does not list them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .installed import Installed

# The kernel process itself, its widgets, uvextra (which the kernel is running right now), and a notebook server
# that may run from the same venv (removing it would pull the server out from under the user's browser tab).
KERNEL_ROOTS = ("ipykernel", "ipywidgets", "uvextra", "jupyter-server", "jupyterlab", "notebook", "nbclassic",
                "jupyterhub")


def kernel_closure(
    installed: Mapping[str, Installed], marker_env: Mapping[str, str], roots: Iterable[str] = KERNEL_ROOTS
) -> set[str]:
    """The installed roots and everything they require, transitively (markers evaluated for this interpreter)."""
    env = {**marker_env, "extra": ""}
    todo = [canonicalize_name(r) for r in roots]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        for line in installed[name].requires:
            try:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, UndefinedEnvironmentName):
                continue
            todo.append(canonicalize_name(req.name))
    return seen
