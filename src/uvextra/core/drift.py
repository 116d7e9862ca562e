"""Where drift is decided: the installed distributions against what the lock wants, classified.

Kinds, most severe first in reports:
  missing        locked, not installed
  files          installed at the locked version, but files its RECORD lists are missing or of another size (a
                 killed install, a full disk): metadata says "installed", `import` fails — uv does not notice either
  version        another public version installed
  local-version  same public version, another local part (2.9.0+cpu vs 2.9.0) — what uv <= 0.9.23 leaves behind
  build          same version string, another build (another index's wheel) — what even current uv misses
  source         editable / path / URL vs index, or another path/URL
  extraneous     installed, not locked, not needed by the kernel (reported, not an error)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from .installed import FileCheck, Installed
from .lock import LockInfo, Wanted
from .state import Provenance
from .vocabulary import DRIFT_KINDS, NOT_AN_ERROR, DriftKind

KINDS = DRIFT_KINDS  # the order reports list them in


@dataclass(frozen=True)
class Drift:
    package: str
    kind: DriftKind
    installed: str | None
    wanted: str | None
    detail: str

    @property
    def is_error(self) -> bool:
        return self.kind not in NOT_AN_ERROR

    def to_dict(self) -> dict[str, str | None]:
        return {
            "package": self.package,
            "kind": self.kind,
            "installed": self.installed,
            "wanted": self.wanted,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Unverified:
    package: str
    version: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version, "reason": self.reason}


def _version_kind(installed: str, wanted: str) -> DriftKind | None:
    if installed == wanted:
        return None
    try:
        iv, wv = Version(installed), Version(wanted)
    except InvalidVersion:
        return "version"
    if iv == wv:  # e.g. 2.9 vs 2.9.0: the same version, spelled differently
        return None
    return "local-version" if iv.public == wv.public else "version"


def _source_mismatch(inst: Installed, want: Wanted) -> str | None:
    if want.kind in ("index", "sdist"):
        if inst.source != "index":
            return (
                f"installed from {inst.source} {inst.location or ''}".rstrip() + f"; the lock wants {want.source_label}"
            )
        return None
    if want.kind in ("editable", "directory"):
        if inst.source not in ("editable", "directory"):
            return f"installed from {inst.source}; the lock wants {want.kind} {want.location}"
        if inst.source != want.kind:
            return f"installed as {inst.source}, the lock wants {want.kind} ({want.location})"
        if want.location and inst.location and inst.location.rstrip("/") != want.location.rstrip("/"):
            return f"installed from {inst.location}; the lock wants {want.location}"
        return None
    # archive / vcs
    if inst.source == "index":
        return f"installed from an index; the lock wants {want.kind} {want.location}"
    if want.location and inst.location and inst.location != want.location:
        return f"installed from {inst.location}; the lock wants {want.location}"
    return None


def _build_check(
    inst: Installed,
    want: Wanted,
    record: Provenance | None,
    lock: LockInfo | None,
    fresh: bool,
    marker_env: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """(drift detail, unverified reason) for an index package whose version already matches."""
    if record is not None and record.fingerprint == inst.fingerprint and record.version == inst.version:
        # We know exactly which lock entry these files came from.
        same = (
            (record.sha256 == want.wheel_hash)
            if (record.sha256 and want.wheel_hash)
            else ((record.index or "").rstrip("/") == (want.index or "").rstrip("/"))
        )
        if same and record.sha256 and not want.wheel_hash and want.no_hash:
            # The record names the wheel's hash, the lock no longer says which wheel it wants: same index, no proof.
            return None, (
                f"{want.no_hash}; uvextra recorded {record.wheel} (sha256 {record.sha256[:12]}…) from the "
                "same index, but cannot verify that this is the build the lock wants — "
                "`uvextra repair` reinstalls it"
            )
        if same:
            return None, None
        return (
            f"same version string, another build: installed from {record.index} ({record.wheel}), "
            f"the lock wants {want.index} ({want.wheel}); uv does not notice this — repair reinstalls it",
            None,
        )
    # No usable record: evidence that needs none.
    deps = lock.deps_for(want, marker_env) if lock else None
    if deps is not None:
        have = inst.dependency_names(marker_env)
        if lock is not None and lock.adjusted:  # the project overrides or excludes these for every package
            have, deps = have - lock.adjusted, deps - lock.adjusted
        if have != deps:
            extra, lacking = sorted(have - deps), sorted(deps - have)
            parts = ([f"it requires {', '.join(extra)}"] if extra else []) + (
                [f"it lacks {', '.join(lacking)}"] if lacking else []
            )
            return (
                f"installed build's dependencies differ from the locked build from {want.index}: {'; '.join(parts)}",
                None,
            )
    if want.wheel_tags and inst.wheel_tags and not set(want.wheel_tags) & set(inst.wheel_tags):
        return (
            f"installed wheel is tagged {', '.join(inst.wheel_tags)}, the locked wheel {want.wheel} "
            f"is {', '.join(want.wheel_tags)}",
            None,
        )
    if fresh:
        return None, None  # uv installed it from the lock in this very run
    if record is not None:
        return None, (
            f"its files changed since uvextra recorded them (installer now: {inst.installer or 'unknown'}); "
            "metadata matches the lock, the build cannot be proven — `uvextra repair` reinstalls it"
        )
    if lock is not None and lock.ambiguous(want.name, want.version):
        return None, (
            f"{want.version} is locked from more than one index and uvextra has no record of which "
            "build this is"
            + (f" ({want.no_hash})" if want.no_hash else "")
            + "; `uvextra repair` reinstalls it from the lock"
        )
    return None, None


def classify(
    wanted: Mapping[str, Wanted],
    installed: Mapping[str, Installed],
    *,
    records: Mapping[str, Provenance] | None = None,
    lock: LockInfo | None = None,
    protected: Collection[str] = (),
    fresh: Collection[str] = (),
    marker_env: Mapping[str, str] | None = None,
    files: Mapping[str, FileCheck] | None = None,
) -> tuple[list[Drift], list[Unverified]]:
    """Compare; ``records`` is uvextra's provenance, ``fresh`` the packages uv (re)installed in this run,
    ``marker_env`` the target's (dependency evidence counts only the requirements that hold there), ``files`` each
    installed package's files held against its RECORD (a package whose files are not whole is ``files`` drift,
    whatever its metadata says: that is what a killed or disk-full install leaves)."""
    records = records or {}
    drift: list[Drift] = []
    unverified: list[Unverified] = []
    for name, want in sorted(wanted.items()):
        inst = installed.get(name)
        if inst is None:
            drift.append(
                Drift(
                    name,
                    "missing",
                    None,
                    want.version,
                    f"not installed; the lock wants {want.version} from {want.source_label}",
                )
            )
            continue
        kind = _version_kind(inst.version, want.version)
        if kind == "local-version":
            drift.append(
                Drift(
                    name,
                    kind,
                    inst.version,
                    want.version,
                    f"installed {inst.version}, the lock wants {want.version} from {want.source_label}; "
                    "PEP 440 `==` lets the local part slip (uv#16368)",
                )
            )
            continue
        if kind == "version":
            drift.append(
                Drift(
                    name, kind, inst.version, want.version, f"installed {inst.version}, the lock wants {want.version}"
                )
            )
            continue
        mismatch = _source_mismatch(inst, want)
        if mismatch:
            drift.append(Drift(name, "source", _describe(inst), _describe_want(want), mismatch))
            continue
        on_disk = (files or {}).get(name)
        if on_disk is not None and on_disk.broken:
            drift.append(Drift(name, "files", inst.version, want.version, on_disk.describe()))
            continue
        if on_disk is not None and (on_disk.no_record or on_disk.no_installer):
            missing = "RECORD" if on_disk.no_record else "INSTALLER"
            unverified.append(
                Unverified(
                    name,
                    inst.version,
                    (
                        f"its dist-info has no {missing}: the install may not have finished, and its files cannot be "
                        "checked"
                        if on_disk.no_record
                        else f"its dist-info has no {missing}: the installer did not get to the end of it (its files are all "
                        "there)"
                    )
                    + " — `uvextra repair` reinstalls it",
                )
            )
            continue
        if want.kind == "index":
            detail, reason = _build_check(inst, want, records.get(name), lock, name in fresh, marker_env)
            if detail:
                drift.append(Drift(name, "build", inst.version, want.version, detail))
            elif reason:
                unverified.append(Unverified(name, inst.version, reason))
    for name, inst in sorted(installed.items()):
        if name not in wanted and name not in protected:
            drift.append(
                Drift(name, "extraneous", inst.version, None, "installed, but not in the lock for these extras")
            )
    drift.sort(key=lambda d: (KINDS.index(d.kind), d.package))
    return drift, unverified


def _describe(inst: Installed) -> str:
    return f"{inst.version} ({inst.source}{' ' + inst.location if inst.location else ''})"


def _describe_want(want: Wanted) -> str:
    return f"{want.version} ({want.source_label})"
