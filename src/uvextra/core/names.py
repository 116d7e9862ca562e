"""Distribution, extra and group names compared the way uv and pip compare them (PEP 503 / 685 / 735).

``packaging.utils.canonicalize_name`` without importing ``packaging.utils``, which imports ``packaging.tags``
(platform, sysconfig, logging, subprocess: a good part of a CLI call's start-up) for nothing a check needs.
Same algorithm as packaging >= 26 (a dependency: >= 26.4), checked against it in the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from packaging.utils import NormalizedName


def canonicalize_name(name: str) -> NormalizedName:
    """``Torch_Vision`` and ``torch.vision`` are ``torch-vision``: lower case, runs of ``-_.`` one ``-``."""
    value = name.lower().replace("_", "-").replace(".", "-")
    while "--" in value:
        value = value.replace("--", "-")
    return cast("NormalizedName", value)
