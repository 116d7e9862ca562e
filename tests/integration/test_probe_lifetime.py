"""No probe child outlives the call that started it, on any path: a result, an error beside it, an interrupt.

The probe is a child process importing torch. Here torch is the test harness's stand-in, installed by a real
switch, made to hang on import by ``UVEXTRA_FAKE_TORCH_HANG=1``; the operation around the probe then fails (a
``uv.lock`` broken after the probe started) or is interrupted while it waits (a real SIGALRM raising
KeyboardInterrupt in the main thread, as Ctrl-C does). After each: no process of that venv is left, and the
probe's output files are closed (a ResourceWarning is an error here).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import processes_mentioning
from uvextra.core import cuda_probe as probe
from uvextra.core import verbs as core
from uvextra.core.cuda_probe import ProbeHandle, start_probe
from uvextra.core.errors import UvextraError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="/proc, signals and process groups")


def assert_no_process_left(venv: Path) -> None:
    # No grace period: the call has returned (or raised), so its child must already be gone.
    left = processes_mentioning(str(venv))
    assert not left, f"processes still running for {venv}: {left}"


@pytest.fixture
def handles(monkeypatch: pytest.MonkeyPatch) -> list[ProbeHandle]:
    """Every probe handle started in the test, to look at its files afterwards."""
    started: list[ProbeHandle] = []
    real_init = ProbeHandle.__init__

    def init(self: ProbeHandle, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(ProbeHandle, "__init__", init)
    return started


def assert_all_closed(handles: list[ProbeHandle]) -> None:
    assert handles, "no probe was started"
    for handle in handles:
        assert handle.done()
        assert handle._stdout.closed and handle._stderr.closed, "the probe's temp files were left open"


@pytest.fixture
def setup(
    make_project,
    make_venv,
    tmp_path: Path,
    uv_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, Path]]:
    """(project, venv): the stand-in torch switched in for real; from then on its import hangs."""
    for key in ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS"):
        monkeypatch.setenv(key, uv_env[key])
    monkeypatch.delenv("UVEXTRA_UV", raising=False)
    project, venv = make_project(), make_venv(tmp_path / "venv")
    report = core.switch(["cpu"], project, venv / "bin" / "python", probe=False)
    assert report.failure is None and report.clean, report.failure
    monkeypatch.setenv("UVEXTRA_FAKE_TORCH_HANG", "1")
    monkeypatch.setenv("UVEXTRA_PROBE_TIMEOUT", "60")  # never the probe's own timeout that ends it here
    try:
        gc.collect()  # what earlier tests left to the collector is not this test's to answer for
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            # as pyproject.toml's filterwarnings: jupyter_client's async clients leave their sockets to the collector
            warnings.filterwarnings("ignore", "Unclosed socket <zmq", ResourceWarning)
            yield project, venv
            gc.collect()  # an unclosed temp file warns when collected: an error here
    finally:  # a failing test must not leave its hanging torch behind either
        for pid, _ in processes_mentioning(str(venv)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def interrupt_while_waiting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ctrl-C, for real: SIGALRM raises KeyboardInterrupt 0.5 s into any wait for a probe's result."""
    real_result = ProbeHandle.result

    def result(self: ProbeHandle) -> Any:
        assert not self.done(), "the hanging torch should still be importing"
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        return real_result(self)

    def on_alarm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, on_alarm)
    monkeypatch.setattr(ProbeHandle, "result", result)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _break_lock_after_start(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    real = core._start_probe

    def start(*args: Any, **kwargs: Any) -> ProbeHandle:
        handle = real(*args, **kwargs)
        (project / "uv.lock").write_text("this is = [not a lock\n")
        return handle

    monkeypatch.setattr(core, "_start_probe", start)


# ------------------------------------------------------------------------- an error beside the probe


def test_check_that_raises_leaves_no_probe(setup, handles, monkeypatch: pytest.MonkeyPatch) -> None:
    project, venv = setup
    _break_lock_after_start(monkeypatch, project)
    started = time.monotonic()
    with pytest.raises(UvextraError, match=r"uv\.lock|export"):
        core.check(project, venv / "bin" / "python", ["cpu"], probe=True)
    assert time.monotonic() - started < 30, "the error waited for the probe"
    assert_no_process_left(venv)
    assert_all_closed(handles)


# ------------------------------------------------------------------------- an interrupt while it waits

VERBS: dict[str, Callable[[Path, Path], object]] = {
    "check": lambda project, venv: core.check(project, venv / "bin" / "python", ["cpu"], probe=True),
    "status": lambda project, venv: core.status(project, venv / "bin" / "python"),
    "repair": lambda project, venv: core.repair(project, venv / "bin" / "python", ["cpu"], probe=True),
    "switch": lambda project, venv: core.switch(["cpu"], project, venv / "bin" / "python"),
    "probe": lambda project, venv: core.probe(venv / "bin" / "python", ["cpu"]),
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_an_interrupt_while_the_probe_runs_leaves_no_probe(
    setup,
    handles,
    interrupt_while_waiting,
    verb: str,
) -> None:
    project, venv = setup
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        VERBS[verb](project, venv)
    assert time.monotonic() - started < 30
    assert_no_process_left(venv)
    assert_all_closed(handles)


# ------------------------------------------------------------------------- the handle itself


def test_the_handle_is_a_context_manager(setup, handles) -> None:
    _project, venv = setup
    with (
        pytest.raises(RuntimeError, match="beside the probe"),
        start_probe(str(venv / "bin" / "python"), timeout=60) as handle,
    ):
        assert isinstance(handle, ProbeHandle) and not handle.done()
        raise RuntimeError("beside the probe")
    assert_no_process_left(venv)
    assert_all_closed(handles)

    with start_probe(str(venv / "bin" / "python"), timeout=1) as handle:
        result = handle.result()
    assert result.verdict == "torch import did not finish within 1 s (probe killed)"
    assert handle.result() is result  # closing after a result keeps it
    assert_no_process_left(venv)
    assert_all_closed(handles)


def test_an_interrupted_result_kills_the_child(setup, handles, interrupt_while_waiting) -> None:
    _project, venv = setup
    handle = start_probe(str(venv / "bin" / "python"), timeout=60)  # no `with`: result() itself cleans up
    with pytest.raises(KeyboardInterrupt):
        handle.result()
    assert_no_process_left(venv)
    assert_all_closed(handles)


def test_probe_function_leaves_nothing(setup, handles, interrupt_while_waiting) -> None:
    _project, venv = setup
    with pytest.raises(KeyboardInterrupt):
        probe.probe(str(venv / "bin" / "python"), timeout=60)
    assert_no_process_left(venv)
    assert_all_closed(handles)
