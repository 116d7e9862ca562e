"""What every verb works on: the project, the target venv, the uv that syncs it, and where progress is said."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import Environment, resolve_environment
from .errors import UvextraError
from .lock import read_uv_lock
from .progress import SILENT, Progress
from .project import Project, load_project, name_unreadable
from .report import Report
from .uv import MIN_EXPORT, Uv, find_uv
from .vocabulary import Backend

__all__ = ["Context", "open_context"]


@dataclass
class Context:
    """What every verb works on: the project, the target venv, and the uv that syncs it; ``progress`` hears it."""

    project: Project
    env: Environment
    uv: Uv
    progress: Progress = field(default=SILENT)

    def _of_features(self, members: tuple[Backend, ...]) -> bool:
        offered = {(b.name, b.kind) for b in self.project.offered}
        return not any((m.name, m.kind) in offered for m in members)

    def new_report(self, command: str, *, warnings: Sequence[str] = (), **found: Any) -> Report:
        """A report for ``command`` that says where (project, venv, python, uv) and why that venv; ``found``: what
        the verb found, when it assembles its report at once (``warnings`` after uv's own)."""
        return Report(
            command=command,
            project=str(self.project.root),
            project_name=self.project.name,
            environment=str(self.env.prefix),
            environment_source=self.env.source,
            python=str(self.env.python),
            uv=self.uv.to_dict(),
            available_extras=list(self.project.offered),
            features=list(self.project.features),
            # the sets of backends first: a surface that offers "the" set (the toggle) offers a backend set
            conflict_sets=[list(s) for s in sorted(self.project.conflict_sets, key=self._of_features)],
            workspace=str(self.project.workspace) if self.project.workspace else None,
            warnings=[self.uv.warning, *warnings] if self.uv.warning else list(warnings),
            read_only=not self.env.writable(),
            **found,
        )


def open_context(
    project: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Context:
    """Find the project, the target venv and uv; every problem is a one-line UvextraError."""
    try:
        env = resolve_environment(python)
    except UvextraError:
        name_unreadable(Path(project) if project is not None else None)  # a malformed pyproject.toml is named first
        raise
    proj = load_project(Path(project) if project is not None else None)
    if proj.lockfile.is_file():
        read_uv_lock(proj, env, store=False)  # a malformed lock is named (file and line) before uv is run at all
    uv = find_uv(env.state_dir)  # its version is kept in the venv: no `uv --version` on every call
    if uv.version < MIN_EXPORT:  # refuse before running it: an old uv would sync, then fail to export
        raise UvextraError(
            f"uv {uv.version} at {uv.path} is too old to read this project's lock: it has no "
            f"`uv export --format pylock.toml` (added in uv {MIN_EXPORT}); install a newer one: "
            "`pip install 'uv>=0.9.24'`, or unset UVEXTRA_UV"
        )
    return Context(project=proj, env=env, uv=uv, progress=progress or SILENT)
