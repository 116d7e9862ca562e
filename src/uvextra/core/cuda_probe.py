"""Does CUDA (or ROCm) work in the target environment, and if not, why — asked of a fresh process.

A torch already imported in the kernel keeps its old build until a restart, so the answer must come from a new
interpreter of the *target* environment: ``python -I -c <script>``. This module never imports torch itself.
The child prints one JSON line behind a random marker, so whatever torch prints cannot be mistaken for it.

Three steps: this module *collects* (starts the child, waits up to the timeout, kills it and its process group, reads
its exit status and output); :mod:`uvextra.core.probe_child` *parses* that output into typed values (the child's
script lives there too); :mod:`uvextra.core.probe_verdict` *judges* (the verdict, its words and its state).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import IO

from .accelerators import detect_rocm, read_driver_version
from .probe_child import CHILD_SCRIPT, ChildRun, parse_output
from .probe_verdict import NOT_INSTALLED, ProbeResult, judge, make_verdict

__all__ = ["NOT_INSTALLED", "ProbeHandle", "ProbeResult", "make_verdict", "probe", "start_probe"]

DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_ENV = "UVEXTRA_PROBE_TIMEOUT"  # seconds; overrides DEFAULT_TIMEOUT_S for the surfaces (CLI, magic)


class ProbeHandle:
    """A probe running in the background: :meth:`done` polls, :meth:`result` waits (up to the timeout).

    A context manager: ``with start_probe(...) as handle:`` kills the child and closes its files on every way out
    of the block (an error beside the probe, an interrupt); :meth:`result` also cleans up when it is interrupted.
    """

    def __init__(
        self,
        python: str,
        *,
        selected_extras: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        companions: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.python = python
        self.companions = tuple(companions)  # (package, module) pairs to import after torch
        self.selected_extras = tuple(selected_extras)
        self.timeout = timeout
        self._env = dict(os.environ if env is None else env)
        self._marker = f"@@uvextra-probe-{uuid.uuid4().hex}@@"
        self._result: ProbeResult | None = None
        self._started = time.monotonic()
        self._proc: subprocess.Popen[bytes] | None = None
        self._launch_error: str | None = None
        # Files, not pipes: a chatty torch cannot fill a pipe and stall while nobody reads it yet.
        self._stdout: IO[bytes] = tempfile.TemporaryFile()
        try:
            self._stderr: IO[bytes] = tempfile.TemporaryFile()
        except BaseException:
            self._stdout.close()
            raise
        try:
            self._proc = subprocess.Popen(
                [python, "-I", "-c", CHILD_SCRIPT, self._marker, *(f"{p}={m}" for p, m in self.companions)],
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stderr,
                env=self._env,
                # Own process group, so a timeout kills whatever torch's import started too.
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            self._launch_error = f"{type(exc).__name__}: {exc}"
        except BaseException:  # an interrupt while starting: nothing may outlive this call
            self.close()
            raise

    def __enter__(self) -> ProbeHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` when it could not start)."""
        return None if self._proc is None else self._proc.pid

    def done(self) -> bool:
        """True once the child has exited (or never started); never blocks."""
        return self._proc is None or self._proc.poll() is not None

    def cancel(self) -> None:
        """Kill the child (and its process group) if it is still running."""
        if self._proc is not None and self._proc.poll() is None:
            self._kill()

    def close(self) -> None:
        """Stop the child if it still runs and free its files; a result already taken stays. Idempotent.

        ``with start_probe(...) as handle:`` calls it on every way out of the block.
        """
        self.cancel()
        self._stdout.close()
        self._stderr.close()

    def _kill(self) -> None:
        assert self._proc is not None
        try:
            if os.name == "posix":
                os.killpg(self._proc.pid, signal.SIGKILL)
            else:
                self._proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()

    def result(self) -> ProbeResult:
        """Wait for the child (killing it once ``timeout`` seconds have passed since the start) and judge it."""
        if self._result is None:
            if self._stdout.closed:
                raise ValueError("the probe was closed before its result was taken")
            try:
                self._result = self._finish()
            finally:  # an interrupt while waiting included: the child is killed, its files closed
                self.close()
        return self._result

    def _finish(self) -> ProbeResult:
        # collect → parse → judge. The driver is read here rather than in start_probe so the start never blocks on
        # nvidia-smi; the child runs meanwhile.
        driver, driver_source = read_driver_version(env=self._env)
        run = self._collect()
        return judge(
            run,
            parse_output(run.stdout, self._marker),
            python=self.python,
            timeout=self.timeout,
            driver=driver,
            driver_source=driver_source,
            selected_extras=self.selected_extras,
            modules=dict(self.companions),
            rocm=lambda: detect_rocm(self._env.get("PATH")),
        )

    def _collect(self) -> ChildRun:
        """Wait for the child until the timeout (then kill it and its process group); its output and exit."""
        if self._proc is None:
            return ChildRun(launch_error=self._launch_error or "the probe process did not start")
        timed_out = False
        try:
            _wait_exit(self._proc, max(0.0, self._started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill()
        elapsed = time.monotonic() - self._started
        self._stdout.seek(0)
        self._stderr.seek(0)
        return ChildRun(self._stdout.read(), self._stderr.read(), self._proc.returncode, timed_out, elapsed)


def probe_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The probe timeout the surfaces use: ``$UVEXTRA_PROBE_TIMEOUT`` seconds when valid, else the default."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 0 < value < float("inf") else DEFAULT_TIMEOUT_S


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """``proc.wait(timeout)``, woken the moment the child exits: Popen.wait with a timeout polls with sleeps that
    grow to 50 ms, which added up to 50 ms to every probe. A pidfd (Linux 5.3+) is readable once the child exits."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or the child is already reaped
        proc.wait(timeout=timeout)
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    proc.wait()


def start_probe(
    python: str,
    *,
    selected_extras: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    companions: Sequence[tuple[str, str]] = (),
) -> ProbeHandle:
    """Start probing the interpreter ``python`` (the target environment's) without waiting.

    ``selected_extras`` are the extras the user picked (to explain a CPU build under a CUDA extra); ``env`` is the
    child's environment (default: this process's). Call ``.result()`` on the handle for the :class:`ProbeResult`;
    use the handle as a context manager (or call ``.close()``) so the child never outlives the caller.
    """
    return ProbeHandle(python, selected_extras=selected_extras, timeout=timeout, env=env, companions=companions)


def probe(
    python: str,
    *,
    selected_extras: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> ProbeResult:
    """Probe ``python`` in a fresh process and wait for the answer (at most ``timeout`` seconds)."""
    with start_probe(python, selected_extras=selected_extras, timeout=timeout, env=env) as handle:
        return handle.result()
