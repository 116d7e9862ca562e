"""What is installed in the target venv, read from its ``.dist-info`` folders (no import of anything in it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .environment import Environment
from .redact import redact

_HEADERS = HeaderParser()


@dataclass(frozen=True)
class Installed:
    """One installed distribution."""

    name: NormalizedName
    version: str
    dist_info: Path
    installer: str  # "uv", "pip", … ("" when unknown)
    source: str  # "index" | "editable" | "directory" | "archive" | "vcs"
    location: str | None  # for non-index sources: the path or URL (masked)
    wheel_tags: tuple[str, ...]
    requires: tuple[str, ...]  # raw Requires-Dist lines
    fingerprint: str  # sha256 of RECORD: changes whenever different files were installed

    def dependency_names(self) -> frozenset[str]:
        """Names this build requires unconditionally of extras (what uv.lock lists as its dependencies)."""
        names = set()
        for line in self.requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue
            names.add(canonicalize_name(req.name))
        return frozenset(names)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _source(dist_info: Path) -> tuple[str, str | None]:
    raw = _read(dist_info / "direct_url.json")
    if not raw:
        return "index", None
    try:
        data = json.loads(raw)
    except ValueError:
        return "archive", None
    url = str(data.get("url", ""))
    parts = urlsplit(url)
    location = str(Path(unquote(parts.path)).absolute()) if parts.scheme == "file" else redact(url)
    if "vcs_info" in data:
        return "vcs", location
    if "dir_info" in data:
        return ("editable" if (data.get("dir_info") or {}).get("editable") else "directory"), location
    return "archive", location


def read_dist_info(dist_info: Path) -> Installed | None:
    """One ``.dist-info`` folder, or None when it has no usable METADATA (a half-removed install)."""
    meta_text = _read(dist_info / "METADATA")
    if not meta_text:
        return None
    meta = _HEADERS.parsestr(meta_text)
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        return None
    wheel = _HEADERS.parsestr(_read(dist_info / "WHEEL"))
    source, location = _source(dist_info)
    try:
        record = (dist_info / "RECORD").read_bytes()
    except OSError:
        record = b""
    return Installed(
        name=canonicalize_name(name), version=version.strip(), dist_info=dist_info,
        installer=_read(dist_info / "INSTALLER").strip(), source=source, location=location,
        wheel_tags=tuple(wheel.get_all("Tag") or ()), requires=tuple(meta.get_all("Requires-Dist") or ()),
        fingerprint=hashlib.sha256(record).hexdigest(),
    )


def scan(env: Environment) -> dict[NormalizedName, Installed]:
    """Every distribution installed in ``env``'s site-packages, by normalized name."""
    found: dict[NormalizedName, Installed] = {}
    for site in env.site_packages():
        for dist_info in sorted(site.glob("*.dist-info")):
            dist = read_dist_info(dist_info)
            if dist is not None and dist.name not in found:
                found[dist.name] = dist
    return found
