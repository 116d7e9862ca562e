"""The words every wing shares: the closed sets and small value types the engine decides and the renderers draw."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .names import canonicalize_name

__all__ = [
    "DRIFT_KINDS",
    "EXITING",
    "EXTRA",
    "GROUP",
    "NOT_AN_ERROR",
    "RESTARTING",
    "AimHow",
    "Backend",
    "BackendKind",
    "DriftKind",
    "EnvironmentSource",
    "ExtrasUnknown",
    "FailureKind",
    "FlavourKind",
    "KernelState",
    "RestartPlan",
    "Selection",
    "SourceKind",
    "StaleModule",
    "VerdictState",
]

# ---------------------------------------------------------------------------------------------------- the closed sets

# What a backend is to uv: an extra (``--extra NAME``) or a dependency group (``--group NAME``).
BackendKind = Literal["extra", "group"]
EXTRA: BackendKind = "extra"
GROUP: BackendKind = "group"

# Where drift is decided (core/drift.py): the kinds, most severe first in reports.
DriftKind = Literal["missing", "files", "version", "local-version", "build", "source", "extraneous"]
DRIFT_KINDS: tuple[DriftKind, ...] = ("missing", "files", "version", "local-version", "build", "source", "extraneous")
NOT_AN_ERROR: frozenset[DriftKind] = frozenset({"extraneous"})

# Why an operation did not complete (core/uv_failure.py and the verbs decide which):
#   uv           uv failed; its words in ``Report.uv_error``
#   network      an index could not be reached
#   killed       uv died of a signal (SIGKILL from the OOM killer, a closed terminal)
#   disk-full    uv hit ENOSPC or a quota
#   follow-up    uv's sync ran, what came after it failed
#   interrupted  the user stopped it (exit 130)
#   stale-lock   uv.lock no longer says what pyproject.toml declares
FailureKind = Literal["uv", "network", "killed", "disk-full", "follow-up", "interrupted", "stale-lock"]

# Where a locked (or installed) package comes from.
SourceKind = Literal["index", "editable", "directory", "archive", "vcs", "sdist"]

# Why a venv is the target, in words the report shows (core/environment.py, core/userenv.py and the demo choose):
# the kernel's own, `--python`, $VIRTUAL_ENV, UV_PROJECT_ENVIRONMENT, the project's .venv, the Python running
# uvextra; a user's own env, the image under it, a kernel outside any venv, an admin's layer ($UVEXTRA_LAYERS); the
# demo's venv; "" when nobody said.
EnvironmentSource = Literal[
    "",
    "this kernel's environment",
    "--python",
    "$VIRTUAL_ENV",
    "UV_PROJECT_ENVIRONMENT",
    "the project's .venv",
    "the Python running uvextra: no $VIRTUAL_ENV, no project upward",
    "your own environment for this project",
    "the image your env is layered on",
    "this kernel's environment (not a venv)",
    "UVEXTRA_LAYERS",
    "the demo's venv",
]

# Inference could not name the backends: almost nothing of the project is installed ("none"), or two fit ("tie").
ExtrasUnknown = Literal["none", "tie"]

# How an operation knew which backends to aim at (core/aim.py): said by the user, chosen by `auto`, asked for by a
# switch that did not finish, recorded by the last switch, inferred from what is installed, or none (the base).
AimHow = Literal["given", "auto", "requested", "recorded", "inferred", "base"]


# ---------------------------------------------------------------------------------------------------- backends


@dataclass(frozen=True, eq=False)
class Backend:
    """One of a project's backends: its normalised name and what uv calls it (``--extra`` or ``--group``).

    A value: the kind travels with the name (into uv's command line, ``state.json``, the report, the toggle) and is
    never re-derived. It prints as its name and compares equal to its name as a plain string, so a list of names a
    user typed or a test wrote (``["cpu"]``) still matches; two backends are equal only when name and kind are.
    """

    name: str
    kind: BackendKind = EXTRA

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonicalize_name(str(self.name)))
        object.__setattr__(self, "kind", GROUP if self.kind == GROUP else EXTRA)

    @classmethod
    def asked(cls, raw: str, kind: BackendKind) -> Backend:
        """``raw`` exactly as the user typed it (``--extra NAME`` / ``--group NAME``), to be resolved by the project."""
        self = cls.__new__(cls)
        object.__setattr__(self, "name", raw)
        object.__setattr__(self, "kind", GROUP if kind == GROUP else EXTRA)
        return self

    @property
    def flag(self) -> str:
        """uv's option for it: ``--extra`` or ``--group``."""
        return "--group" if self.kind == GROUP else "--extra"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Backend):
            return (self.name, self.kind) == (other.name, other.kind)
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)  # equal to its name: the same hash

    def __lt__(self, other: Backend) -> bool:
        return (self.name, self.kind) < (other.name, other.kind)


