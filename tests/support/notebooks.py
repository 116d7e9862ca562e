"""Notebooks as a frontend saves them, and the record every ``%uvextra`` output carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

#: The record's MIME type, written out here (not imported) so that a change of it fails the tests.
MIME = "application/vnd.uvextra.record+json"


def saved_with(nb_path: Path, outputs: list[dict[str, Any]]) -> Any:
    """The notebook as a frontend saves it: one ``%uvextra`` cell per output, each as it stands now (after every
    ``update_display_data`` for its display id), without the display id (transient, never saved)."""
    cells = []
    for data in outputs:
        cell = nbformat.v4.new_code_cell("%uvextra")
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, nb_path)
    return nb
