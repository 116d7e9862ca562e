"""The notebook remembers its backend: a record in every ``%uvextra`` output, read back with nbformat.

Every ``%uvextra`` output carries, beside its HTML / widget / text views, a small JSON record in its own MIME type
(:data:`MIME`): the project, the extras, a hash of ``uv.lock``, torch's version and build, the CUDA verdict and the
time. Jupyter saves it in the ``.ipynb`` like any output (nbclient and papermill too); uvextra never writes a
notebook file. ``uvextra check|status --notebook NB.ipynb`` compares the notebook's last record with an
environment, ``uvextra switch --notebook NB.ipynb`` switches to its extras, and ``%uvextra`` in a kernel reads its
own notebook (``JPY_SESSION_NAME``, a hint the server gives) to say when it last ran on another backend.

Core-side: imports neither IPython nor ipywidgets; nbformat only when a notebook is read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import UvextraError
from ..core.redact import redact
from ..core.report import Report

__all__ = ["MIME", "Comparison", "NotebookRecord", "compare", "kernel_hint", "make_record", "read_record"]

MIME = "application/vnd.uvextra.record+json"
SCHEMA = 1
SESSION_ENV_VAR = "JPY_SESSION_NAME"  # jupyter_server puts the notebook's path here for its kernels (a hint only)
_emitted: list[str] = []  # times of the records this process put in outputs: newer than any saved copy of them


def _lock_hash(project: str | None) -> str | None:
    if not project:
        return None
    try:
        return "sha256:" + hashlib.sha256((Path(project) / "uv.lock").read_bytes()).hexdigest()
    except OSError:
        return None


def make_record(report: Report, *, now: datetime | None = None) -> dict[str, Any]:
    """The record of ``report`` for an output's :data:`MIME` entry (JSON-ready, redacted, no paths or tokens)."""
    from ..core import __version__

    probe = report.probe
    torch = None
    cuda = None
    if probe is not None:
        if probe.torch_version:
            torch = {
                "version": probe.torch_version,
                "build": probe.flavour.name if probe.flavour else None,
            }
        cuda = {"available": probe.cuda_available, "verdict": redact(probe.verdict)}
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _emitted.append(when)
    return {
        "schema": SCHEMA,
        "command": report.command,
        "project": report.project_name,
        "extras": [str(e) for e in report.extras],
        "groups": [str(g) for g in getattr(report, "groups", [])],  # those of the extras that are dependency groups
        "lock": _lock_hash(report.project),
        "torch": torch,
        "cuda": cuda,
        "clean": report.clean,
        "time": when,
        "uvextra": __version__,
    }


@dataclass(frozen=True)
class NotebookRecord:
    """The last record found in a notebook file."""

    path: Path
    record: dict[str, Any]

    @property
    def extras(self) -> list[str]:
        return [str(e) for e in self.record.get("extras") or []]

    @property
    def backends(self) -> list[str]:
        """:attr:`extras` as :class:`uvextra.project.Backend` names: each knows whether it is an extra or a group.

        The record lists the names in ``extras`` and those of them that are dependency groups in ``groups``; a name
        both an extra and a group of the project, switched to as both, is in ``extras`` twice (extra first). A
        record without ``groups`` (an older uvextra's) gives plain names, which the project resolves.
        """
        from ..core.project import EXTRA, GROUP, Backend

        names = self.extras
        if not isinstance(self.record.get("groups"), list):
            return names
        groups = [str(g) for g in self.record["groups"]]
        found: list[str] = []
        for name in names:
            twice = names.count(name) > 1 and not any(str(f) == name for f in found)
            kind = GROUP if name in groups and not twice else EXTRA
            found.append(Backend(name, kind))
        return found

    @property
    def torch(self) -> str | None:
        torch = self.record.get("torch") or {}
        return str(torch["version"]) if isinstance(torch, dict) and torch.get("version") else None

    @property
    def build(self) -> str | None:
        torch = self.record.get("torch") or {}
        return str(torch["build"]) if isinstance(torch, dict) and torch.get("build") else None

    @property
    def day(self) -> str:
        return str(self.record.get("time") or "")[:10]

    def ran_on(self, name: str | None = None) -> str:
        """``NB.ipynb last ran on cu128 (torch 2.9.0+cu128, 2026-12-01)``."""
        what = ", ".join(x for x in (f"torch {self.torch}" if self.torch else "", self.day) if x)
        return f"{name or self.path.name} last ran on {' '.join(self.extras) or '(no extras)'}" + (
            f" ({what})" if what else ""
        )


def _records(nb: Any) -> list[dict[str, Any]]:
    found = []
    for cell in nb.get("cells") or []:
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            data = output.get("data") if isinstance(output, Mapping) else None
            record = data.get(MIME) if isinstance(data, Mapping) else None
            if isinstance(record, Mapping) and isinstance(record.get("extras"), list):
                found.append(dict(record))
    return found


