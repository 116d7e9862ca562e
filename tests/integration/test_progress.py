"""Issue 10: while uv installs, each phase is named and the downloads are counted — on stderr, as they happen.

The real CLI and uv against a local index that stalls the CUDA torch wheel (``IndexServer(delay=…)``), with a cache
of its own so every wheel is really downloaded; stderr is read line by line while the switch runs.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.localindex import IndexServer, write_project
from support.run import run_uv
from uvextra.core.progress import StreamProgress

STALL_S = 2.5


@pytest.fixture
def slow_server(index_root):
    server = IndexServer(index_root, delay={"torch-2.9.0+cu128-": STALL_S}).start()
    yield server
    server.stop()


def _switch(project: Path, venv: Path, env: dict[str, str], extra: str) -> tuple[list[tuple[float, str]], float]:
    """Run ``uvextra switch EXTRA --json`` and read its stderr line by line while it runs: (seconds, line) each, and
    when it ended. Fails the test unless it exits 0 with nothing but phases on stderr."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvextra",
            "switch",
            extra,
            "--json",
            "--project",
            str(project),
            "--python",
            str(venv / "bin" / "python"),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[tuple[float, str]] = []
    with proc:  # its pipes closed on every way out
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append((time.monotonic() - started, line.rstrip("\n")))
        out = proc.stdout.read() if proc.stdout else ""
        ended = time.monotonic() - started
        code = proc.wait()
    assert code == 0, out + "\n".join(t for _, t in seen)
    lines = [t for _, t in seen]
    assert all(t.startswith("uvextra: ") for t in lines), lines  # --json: phases only, no uv lines, no escapes
    assert "\x1b" not in "".join(lines) + out
    return [(at, t.removeprefix("uvextra: ")) for at, t in seen], ended


def _in_order(phases: list[str], order: list[str]) -> bool:
    firsts = [next(i for i, p in enumerate(phases) if p.startswith(w)) for w in order]
    return firsts == sorted(firsts)


def test_a_switch_names_its_phases_and_counts_downloads_while_uv_is_silent(
    slow_server, tmp_path, uv_new, uv_env, make_venv
):
    project = tmp_path / "p"
    write_project(
        project,
        {e: slow_server.simple_url(e) for e in ("cpu", "cu128", "pypi")},
        default_index=slow_server.simple_url("pypi"),
    )
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"))  # nothing cached: real downloads
    run_uv(uv_new, "lock", env=env, cwd=project)
    assert "size = " not in (project / "uv.lock").read_text()  # HTML pages: uv learns no sizes
    seen, ended = _switch(project, make_venv(tmp_path / "venv"), env, "cu128")
    phases = [t for _, t in seen]
    assert phases[0] == "resolving the lock for cu128"
    downloading = [(at, t) for at, t in seen if t.startswith("downloading ")]
    assert downloading, phases
    # While torch stalls, the others have arrived: counted in packages, and (this index's simple pages carry no
    # sizes) in the megabytes uv has unpacked into its cache so far.
    at, text = downloading[-1]
    assert text.startswith("downloading 5 of 6 packages, "), phases
    assert text.endswith(" MB unpacked so far"), phases
    assert ended - at >= STALL_S / 2, (at, ended, phases)  # said while uv was still silent, not afterwards
    assert _in_order(phases, ["resolving", "downloading", "installing", "checking", "probing CUDA"]), phases
    assert any("importing torch for the first time" in p for p in phases), phases


# What the sized index publishes for the two big CUDA wheels (the stand-ins themselves are a few kB; uv checks a
# wheel's hash, not its size): the totals a real cu128 switch shows, 590 MB of CUDA libraries and a 2.6 GB torch.
BIG = {"torch-2.9.0+cu128-": 2_600_000_000, "nvidia_cublas_cu12-": 590_000_000}


@pytest.fixture
def sized_server(index_root):
    server = IndexServer(index_root, delay={"torch-2.9.0+cu128-": STALL_S}, sizes=BIG).start()
    yield server
    server.stop()


