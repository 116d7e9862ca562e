"""``uvextra demo``: the whole story on this machine, offline and without a GPU.

It builds small real wheels (:mod:`uvextra._demo_wheels`: a stand-in torch in ``+cpu``, ``+cu128``, plain CUDA and
"internal mirror" builds, and torchvision) into one folder per package index (uv reads them as flat indexes: no
server, so a kept demo works later, too), writes a project shaped like astral-sh/uv#16368's and a venv, then: switch
→ an install cut short (files gone, metadata whole: what kill -9 or a full disk leaves), caught and reinstalled → a
companion built for another torch, caught in a second project that routes torch but not torchvision → the build
drift uv misses → repair → the CUDA verdict. Nothing outside the demo folder is touched: uv runs through uvextra's one
runner, and each demo project names the demo folder's uv cache (``cache-dir`` in its ``[tool.uv]``).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ._demo_wheels import build_indexes, write_project
from .core.environment import Environment
from .core.errors import UvextraError
from .core.report import Report
from .core.uv import Uv, find_uv, run_uv
from .render.text import render_text

# extra -> demo index: the three real-world backends, plus an internal mirror that publishes its own CPU build
# under PyPI's exact version string (`torch 2.9.0`): the drift even the newest uv does not see.
DEMO_EXTRAS = {"cpu": "cpu", "cu128": "cu128", "pypi": "pypi", "internal": "mirror"}
# The second project wants torchvision, too, and routes only torch per extra: its cpu extra takes PyPI's CUDA
# torchvision, whose `torch==2.9.0` pin 2.9.0+cpu satisfies (PEP 440 ignores the local part; pytorch/vision#9077).
VISION_EXTRAS = {"cpu": "cpu", "pypi": "pypi"}


class Served(Protocol):
    """Indexes served over HTTP (the tests' index server): a simple index URL per index folder."""

    def simple_url(self, index: str) -> str: ...


def create_demo(
    folder: Path,
    server: Served | None = None,
    python: str | None = None,
    *,
    uv: Uv | None = None,
    name: str = "moo",
    extras: Mapping[str, str] = DEMO_EXTRAS,
    companions: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write and lock a demo project ``folder / name`` and create its venv; return (project, venv python).

    With ``server``, the project reads its indexes from it; without, from the folders of ``folder / "indexes"``
    as flat indexes, which stay valid as long as the folder does. uv's cache is ``folder / "uv-cache"`` unless
    ``UV_CACHE_DIR`` says otherwise.
    """
    uv = uv or find_uv()
    project = folder / name
    common: dict[str, Any] = {
        "name": name,
        "extras": tuple(extras),
        "companions": companions,
        "uv_settings": [f"cache-dir = {json.dumps(str(folder / 'uv-cache'))}"],
    }
    if server is not None:
        write_project(
            project,
            {extra: server.simple_url(ix) for extra, ix in extras.items()},
            default_index=server.simple_url("pypi"),
            **common,
        )
    else:
        wheels = folder / "indexes"
        write_project(
            project,
            {extra: wheels / ix for extra, ix in extras.items()},
            default_index=wheels / "pypi",
            flat=(*extras, "default"),
            **common,
        )
    python = shutil.which(python) or python if python else sys.executable  # a path: uv never downloads one here
    venv = project / ".venv"
    env = Environment(prefix=venv, python=venv / "bin" / "python", source="the demo's venv")
    for args in (["lock", "--quiet"], ["venv", "--quiet", "--python", python, str(venv)]):
        result = run_uv(uv, args, env, cwd=project)
        if result.returncode != 0:
            raise UvextraError(f"demo setup failed: uv {args[0]}: {' '.join(result.output)[-300:]}")
    return project, env.python


def quickstart_project() -> Path:
    """Where ``notebooks/quickstart.ipynb`` puts its demo project: ``$UVEXTRA_QUICKSTART_DIR/moo``, else a folder of
    the temporary directory (the same in every kernel, so a cell run again after a restart finds it)."""
    import os

    return Path(os.environ.get("UVEXTRA_QUICKSTART_DIR") or Path(tempfile.gettempdir(), "uvextra-quickstart"), "moo")


def _cut_short(python: Path) -> Path:
    """What a kill -9 of uv mid-install leaves: half of torch's files (RECORD's order) gone, no INSTALLER; returns
    ``python``."""
    from .core.installed import record_entries

    (dist_info,) = Path(python).parent.parent.glob("lib/python3*/site-packages/torch-*.dist-info")
    rows = [p for p, _, _ in record_entries(dist_info) or [] if p.startswith("torch/")]
    for rel in rows[len(rows) // 2 :]:
        (dist_info.parent / rel).unlink(missing_ok=True)
    (dist_info / "INSTALLER").unlink(missing_ok=True)
    return python


def _step(title: str, say: Callable[[str], None]) -> None:
    say("")
    say(f"━━ {title}")


def run_demo(
    where: str | None = None, *, keep: bool = False, python: str | None = None, say: Callable[[str], None] = print
) -> int:
    """Run the demo (its venvs on ``python``, default this one); 0 when the story ends as it should: the misrouted
    companion caught, the drift caught and repaired."""
    from .core import verbs as core
    from .core.progress import Progress

    folder = Path(where).absolute() if where else Path(tempfile.mkdtemp(prefix="uvextra-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    reports: dict[str, Report] = {}

    def stream(line: str) -> None:
        say(f"   │ {line}")

    try:
        uv = find_uv()
        build_indexes(folder / "indexes")
        # the indexes are folders: nothing to serve, nothing that closes when the demo ends
        project, venv = create_demo(folder, None, python, uv=uv)
        vision, vision_venv = create_demo(
            folder, None, python, uv=uv, name="vision", extras=VISION_EXTRAS, companions=("torchvision",)
        )
        say(f"demo project {project} (extras: {', '.join(DEMO_EXTRAS)}), local indexes in {folder / 'indexes'}")
        say(f"uv {uv.version} at {uv.path}")
        steps: list[tuple[str, str, Callable[[], Report]]] = [
            (
                "pypi",
                "uvextra switch pypi — the plain PyPI build (CUDA 12.8)",
                lambda: core.switch(["pypi"], project, venv, progress=Progress(uv_line=stream)),
            ),
            (
                "cpu",
                "uvextra switch cpu — the +cpu build from its own index",
                lambda: core.switch(["cpu"], project, venv, progress=Progress(uv_line=stream), probe=False),
            ),
            (
                "cut",
                "an install cut short — half of torch's files gone and no INSTALLER, as a kill -9 or a full disk "
                "leaves them (uv calls it installed); uvextra check",
                lambda: core.check(project, _cut_short(venv)),
            ),
            (
                "retry",
                'uvextra switch cpu — again: uv says "Checked", uvextra reinstalls the half-written torch',
                lambda: core.switch(["cpu"], project, venv, progress=Progress(uv_line=stream), probe=False),
            ),
            (
                "vision",
                "uvextra switch cpu — in a second project that also wants torchvision but routes only torch",
                lambda: core.switch(["cpu"], vision, vision_venv, progress=Progress(uv_line=stream)),
            ),
            (
                "back",
                "uvextra switch pypi — back again (uv <= 0.9.23 would keep 2.9.0+cpu here)",
                lambda: core.switch(["pypi"], project, venv, progress=Progress(uv_line=stream), probe=False),
            ),
            (
                "internal",
                "uvextra switch internal — the mirror's CPU build, also named torch 2.9.0: uv keeps the old one",
                lambda: core.switch(["internal"], project, venv, progress=Progress(uv_line=stream), probe=False),
            ),
            (
                "repair",
                "uvextra repair — reinstall exactly what drifted",
                lambda: core.repair(project, venv, progress=Progress(uv_line=stream), probe=True),
            ),
            ("check", "uvextra check — clean?", lambda: core.check(project, venv)),
        ]
        for key, title, action in steps:
            _step(title, say)
            report = action()
            say(render_text(report, brief=bool(reports) and key != "vision"))  # the second project says where it is
            reports[key] = report
    except UvextraError as exc:
        say(f"uvextra: error: {exc}")
        return exc.exit_code
    finally:
        if keep or where:
            say(f"\ndemo folder kept: {folder} (try `uvextra switch cpu --project {folder / 'moo'}`)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    cut_caught = (
        any(d.kind == "files" for d in reports["cut"].drift)
        and reports["retry"].clean
        and "torch" in reports["retry"].repaired
    )
    misroute = reports["vision"]
    stack_caught = bool(misroute.stack_failed and misroute.routing)
    drift_caught = any(d.kind == "build" for d in reports["internal"].drift)
    ok = stack_caught and drift_caught and cut_caught and reports["check"].clean
    say("")
    if stack_caught:
        say(
            f"demo: {', '.join(e.package for e in misroute.stack_failed)} built for another torch caught, with the "
            "[tool.uv.sources] lines that fix it"
        )
    if cut_caught:
        say("demo: a half-installed torch (files missing, metadata whole) caught and reinstalled")
    say("demo: " + ("drift caught and repaired — the environment matches the lock" if ok else "UNEXPECTED RESULT"))
    return 0 if ok else 1
