"""``uvextra demo``: the whole story on this machine, offline and without a GPU.

It builds small real wheels (a stand-in torch in ``+cpu``, ``+cu128``, plain CUDA and "internal mirror" builds)
into one folder per package index (uv reads them as flat indexes: no server, so a kept demo works later, too),
writes a project shaped like astral-sh/uv#16368's and a venv, then: switch → the build drift uv misses → repair →
the CUDA verdict. Nothing outside the demo folder is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._localindex import IndexServer, build_demo_indexes, write_project
from .errors import UvextraError
from .report import Report, render_text
from .uv import find_uv

# extra -> demo index: the three real-world backends, plus an internal mirror that publishes its own CPU build
# under PyPI's exact version string (`torch 2.9.0`): the drift even the newest uv does not see.
DEMO_EXTRAS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi", "internal": "mirror"}


def create_demo(folder: Path, server: IndexServer | None, uv_path: str,
                python: str | None = None) -> tuple[Path, Path]:
    """Write and lock the demo project in ``folder`` and create its venv; return (project, venv python).

    With ``server``, the project reads its indexes from it; without, from the folders of ``folder / "indexes"``
    as flat indexes, which stay valid as long as the folder does.
    """
    project = folder / "moo"
    if server is not None:
        write_project(project, {extra: server.simple_url(ix) for extra, ix in DEMO_EXTRAS.items()},
                      extras=tuple(DEMO_EXTRAS), default_index=server.simple_url("pypi"))
    else:
        wheels = folder / "indexes"
        write_project(project, {extra: wheels / ix for extra, ix in DEMO_EXTRAS.items()}, extras=tuple(DEMO_EXTRAS),
                      default_index=wheels / "pypi", flat=(*DEMO_EXTRAS, "default"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT")}
    env.setdefault("UV_CACHE_DIR", str(folder / "uv-cache"))
    os.environ.setdefault("UV_CACHE_DIR", env["UV_CACHE_DIR"])
    python = shutil.which(python) or python if python else sys.executable  # a path: uv never downloads one here
    for args in (["lock", "--quiet"], ["venv", "--quiet", "--python", python, str(project / ".venv")]):
        proc = subprocess.run([uv_path, *args], cwd=project, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UvextraError(f"demo setup failed: uv {args[0]}: {proc.stderr.strip()[-300:]}")
    return project, project / ".venv" / "bin" / "python"


def _step(title: str, say: Callable[[str], None]) -> None:
    say("")
    say(f"━━ {title}")


def run_demo(where: str | None = None, *, keep: bool = False, python: str | None = None,
             say: Callable[[str], None] = print) -> int:
    """Run the demo (its venv on ``python``, default this one); 0 when the story ends clean (drift caught, repaired)."""
    from . import core

    folder = Path(where).absolute() if where else Path(tempfile.mkdtemp(prefix="uvextra-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    uv = find_uv()
    reports: list[Report] = []

    def stream(line: str) -> None:
        say(f"   │ {line}")

    try:
        build_demo_indexes(folder / "indexes")
        # the indexes are folders: nothing to serve, nothing that closes when the demo ends
        project, python = create_demo(folder, None, uv.path, python)
        say(f"demo project {project} (extras: {', '.join(DEMO_EXTRAS)}), local indexes in {folder / 'indexes'}")
        say(f"uv {uv.version} at {uv.path}")
        steps = [
            ("uvextra switch pypi — the plain PyPI build (CUDA 12.8)", lambda: core.switch(
                ["pypi"], project, python, on_line=stream)),
            ("uvextra switch cpu — the +cpu build from its own index", lambda: core.switch(
                ["cpu"], project, python, on_line=stream, probe=False)),
            ("uvextra switch pypi — back again (uv <= 0.9.23 would keep 2.9.0+cpu here)", lambda: core.switch(
                ["pypi"], project, python, on_line=stream, probe=False)),
            ("uvextra switch internal — the mirror's CPU build, also named torch 2.9.0: uv keeps the old one",
             lambda: core.switch(["internal"], project, python, on_line=stream, probe=False)),
            ("uvextra repair — reinstall exactly what drifted", lambda: core.repair(
                project, python, on_line=stream, probe=True)),
            ("uvextra check — clean?", lambda: core.check(project, python)),
        ]
        for title, action in steps:
            _step(title, say)
            report = action()
            reports.append(report)
            say(render_text(report, brief=bool(reports[:-1])))
    except UvextraError as exc:
        say(f"uvextra: error: {exc}")
        return exc.exit_code
    finally:
        if keep or where:
            say(f"\ndemo folder kept: {folder} (try `uvextra switch cpu --project {folder / 'moo'}`)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    caught = any(d.kind == "build" for d in reports[3].drift)
    ok = caught and reports[-1].clean
    say("")
    say("demo: " + ("drift caught and repaired — the environment matches the lock" if ok else "UNEXPECTED RESULT"))
    return 0 if ok else 1