def test_sizes_from_the_lock_count_megabytes_of_the_total_and_the_way_back_names_the_removals(
    sized_server, tmp_path, uv_new, uv_env, make_venv
):
    """An index that publishes sizes (PEP 700 JSON, as PyPI and the PyTorch indexes do): uv locks them, and the
    downloads are counted as "X of Y MB" of the switch's total; switching back names what it removes."""
    project = tmp_path / "p"
    write_project(
        project,
        {e: sized_server.simple_url(e) for e in ("cpu", "cu128", "pypi")},
        default_index=sized_server.simple_url("pypi"),
    )
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"))
    run_uv(uv_new, "lock", env=env, cwd=project)
    assert "size = 2600000000" in (project / "uv.lock").read_text()
    venv = make_venv(tmp_path / "venv")
    seen, ended = _switch(project, venv, env, "cu128")
    phases = [t for _, t in seen]
    downloading = [(at, t) for at, t in seen if t.startswith("downloading ")]
    assert downloading, phases
    assert not [t for _, t in downloading if "unpacked so far" in t], phases  # the lock's sizes, not a guess
    # torch stalls; the five others are in: 590 MB of cuBLAS and a few kB, of 3,190 MB in all.
    at, text = downloading[-1]
    assert text == "downloading 5 of 6 packages, 590 of 3,190 MB", phases
    assert ended - at >= STALL_S / 2, (at, ended, phases)
    assert all(re.fullmatch(r"downloading [0-5] of 6 packages, [\d,.]+ of 3,190 MB", t) for _, t in downloading), phases
    assert _in_order(phases, ["resolving", "downloading", "installing", "checking", "probing CUDA"]), phases

    back, _ = _switch(project, venv, env, "cpu")
    phases = [t for _, t in back]
    removing = [t for t in phases if t.startswith("removing ")]
    assert removing == [
        "removing 3 packages the new extras do not want: nvidia-cublas-cu12, nvidia-cuda-runtime-cu12, triton"
    ], phases
    assert _in_order(phases, ["resolving", "installing", "removing", "checking", "probing CUDA"]), phases
    assert not list((venv / "lib").glob("python*/site-packages/nvidia_cublas_cu12-*.dist-info")), phases


def test_stream_progress_redraws_in_place_on_a_tty_and_writes_lines_in_a_pipe():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    for stream in (pipe, tty):
        live = StreamProgress(stream)
        live("downloading 1 of 2 packages, 0.5 of 900 MB")
        live.uv_line("Prepared 2 packages in 3.1s")
        live("installing 2 packages into the venv")
        live.close()
    assert pipe.getvalue().splitlines() == [
        "uvextra: downloading 1 of 2 packages, 0.5 of 900 MB",
        "  │ Prepared 2 packages in 3.1s",
        "uvextra: installing 2 packages into the venv",
    ]
    screen = tty.getvalue()
    assert "\x1b" not in screen and screen.endswith("\n")
    assert screen.rstrip(" \n").endswith("\ruvextra: installing 2 packages into the venv")
    # what a terminal shows: the uv line above, the live line redrawn in place
    shown = [part.split("\r")[-1].rstrip() for part in screen.split("\n")]
    assert shown[:2] == ["  │ Prepared 2 packages in 3.1s", "uvextra: installing 2 packages into the venv"]


def test_nobody_listening_costs_no_thread(tmp_path):
    import threading

    from uvextra.core.progress import watch_sync

    with watch_sync(None, (), {}, print) as line:  # type: ignore[arg-type]
        assert line is print and not [t for t in threading.enumerate() if t.name == "uvextra-sync-watch"]
    assert Path(tmp_path).is_dir()


def test_the_card_shows_the_phase_while_it_runs():
    from uvextra.render.card import render_progress

    markup = render_progress(
        "switching to cu128", 12.5, ["Resolved 6 packages in 3ms"], phase="downloading 5 of 6 packages, 412 of 3,120 MB"
    )
    assert (
        '<div class="uvextra-phase" style="font-weight:600">downloading 5 of 6 packages, 412 of 3,120 MB</div>'
        in markup
        and "12.5 s" in markup
    )
