"""``python -m uvextra``: the command line (:mod:`uvextra.cli`), through its quick path (:mod:`uvextra.cli_quick`)."""

from .cli_quick import main

main()
