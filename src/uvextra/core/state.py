"""uvextra's own records inside the venv: the last extras and the provenance of every package it verified.

uv records no index URL and no wheel hash for registry installs, so the same version from two indexes looks
identical on disk. After each switch or repair uvextra writes, per package, which lock entry it came from
(index, wheel, sha256) and a fingerprint of its installed files; a later build drift is then provable.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .cache import atomic_write
from .environment import Environment
from .errors import UvextraError
from .vocabulary import EXTRA, Backend, BackendKind, Selection

STATE_FILE = "state.json"
LOCK_FILE = "switch.lock"
STATE_VERSION = 1


@dataclass
class Provenance:
    version: str
    source: str
    index: str | None
    wheel: str | None
    sha256: str | None
    fingerprint: str


@dataclass
class State:
    extras: list[Backend] = field(default_factory=list)  # the last successful switch's backends
    project: str | None = None
    packages: dict[str, Provenance] = field(default_factory=dict)
    updated: float = 0.0
    # Names a switch or repair of uvextra installed here: the project's to remove again, even once the lock drops them.
    owned: list[str] = field(default_factory=list)
    # The extras of the last switch that did not finish (cleared by the next one that does): check and repair
    # then aim at what the user asked for, never at a third extra inferred from a half-changed venv.
    requested: list[Backend] = field(default_factory=list)
    requested_failure: str | None = None
    requested_changed: bool = True  # did that unfinished switch change the venv? (if not, it is still on `extras`)
    no_default_groups: bool = False  # the last switch ran uv with --no-default-groups: check and repair do too

    @property
    def selection(self) -> Selection:
        """What the last successful switch synced: its backends and its default-groups choice."""
        return Selection(tuple(self.extras), self.no_default_groups)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "extras": [b.name for b in self.extras],
                "project": self.project,
                "updated": self.updated,
                "packages": {k: vars(v) for k, v in sorted(self.packages.items())},
                "owned": sorted(set(self.owned)),
                "requested": [b.name for b in self.requested],
                # per name above, "extra" or "group" (uv's --extra / --group): a project may have both of one name
                "kinds": {
                    key: [b.kind for b in backends]
                    for key, backends in (("extras", self.extras), ("requested", self.requested))
                },
                "requested_failure": self.requested_failure,
                "requested_changed": self.requested_changed,
                "no_default_groups": self.no_default_groups,
            },
            indent=1,
        )


def load_state(env: Environment) -> State:
    """The state recorded in ``env``; an empty state when there is none or it cannot be read."""
    try:
        data = json.loads((env.state_dir / STATE_FILE).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            return State()
        packages = {str(k): Provenance(**v) for k, v in (data.get("packages") or {}).items()}
        kinds = data.get("kinds") or {}

        def names(key: str) -> list[Backend]:
            said: list[BackendKind] = list(kinds.get(key) or [])
            return [Backend(str(e), said[i] if i < len(said) else EXTRA) for i, e in enumerate(data.get(key) or [])]

        return State(
            extras=names("extras"),
            project=data.get("project"),
            packages=packages,
            updated=float(data.get("updated") or 0),
            owned=[str(n) for n in data.get("owned") or []],
            requested=names("requested"),
            requested_failure=data.get("requested_failure"),
            requested_changed=bool(data.get("requested_changed", True)),
            no_default_groups=bool(data.get("no_default_groups", False)),
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return State()


def save_state(env: Environment, state: State) -> bool:
    """Write atomically; False (and nothing half-written) when the venv is read-only."""
    state.updated = time.time()
    return atomic_write(env.state_dir / STATE_FILE, state.to_json())


@contextmanager
def switch_lock(
    env: Environment, on_wait: Callable[[str], None] | None = None, timeout: float = 900.0
) -> Iterator[None]:
    """One switch or repair at a time per venv (two kernels on one env): the second waits, saying so."""
    try:
        env.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(env.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UvextraError(
            f"the environment {env.prefix} is not writable ({exc.strerror}); uvextra changes nothing there — "
            "ask the image's admin, or create your own venv (`uv venv`) and start the kernel from it"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(env)
            if on_wait:
                on_wait(f"another uvextra is changing {env.prefix}{holder}; waiting for it to finish…")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UvextraError(
                            f"another uvextra has been changing {env.prefix} for {timeout:.0f} s; retry later"
                        ) from None
                    time.sleep(0.1)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(env: Environment) -> str:
    try:
        pid = (env.state_dir / LOCK_FILE).read_text().strip()
        return f" (process {pid})" if pid else ""
    except OSError:
        return ""
