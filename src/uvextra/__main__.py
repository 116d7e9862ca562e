"""``python -m uvextra``: the command line (:mod:`uvextra.cli`)."""

from .cli import main

main()
