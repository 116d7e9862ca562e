"""Where this machine keeps real wheels, as pip's configuration names them — never a hard-coded folder.

``pip config list`` (and ``PIP_FIND_LINKS`` / ``PIP_EXTRA_INDEX_URL`` / ``PIP_INDEX_URL``) name ``find-links``
folders and index URLs. The tests with real PyTorch use the local ones: a find-links *folder* becomes a flat index
(``format = "flat"``), a ``file://`` simple index becomes an ordinary ``[[tool.uv.index]]``. Anything remote is
ignored (the tests run offline). Where nothing fits, the helpers return ``None`` / ``[]`` and the tests skip with
the reason.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version


def _pythons() -> list[str]:
    # The test interpreter first; a venv made by uv has no pip, so its base interpreter's pip is asked next.
    base = getattr(sys, "_base_executable", None) or ""
    found = [sys.executable]
    for candidate in (base, str(Path(sys.base_prefix) / "bin" / "python3")):
        if candidate and candidate not in found and Path(candidate).exists():
            found.append(candidate)
    return found


@cache
def pip_config() -> dict[str, str]:
    """``{"find-links": "...", "extra-index-url": "...", "index-url": "..."}`` as pip would use them (env wins)."""
    values: dict[str, str] = {}
    for python in _pythons():
        try:
            done = subprocess.run(
                [python, "-m", "pip", "config", "list"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode != 0:
            continue
        # e.g. global.find-links='/opt/wheels'; later scopes override earlier ones, as in pip
        for m in re.finditer(r"^[^.\s]*\.(find-links|extra-index-url|index-url)='([^']*)'$", done.stdout, re.M):
            values[m.group(1)] = m.group(2)
        break
    for key in ("find-links", "extra-index-url", "index-url"):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            values[key] = env
    return values


def _local(url_or_path: str) -> Path | None:
    parts = urlsplit(url_or_path)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme:
        return None  # remote: these tests run offline
    else:
        path = Path(url_or_path)
    return path if path.exists() else None


def find_links_folders() -> list[Path]:
    """Local folders pip's ``find-links`` names."""
    out = [_local(p) for p in pip_config().get("find-links", "").split()]
    return [p for p in out if p is not None and p.is_dir()]


def local_simple_indexes() -> list[str]:
    """``file://`` simple index URLs from pip's ``index-url`` and ``extra-index-url``, in pip's order."""
    raw = (pip_config().get("index-url", "") + " " + pip_config().get("extra-index-url", "")).split()
    return [url.rstrip("/") for url in raw if url.startswith("file://") and (_local(url) or Path()).is_dir()]


def cpu_torch_wheel() -> Path | None:
    """The newest ``torch-*+cpu`` wheel for this Python in a find-links folder."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [w for folder in find_links_folders() for w in folder.glob(f"torch-*+cpu-{tag}-*.whl")]
    return max(wheels, key=lambda w: parse_wheel_filename(w.name)[1], default=None)


def _links(index: str, project: str) -> dict[str, Path]:
    """File name -> local file, for what a local simple index lists for ``project`` (its ``index.html``)."""
    folder = _local(index)
    page = folder / canonicalize_name(project) / "index.html" if folder else None
    try:
        text = page.read_text(encoding="utf-8") if page else ""
    except OSError:
        return {}
    return {
        unquote(href).rsplit("/", 1)[-1]: (page.parent / unquote(href)).resolve()  # type: ignore[union-attr]
        for href in re.findall(r'href="([^"#]+)', text)
    }


def indexes_with(project: str) -> list[str]:
    """The local simple indexes that list ``project``."""
    return [index for index in local_simple_indexes() if _links(index, project)]


@dataclass(frozen=True)
class CudaTorch:
    index: str  # the file:// simple index that has it
    version: str  # e.g. "2.14.1" (PyPI's build: no local tag in its name)
    wheel: Path
    cuda: str  # e.g. "13.0", from its cuda-toolkit requirement
    requires: tuple[str, ...]  # its Requires-Dist lines

    @property
    def extra(self) -> str:  # "cu130", as the PyTorch indexes name it
        return "cu" + self.cuda.replace(".", "")


def _requires(wheel: Path) -> tuple[str, ...]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            [meta] = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            text = zf.read(meta).decode("utf-8", "replace")
    except (OSError, ValueError, zipfile.BadZipFile):
        return ()
    head = text.split("\n\n", 1)[0]
    return tuple(line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("Requires-Dist:"))


def cuda_torch() -> CudaTorch | None:
    """The newest PyPI torch for this Python and machine that requires ``cuda-toolkit`` (a CUDA build)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found: list[tuple[Version, str, Path]] = []
    for index in local_simple_indexes():
        for name, wheel in _links(index, "torch").items():
            if name.endswith(".whl") and f"-{tag}-" in name and "linux" in name and platform.machine() in name:
                version = parse_wheel_filename(name)[1]
                if version.local is None and wheel.is_file():
                    found.append((version, index, wheel))
    for version, index, wheel in sorted(found, reverse=True):
        requires = _requires(wheel)
        cuda = next((m.group(1) for r in requires if (m := re.match(r"cuda-toolkit\b[^;]*==\s*(\d+\.\d+)", r))), None)
        if cuda:
            return CudaTorch(index, str(version), wheel, cuda, requires)
    return None
