"""The words every wing shares: the closed sets and small value types the engine decides and the renderers draw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EXITING", "RESTARTING", "FlavourKind", "KernelState", "RestartPlan", "StaleModule", "VerdictState"]

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