def read_record(path: str | os.PathLike[str]) -> NotebookRecord:
    """The notebook's last record (the latest by time; document order breaks ties); a bad file is one line."""
    import logging
    import warnings

    nb_path = Path(path)
    name = nb_path.name or str(path)
    if not nb_path.is_file():
        raise UvextraError(f"{path}: no such notebook file" if not nb_path.exists() else f"{path} is not a file")
    import nbformat

    quiet = logging.getLogger("traitlets")
    level = quiet.level
    try:
        quiet.setLevel(logging.CRITICAL)  # nbformat logs a validation report there for odd but readable files
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.read(nb_path, as_version=4)
        records = _records(nb)
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook, a schema nbformat cannot convert
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UvextraError(f"{name} is not a readable Jupyter notebook ({first})") from None
    finally:
        quiet.setLevel(level)
    if not records:
        raise UvextraError(f"{name} holds no uvextra record: run `%uvextra` in it and save it with its outputs")
    last = max(enumerate(records), key=lambda item: (str(item[1].get("time") or ""), item[0]))[1]
    return NotebookRecord(nb_path, last)


@dataclass(frozen=True)
class Comparison:
    """Does an environment run what the notebook last ran on? ``line`` says it in one line."""

    agrees: bool
    line: str
    extras: list[str]

    def to_dict(self, record: NotebookRecord) -> dict[str, Any]:
        return {"path": str(record.path), "record": record.record, "agrees": self.agrees, "line": self.line}


def _env_build(report: Report) -> tuple[str | None, str | None]:
    probe = report.probe
    if probe is None or not probe.torch_version:
        return None, None
    return probe.torch_version, probe.flavour.name if probe.flavour else None


def compare(
    record: NotebookRecord,
    report: Report,
    *,
    name: str | None = None,
    where: str = "this environment",
    switch: str = "uvextra switch",
) -> Comparison:
    """Compare the notebook's last record with what ``report`` found (its extras; torch's build when probed)."""
    ran = redact(record.ran_on(name))
    mine = [] if report.extras_unknown else list(report.extras)
    on = " ".join(mine) or "no backend of this project"
    if record.record.get("project") and report.project_name and record.record["project"] != report.project_name:
        return Comparison(
            False,
            f"{ran} of project {record.record['project']}; {where} is project {report.project_name}",
            record.extras,
        )
    if sorted(record.extras) != sorted(mine):
        return Comparison(False, f"{ran}; {where} is on {on} — run `{switch} {' '.join(record.extras)}`", record.extras)
    version, build = _env_build(report)
    if record.build and build and record.build != build:
        return Comparison(
            False, f"{ran}; {where} is on {on} too, but its torch is {version} — run `uvextra repair`", record.extras
        )
    changed = ""
    lock = record.record.get("lock")
    now = _lock_hash(report.project)
    if lock and now and lock != now:
        changed = "; uv.lock changed since"
    return Comparison(True, f"{ran}; {where} is on {on} too{changed}", record.extras)


# ---------------------------------------------------------------------------------------------------- in a kernel


@dataclass(frozen=True)
class KernelHint:
    """The kernel's own notebook last ran on other extras: one line, and the extras a button switches to."""

    line: str
    extras: list[str]  # Backend names: a name both an extra and a group is switched to as the record says


def kernel_notebook(environ: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The kernel's notebook file, from ``JPY_SESSION_NAME`` (absolute, or relative to the kernel's folder)."""
    env = os.environ if environ is None else environ
    raw = env.get(SESSION_ENV_VAR, "").strip()
    if not raw or not raw.endswith(".ipynb"):
        return None
    path = Path(raw)
    here = Path(cwd) if cwd is not None else Path.cwd()
    for candidate in [path] if path.is_absolute() else [here / path, here / path.name]:
        if candidate.is_file():
            return candidate
    return None


def kernel_hint(
    report: Report,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    emitted: Sequence[str] | None = None,
) -> KernelHint | None:
    """For ``%uvextra`` status: the notebook's saved record names other extras than this environment's.

    Silent (None) when the server names no notebook, it cannot be read, holds no record, its record is not newer
    than what this kernel itself already showed (the saved copy may predate this kernel's own switches), or names
    extras this project does not have.
    """
    path = kernel_notebook(environ, cwd)
    if path is None:
        return None
    try:
        record = read_record(path)
    except UvextraError:
        return None
    shown = list(_emitted if emitted is None else emitted)
    if shown and str(record.record.get("time") or "") <= max(shown):
        return None
    backends = record.backends
    declared = [*report.available_extras, *report.features]  # a feature beside the backend is the project's too
    if not backends or any(not _offered(b, declared) for b in backends):
        return None
    result = compare(record, report, name="this notebook", where="this kernel's environment", switch="%uvextra")
    if result.agrees or sorted(record.extras) == sorted(report.extras):
        return None  # the same extras: drift, if any, has its own row and button
    return KernelHint(result.line, backends)


def _offered(backend: str, available: Sequence[str]) -> bool:
    """Does the project offer ``backend`` as what it is (an extra, a group)? Plain names match by name."""
    kind = getattr(backend, "kind", None)
    return any(str(a) == str(backend) and getattr(a, "kind", kind) == kind for a in available)
