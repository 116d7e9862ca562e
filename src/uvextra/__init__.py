"""uvextra: switch a Jupyter kernel between PyTorch backends (uv extras) safely and visibly.

``%load_ext uvextra`` registers the ``%uvextra`` magic; the command line is ``uvextra`` / ``python -m uvextra``.
The engine (``uvextra.core``) imports neither IPython nor ipywidgets; see docs/architecture.md for the wings.
"""

from __future__ import annotations

from .core import __version__

TYPE_CHECKING = False  # typing itself is not imported: `uvextra check` starts in ~20 ms (uvextra.cli_quick)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:  # IPython's InteractiveShell
    """Register ``%uvextra`` (imported lazily: loading the extension stays cheap)."""
    from .magic import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%uvextra`` (``%unload_ext uvextra``)."""
    from .magic import unload

    unload(ipython)
