"""The one report object every surface renders: the CLI (text / JSON), the magic and the widgets."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .drift import Drift, Unverified
from .redact import redact

if TYPE_CHECKING:  # the types only: loading the report loads neither the probe nor the stack check
    from .probe_verdict import ProbeResult
    from .stack import Misroute, StackEntry


@dataclass
class Change:
    """One package a switch or repair changed: ``old`` → ``new`` (``None`` on the side where it was absent)."""

    name: str
    old: str | None  # None: newly installed
    new: str | None  # None: removed

    def __str__(self) -> str:
        if self.old is None:
            return f"+ {self.name} {self.new}"
        if self.new is None:
            return f"- {self.name} {self.old}"
        if self.old == self.new:
            return f"~ {self.name} {self.new} (reinstalled)"
        return f"~ {self.name} {self.old} → {self.new}"


@dataclass
class Changes:
    """What an operation changed in the venv, and what it kept that the lock does not want."""

    installed: list[Change] = field(default_factory=list)  # new, upgraded, downgraded or reinstalled
    removed: list[Change] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # extraneous but kept (kernel's own, or --keep-extraneous)
    kept_foreign: list[str] = field(default_factory=list)  # not the lock's, not from this project: never removed

    def summary(self) -> str:
        """One line: how many packages were installed, upgraded, removed …"""
        if not self.installed and not self.removed:
            return "no packages changed"
        added = sum(1 for c in self.installed if c.old is None)
        changed = [c for c in self.installed if c.old is not None]
        parts = [
            f"{c.name} {c.old} → {c.new}" if c.old != c.new else f"{c.name} {c.new} reinstalled" for c in changed[:3]
        ]
        if len(changed) > 3:
            parts.append(f"{len(changed) - 3} more changed")
        counts = f"+{added} −{len(self.removed)} packages"
        return ", ".join([*parts, counts])

    def to_dict(self) -> dict[str, Any]:
        """As JSON: the keys ``--json`` prints."""
        return {
            "installed": [{"name": c.name, "old": c.old, "new": c.new} for c in self.installed],
            "removed": [{"name": c.name, "version": c.old} for c in self.removed],
            "kept": list(self.kept),
            "kept_foreign": list(self.kept_foreign),
        }


@dataclass
class Report:
    """What uvextra did and found; ``exit_code`` is the CLI's contract (0 clean, 1 drift/failure, 130 interrupt)."""

    command: str
    project: str | None = None
    project_name: str | None = None
    environment: str | None = None
    environment_source: str = ""  # why that environment: "--python", "$VIRTUAL_ENV", "the project's .venv", …
    python: str | None = None
    uv: dict[str, str] | None = None
    extras: list[str] = field(default_factory=list)
    extras_source: str = ""
    available_extras: list[str] = field(default_factory=list)  # every backend offered: extras, then groups
    features: list[str] = field(default_factory=list)  # extras and groups that are features, not backends (dev, test)
    conflict_sets: list[list[str]] = field(default_factory=list)
    workspace: str | None = None  # the workspace root, when the project is one of its members
    changes: Changes = field(default_factory=Changes)
    kernel_protected: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    unverified: list[Unverified] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    repaired_from: dict[str, str] = field(default_factory=dict)  # package -> what was broken on disk before
    repaired_notes: list[str] = field(default_factory=list)  # "torch: was 8,958 of 12,248 files missing; whole now"
    probe: ProbeResult | None = None  # what a fresh process of the target says about torch and its GPU
    stack: list[StackEntry] = field(default_factory=list)  # does each companion fit the installed torch
    routing: list[Misroute] = field(default_factory=list)  # companions the project does not route as torch
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None  # the operation did not complete (uv failed, interrupted, …); env re-checked
    # what kind of failure: "uv" (uv failed; its words in uv_error), "network" (an index could not be reached),
    # "follow-up" (uv's sync ran, what came after failed), "interrupted", "killed" (uv died of a signal: SIGKILL
    # from the OOM killer, a closed terminal), "disk-full" (uv hit ENOSPC or a quota)
    failure_kind: str | None = None
    uv_error: str | None = None  # uv's own error text, as uv wrote it (redacted, no colour)
    # inference could not name the extras ("none": almost nothing of the project is installed; "tie")
    extras_unknown: str | None = None
    interrupted: bool = False
    # backends inference could not read here (name -> why: the network, no wheel for this Python); judged without
    unreadable: dict[str, str] = field(default_factory=dict)
    # path/editable dependencies whose source folder is missing or empty (name -> why): uv cannot install them
    missing_sources: dict[str, str] = field(default_factory=dict)
    lock_unread: str | None = None  # why the lock could not be read for these extras: drift was not checked
    log: list[str] = field(default_factory=list)  # uv's output, redacted
    state_saved: bool = False
    read_only: bool = False  # the venv cannot be changed here (a shared image): repair is not an option
    elapsed_s: float = 0.0
    verified: dict[str, float] | None = None  # check --verify: {"files": sha256s compared, "seconds": how long}

    @property
    def groups(self) -> list[str]:
        """Which of ``extras`` are dependency groups (uv's ``--group``); the rest are extras."""
        return [str(e) for e in self.extras if getattr(e, "kind", None) == "group"]

    @property
    def available_groups(self) -> list[str]:
        """The backends that are dependency groups (``--group``), not extras."""
        return [str(e) for e in self.available_extras if getattr(e, "kind", None) == "group"]

    @property
    def errors(self) -> list[Drift]:
        """Drift that makes the environment differ from the lock (everything but extraneous packages)."""
        return [d for d in self.drift if d.is_error]

    @property
    def extraneous(self) -> list[Drift]:
        """Packages the lock does not want that are still installed (kept on purpose, or not the project's)."""
        return [d for d in self.drift if not d.is_error]

    @property
    def stack_failed(self) -> list[StackEntry]:
        """The companions that do not fit the installed torch (a failing one makes the exit code 1)."""
        return [e for e in self.stack if not e.ok]

    @property
    def clean(self) -> bool:
        """The environment matches the lock, nothing failed and nothing was interrupted."""
        return (
            not self.errors
            and self.failure is None
            and not self.extras_unknown
            and not self.stack_failed
            and self.lock_unread is None
        )

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 matches the lock, 1 drift or a failure, 130 interrupted."""
        if self.interrupted:
            return 130
        if self.command == "probe" and (self.probe is None or self.probe.torch_version is None):
            return 1  # the target Python cannot run, or has no working torch
        return 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        """As JSON: the keys ``--json`` prints."""
        return {
            "command": self.command,
            "project": self.project,
            "environment": self.environment,
            "environment_source": self.environment_source,
            "python": self.python,
            "uv": self.uv,
            "extras": self.extras,
            "groups": self.groups,
            "extras_source": self.extras_source,
            "available_extras": self.available_extras,
            "available_groups": self.available_groups,
            "features": [str(f) for f in self.features],
            "project_name": self.project_name,
            "workspace": self.workspace,
            "changes": self.changes.to_dict(),
            "kernel_protected": self.kernel_protected,
            "drift": [d.to_dict() for d in self.drift],
            "unverified": [u.to_dict() for u in self.unverified],
            "repaired": self.repaired,
            "repaired_notes": self.repaired_notes,
            "probe": (
                {**self.probe.to_dict(), "state": self.probe.state, "stack": [e.to_dict() for e in self.stack]}
                if self.probe is not None
                else None
            ),
            "stack": [e.to_dict() for e in self.stack],
            "routing": [m.to_dict() for m in self.routing],
            "warnings": self.warnings,
            "failure": self.failure,
            "failure_kind": self.failure_kind,
            "uv_error": self.uv_error,
            "extras_unknown": self.extras_unknown,
            "lock_unread": self.lock_unread,
            "unreadable": self.unreadable,
            "missing_sources": self.missing_sources,
            "read_only": self.read_only,
            "clean": self.clean,
            "exit_code": self.exit_code,
            "elapsed_s": round(self.elapsed_s, 3),
            **({"verified": self.verified} if self.verified is not None else {}),
        }

    def to_json(self) -> str:
        """The report as the CLI's ``--json`` prints it (redacted once more, as the last line of defence)."""
        # Every string already passed through redact(); this is the last line of defence for the JSON surface.
        return redact(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @property
    def can_repair(self) -> bool:
        """Would a repair (the Reinstall button) fix something here? Never offered where it can only fail."""
        return (
            bool(self.errors or self.unverified)
            and not self.read_only
            and not self.interrupted
            and not self.missing_source_errors  # uv's sync fails on a source folder that is not there
            and self.failure_kind not in ("network", "uv")
            and not self.extras_unknown
            # a misrouted companion is what the lock says: reinstalling it from the lock brings it back as it is
            and not (
                self.routing
                and {d.package for d in self.errors} <= {m.package for m in self.routing}
                and not self.unverified
            )
        )

    @property
    def missing_source_errors(self) -> list[str]:
        """Drifted packages whose path/editable source folder is missing: a repair cannot fix those."""
        return sorted({d.package for d in self.errors} & set(self.missing_sources))

    def next_step(self) -> str | None:
        """The one thing the user should do next, in words."""
        return self._after_failure() or self._blocked() or self._to_fix()

    def _after_failure(self) -> str | None:
        """The operation did not complete: what to do before anything else."""
        if self.interrupted:
            return "the switch was interrupted; run it again to finish"
        if self.failure_kind == "network":
            nothing = not self.changes.installed and not self.changes.removed
            return (
                "nothing changed; " if nothing else ""
            ) + "retry when the index is reachable (uv could not reach it: see uv's words above)"
        if self.failure_kind == "uv":
            return self._after_uv()
        if self.failure_kind == "stale-lock":
            again = " ".join(self.extras) or "EXTRA"
            return f"run `uvextra switch {again}` (it locks again, then syncs) or `uv lock`, then check again"
        if self.failure_kind in ("killed", "disk-full"):
            again = (
                f"`uvextra {self.command} {' '.join(self.extras)}`" if self.command == "switch" else "`uvextra repair`"
            )
            first = (
                "free space on that disk (or point UV_CACHE_DIR elsewhere), then "
                if self.failure_kind == "disk-full"
                else ""
            )
            return f"{first}run {again} again: it reinstalls what uv left half-written"
        return None

    def _after_uv(self) -> str:
        """uv failed: a Python the project does not accept, a default group in the way, or uv's own words."""
        wrong_python = _WRONG_PYTHON.search(self.uv_error or "")
        if wrong_python:
            need = wrong_python.group(1)
            return (
                f"this venv's Python is not one the project accepts ({need}): make a venv with one (`uv venv "
                f"--python '{need}' DIR`), install ipykernel into it and start the kernel from it"
            )
        if "(enabled by default)" in (self.uv_error or ""):
            again = f"`uvextra {self.command} {' '.join(self.extras)} --no-default-groups`".replace("  ", " ")
            return f"a group uv syncs by default conflicts with what was asked: run {again}"
        again = f"`uvextra {self.command} {' '.join(self.extras)}`" if self.command == "switch" else "it"
        return f"fix what uv reported above, then run {again} again"

    def _blocked(self) -> str | None:
        """Something a repair cannot fix stands in the way: unknown extras, a read-only venv, routing, sources."""
        if self.extras_unknown:
            choices = " | ".join(self.available_extras) or "EXTRA"
            return f"run `uvextra switch {choices}` to install a backend (or pass --extra NAME to check against one)"
        if self.read_only and (self.errors or self.unverified):
            return (
                "this venv is read-only, so uvextra cannot repair it: ask the image's admin, or create your own "
                "venv (`uv venv`) and start the kernel from it"
            )
        if self.routing:
            names = ", ".join(sorted({m.package for m in self.routing}))
            extra = self.routing[0].extra
            then = (
                "run `uv lock`, then `uvextra repair`"
                if self.routing[0].kind == "marker"
                else f"run `uvextra switch {extra}`"
            )
            return (
                f"`uvextra repair` cannot fix this: the lock itself takes {names} from another index than torch; "
                f"add the [tool.uv.sources] lines shown above to pyproject.toml, then {then}"
            )
        if self.missing_source_errors:
            name = self.missing_source_errors[0]
            return (
                f"{name}: {self.missing_sources[name]}; check it out (`git submodule update --init` if it is a "
                "submodule), then check again — no repair can install it before that"
            )
        return None

    def _to_fix(self) -> str | None:
        """Drift, a companion that does not fit torch, or unverified packages: what fixes them."""
        if self.errors:
            drifted = sorted({d.package for d in self.errors})
            # none of them installed (a fresh venv): nothing to *re*install; a lock's worth of names: a count
            verb = "install" if all(d.kind == "missing" for d in self.errors) else "reinstall"
            return f"run `uvextra repair` to {verb} {_few(drifted)}"
        if self.stack_failed:
            built_wrong = [e for e in self.stack_failed if e.mismatch]
            torch = next((e.torch_version for e in self.stack_failed if e.torch_version), "")
            if not built_wrong:  # the files fit; only the probe's import or operation failed
                names = ", ".join(e.package for e in self.stack_failed)
                return (
                    f"{names}: the files are built for this torch, yet it failed in a fresh process (its reason "
                    "is above); that is no build mismatch, so a reinstall from the lock will not change it"
                )
            names = ", ".join(e.package for e in built_wrong)
            return (
                f"install the build of {names} made for torch {torch}".rstrip()
                + " (from the index torch comes from), or switch again"
            )
        if self.unverified:
            return "run `uvextra repair` to reinstall the unverified packages from the lock"
        return None


# uv's words when the target's Python is outside `requires-python` (uv 0.13.9)
_WRONG_PYTHON = re.compile(r"incompatible with the project's Python requirement: `([^`]+)`")
SHOWN_IN_ADVICE = 5  # a longer list of names in a next step is a count and the first few


def _few(names: list[str]) -> str:
    """``a b c`` for a few names; ``214 packages (a, b, c, d, e and 209 more)`` for a lock's worth."""
    if len(names) <= SHOWN_IN_ADVICE + 1:
        return " ".join(names)
    return f"{len(names)} packages ({', '.join(names[:SHOWN_IN_ADVICE])} and {len(names) - SHOWN_IN_ADVICE} more)"
