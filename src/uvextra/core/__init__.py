"""The engine: what uvextra knows and decides, with no IPython, no widgets and no renderer.

``from uvextra import core; core.switch(["cu128"])``: the verbs (:mod:`uvextra.core.verbs`) load on first use, so
importing a small part of the engine (``uvextra.core.errors``) stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: `uvextra check` starts in ~20 ms (uvextra.cli_quick)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["__version__", "check", "probe", "repair", "status", "switch"]

__version__ = "0.1.0"  # the one place; uvextra.__version__ and the notebook record read it


def __getattr__(name: str) -> Any:
    if name in __all__[1:]:
        from . import verbs

        return getattr(verbs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