def backend_names(backends: Iterable[Backend | str]) -> list[str]:
    """The names alone, as JSON and the words show them."""
    return [str(b) for b in backends]


@dataclass(frozen=True)
class Selection:
    """What uv syncs and exports: the backends chosen, and whether the project's default groups are left out.

    uv's ``--no-default-groups`` is part of the choice: a later check or repair aims at what the switch synced, so
    ``state.json`` records it with the backends, the ``Report`` carries it, and a card's button runs it again.
    """

    backends: tuple[Backend, ...] = ()
    no_default_groups: bool = False

    @property
    def names(self) -> list[str]:
        """Every backend's name (extras and groups alike): the report's ``extras``."""
        return backend_names(self.backends)

    @property
    def groups(self) -> list[str]:
        """The names of the backends that are dependency groups (uv's ``--group``)."""
        return [b.name for b in self.backends if b.kind == GROUP]

    def to_dict(self) -> dict[str, object]:
        """As JSON: the names, the groups among them, and the default-groups choice."""
        return {"extras": self.names, "groups": self.groups, "no_default_groups": self.no_default_groups}


# ---------------------------------------------------------------------------------------------------- the kernel

# What a card says while its kernel restarts (kernel/restart.py decides which)
EXITING = "the kernel is exiting; its restarter starts it again in a few seconds"
RESTARTING = "restarting through the Jupyter server (the kernel comes back in a few seconds)"


@dataclass(frozen=True)
class StaleModule:
    """A module of this process whose code on disk changed after it was imported."""

    module: str
    distribution: str | None  # the distribution that now owns its files (None: uninstalled)
    imported: str | None  # the version in memory, when the module says (``__version__``)
    on_disk: str | None  # the version installed now
    reason: str  # one line: why the kernel must restart to use what is on disk

    def __str__(self) -> str:
        return f"{self.module}: {self.reason}"


@dataclass(frozen=True)
class RestartPlan:
    """How this kernel can be restarted: ``server`` (REST), ``exit`` (a restarter brings it back) or ``manual``."""

    how: str
    why: str  # one line for the user; never contains a token
    url: str | None = None  # the restart endpoint, without credentials
    fallback_exit: bool = False  # a restarter exists: exiting is a restart too, should the REST call fail
    _token: str = field(default="", repr=False, compare=False)

    @property
    def available(self) -> bool:
        """A button can restart this kernel (``server`` or ``exit``)."""
        return self.how != "manual"

    def to_dict(self) -> dict[str, object]:
        """As JSON: the keys ``--json`` prints."""
        return {"how": self.how, "why": self.why, "url": self.url}


@dataclass
class KernelState:
    """The kernel's side of a report: modules that need a restart, and how to restart."""

    stale: list[StaleModule]
    restart: RestartPlan
    restarting: str | None = None  # set once a restart was requested: what is happening

    @property
    def needs_restart(self) -> bool:
        """Some imported module is stale: only a restart makes the kernel use what is on disk."""
        return bool(self.stale)

    def to_dict(self) -> dict[str, object]:
        """As JSON: the keys ``--json`` prints."""
        return {
            "needs_restart": self.needs_restart,
            "stale": [vars(s) for s in self.stale],
            "restart": self.restart.to_dict(),
        }


# ---------------------------------------------------------------------------------------------------- torch and its GPU

#: What a torch build is for (core/flavour.py decides it, from a name, a version's local tag or torch's own answer)
FlavourKind = Literal["cpu", "cuda", "rocm", "xpu"]

#: The CUDA verdict's state, decided once by the probe (core/probe_verdict.py) and only drawn by the renderers:
#: ``available`` the GPU works; ``no-torch`` nothing to probe; ``cpu`` a CPU (or XPU) build where no GPU extra is
#: selected — nothing wrong, no GPU to use; ``unavailable`` a GPU was expected or the probe itself failed.
VerdictState = Literal["available", "no-torch", "cpu", "unavailable"]
