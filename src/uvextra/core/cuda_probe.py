"""Does CUDA (or ROCm) work in the target environment, and if not, why — asked of a fresh process.

A torch already imported in the kernel keeps its old build until a restart, so the answer must come from a new
interpreter of the *target* environment: ``python -I -c <script>``. This module never imports torch itself.
The child prints one JSON line behind a random marker, so whatever torch prints cannot be mistaken for it.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from packaging.version import InvalidVersion, Version

from .accelerators import (
    detect_rocm,
    max_cuda_for_driver,
    min_driver_for_cuda,
    parse_extra,
    read_driver_version,
    toolkit_driver_for_cuda,
)

__all__ = ["ProbeHandle", "ProbeResult", "make_verdict", "probe", "start_probe"]

DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_ENV = "UVEXTRA_PROBE_TIMEOUT"  # seconds; overrides DEFAULT_TIMEOUT_S for the surfaces (CLI, magic)
NOT_INSTALLED = "torch is not installed"

# Runs in the target interpreter. Stages are announced before each step that can hang or crash (import, CUDA
# initialisation) so that a signal or a timeout can be blamed on the right step. Python 3.8+ syntax only.
_CHILD_SCRIPT = r"""
import json, os, sys, traceback, warnings
M = sys.argv[1]
def emit(kind, payload):
    sys.stdout.write("\n" + M + kind + " " + json.dumps(payload) + "\n")
    sys.stdout.flush()
def last_line(exc):
    lines = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
out = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "warnings": []}
emit("stage", "import")
try:
    import torch
except ModuleNotFoundError as exc:
    if exc.name == "torch":
        out["status"] = "missing"
    else:
        out["status"] = "import_error"; out["error"] = last_line(exc)
    emit("result", out); sys.exit(0)
except BaseException as exc:
    out["status"] = "import_error"; out["error"] = last_line(exc)
    emit("result", out); sys.exit(0)
if getattr(torch, "__file__", None) is None and not hasattr(torch, "__version__"):
    # An empty torch/ folder left behind by an uninstall imports as a namespace package.
    out["status"] = "missing"; out["leftover"] = list(getattr(torch, "__path__", []))
    emit("result", out); sys.exit(0)
out["status"] = "ok"
out["torch_version"] = str(getattr(torch, "__version__", "") or "") or None
version = getattr(torch, "version", None)
for key in ("cuda", "hip"):
    value = getattr(version, key, None)
    out[key + "_version"] = None if value is None else str(value)
emit("stage", "cuda")
out["cuda_available"] = None
out["devices"] = []
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["cuda_available"] = bool(torch.cuda.is_available())
        if out["cuda_available"]:
            for i in range(torch.cuda.device_count()):
                dev = {"name": str(torch.cuda.get_device_name(i))}
                if out["hip_version"]:
                    arch = getattr(torch.cuda.get_device_properties(i), "gcnArchName", "") or ""
                    dev["capability"] = arch.split(":")[0] or None
                else:
                    major, minor = torch.cuda.get_device_capability(i)
                    dev["capability"] = "sm_%d%d" % (major, minor)
                out["devices"].append(dev)
    out["warnings"] = [str(w.message).strip() for w in caught]
except BaseException as exc:
    out["error"] = last_line(exc)
emit("result", out)
# The stack: import each companion and run one operation that needs its compiled part (uvextra.stack judges it).
for pair in sys.argv[2:]:
    package, _, module = pair.partition("=")
    emit("stage", "companion:" + package)
    got = {"package": package, "ok": False, "error": None}
    try:
        mod = __import__(module)
        if module == "torchvision":
            import torchvision.ops
            make = getattr(torch, "tensor", None)
            boxes, scores = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]], [0.9, 0.8]
            if make is not None:
                boxes, scores = make(boxes), make(scores)
            torchvision.ops.nms(boxes, scores, 0.5)
            got["ran"] = "ops.nms on two boxes"
        elif module == "torchaudio":
            ext = getattr(mod, "_extension", None)
            if ext is not None and getattr(ext, "_IS_TORCHAUDIO_EXT_AVAILABLE", True) is False:
                raise ImportError("torchaudio's extension (libtorchaudio) did not load")
            got["ran"] = "its extension loaded"
        got["ok"] = True
    except BaseException as exc:
        got["error"] = last_line(exc)
    emit("companion", got)
# The answer is out (emit flushed it): skip the interpreter's teardown, which the parent would wait for — with a
# real torch, freeing thousands of modules (and a CUDA context) takes longer than the answer did.
sys.stderr.flush()
os._exit(0)
"""

_STAGE_WORDS = {
    # stage → (what crashed, what did not finish)
    None: ("the probe process", "the probe process did not answer"),
    "import": ("import torch", "torch import did not finish"),
    "cuda": ("torch.cuda.is_available()", "torch.cuda.is_available() did not return"),
}


@dataclass
class ProbeResult:
    """What a fresh interpreter of the target environment says about torch and its GPU.

    ``ok`` is True only when CUDA or HIP is available; ``verdict`` is one line for the user; ``error`` holds the
    technical detail when the probe itself failed (crash, timeout, exception, missing interpreter).
    """

    torch_version: str | None = None
    cuda_version: str | None = None
    hip_version: str | None = None
    cuda_available: bool | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    driver_version: str | None = None
    driver_source: str = ""
    verdict: str = ""
    ok: bool = False
    error: str | None = None
    elapsed_s: float = 0.0
    # what the fresh process saw of each companion: {package: {"ok", "error", "ran"}} (uvextra.stack words it)
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary every surface (CLI ``--json``, widget, report) shows."""
        return {
            "torch_version": self.torch_version,
            "cuda_version": self.cuda_version,
            "hip_version": self.hip_version,
            "cuda_available": self.cuda_available,
            "devices": [dict(d) for d in self.devices],
            "driver_version": self.driver_version,
            "verdict": self.verdict,
            "ok": self.ok,
            "error": self.error,
        }


def _short(version: str, parts: int = 2) -> str:
    # torch.version.hip is "6.3.42131-fa1d09cbd": users know it as ROCm 6.3.
    nums = re.findall(r"\d+", version)
    return ".".join(nums[:parts]) if nums else version


def _devices_text(devices: Sequence[Mapping[str, Any]]) -> str:
    counts = Counter((str(d.get("name") or "unknown device"), d.get("capability")) for d in devices)
    return ", ".join(f"{n}× {name}" + (f" ({cap})" if cap else "") for (name, cap), n in counts.items())


def _hides_all_gpus(cuda_visible_devices: str | None) -> bool:
    # CUDA reads the list up to its first invalid entry: "", "-1", "none", "NoDevFiles" all leave no device.
    if cuda_visible_devices is None:
        return False
    first = cuda_visible_devices.strip().split(",")[0].strip()
    return not (first.isdigit() or first.startswith(("GPU-", "MIG-")))


def _build_kind(torch_version: str, cuda_version: str | None, hip_version: str | None) -> str:
    if cuda_version:
        return "cuda"
    if hip_version:
        return "rocm"
    try:
        local = Version(torch_version).local or ""
    except InvalidVersion:
        local = ""
    return "xpu" if local.startswith("xpu") else "cpu"


def _mismatch_note(kind: str, build: str | None, selected: Sequence[str]) -> str:
    # A build that does not match the selected extra is the stale-install symptom (uv#16368): say so even when
    # the GPU works, since the environment is not what the lock asks for.
    accels = [parse_extra(e) for e in selected]
    chosen = [a for a in accels if a.kind != "unknown"]
    if not chosen:
        return ""
    label = {"cuda": "CUDA", "rocm": "ROCm"}.get(kind, kind.upper())
    for a in chosen:
        if a.kind == kind and (a.version is None or build is None or _short(a.version) == _short(build)):
            return ""
    desc = f"{label} {_short(build)}" if build else label
    return f"; note: {desc} build installed while extra {chosen[0].name} is selected"


def make_verdict(
    torch_version: str | None,
    cuda_version: str | None,
    hip_version: str | None,
    available: bool | None,
    devices: Sequence[Mapping[str, Any]],
    driver_version: str | None,
    selected_extras: Sequence[str] = (),
    *,
    cuda_visible_devices: str | None = None,
    torch_warnings: Sequence[str] = (),
    rocm_runtime: bool | None = None,
) -> tuple[str, bool]:
    """One line that says whether the GPU works and, if not, why; and whether it works (``ok``).

    A pure function of what the probe saw: the torch build (version, ``torch.version.cuda`` / ``.hip``), whether
    ``torch.cuda.is_available()``, the devices, the NVIDIA driver, the selected extras; optionally the child's
    ``CUDA_VISIBLE_DEVICES``, the warnings torch raised while initialising CUDA, and whether a ROCm GPU was found.
    """
    if torch_version is None:
        return NOT_INSTALLED, False
    kind = _build_kind(torch_version, cuda_version, hip_version)
    gpu_extras = [e for e in selected_extras if parse_extra(e).is_gpu]
    torch_says = f"; torch says: {torch_warnings[0]}" if torch_warnings else ""

    if available:
        listed = _devices_text(devices)
        if kind == "rocm":
            head = f"ROCm available: {listed}" if listed else "ROCm available"
            head += f", ROCm {_short(hip_version or '')}"
        else:
            head = f"CUDA available: {listed}" if listed else "CUDA available"
            if driver_version:
                head += f", driver {driver_version}"
        return head + _mismatch_note(kind, cuda_version or hip_version, selected_extras), True

    if kind in ("cpu", "xpu"):
        label = "CPU" if kind == "cpu" else "XPU"
        if gpu_extras:
            return (
                f"not available: {label} build of torch installed ({torch_version}) while extra {gpu_extras[0]} "
                "is selected",
                False,
            )
        if kind == "xpu":
            return f"XPU build of torch ({torch_version}); uvextra checks CUDA and ROCm only", False
        return f"CPU build of torch ({torch_version}); CUDA not expected", False

    note = _mismatch_note(kind, cuda_version or hip_version, selected_extras)
    if kind == "rocm":
        rocm = _short(hip_version or "")
        if not rocm_runtime:
            return f"not available: ROCm {rocm} build but no ROCm runtime{note}{torch_says}", False
        return (
            f"not available: ROCm {rocm} build and a ROCm GPU present, but torch sees no device (check "
            f"HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES / container access to /dev/kfd and /dev/dri){note}"
            f"{torch_says}",
            False,
        )

    cuda = _short(cuda_version or "")
    if not driver_version:
        return f"not available: CUDA {cuda} build but no NVIDIA driver on this machine{note}{torch_says}", False
    need = min_driver_for_cuda(cuda)
    try:
        have = Version(driver_version)
    except InvalidVersion:
        have = None
    if need is not None and have is not None and have < Version(need):
        top = max_cuda_for_driver(driver_version)
        supports = f"supports up to CUDA {top}" if top else "is older than every CUDA release known here"
        return (
            f"not available: driver {driver_version} {supports}, this build needs {cuda} (driver ≥ {need})"
            f"{note}{torch_says}",
            False,
        )
    if _hides_all_gpus(cuda_visible_devices):
        hint = (
            "check CUDA_VISIBLE_DEVICES / container GPU access; "
            f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU"
        )
    else:
        hint = "check that this process can see the GPU: nvidia-smi, /dev/nvidia*, the container's --gpus"
        toolkit = toolkit_driver_for_cuda(cuda)
        if toolkit and have is not None and have < Version(toolkit):
            hint += f"; driver is older than CUDA {cuda}'s own {toolkit} and relies on minor-version compatibility"
    return (
        f"not available: CUDA {cuda} build and driver {driver_version} present, but torch sees no device ({hint})"
        f"{note}{torch_says}",
        False,
    )


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


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
                [python, "-I", "-c", _CHILD_SCRIPT, self._marker, *(f"{p}={m}" for p, m in self.companions)],
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

    def _finish(self) -> ProbeResult:  # noqa: C901 - issue 20: being split under 15
        # The driver is read here rather than in start_probe so the start never blocks on nvidia-smi; the child
        # runs meanwhile.
        driver, driver_source = read_driver_version(env=self._env)
        res = ProbeResult(driver_version=driver, driver_source=driver_source)
        if self._proc is None:
            res.verdict = f"target Python not found or not runnable: {self.python}"
            res.error = self._launch_error
            return res

        timed_out = False
        try:
            _wait_exit(self._proc, max(0.0, self._started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill()
        res.elapsed_s = time.monotonic() - self._started

        self._stdout.seek(0)
        self._stderr.seek(0)
        stdout = self._stdout.read().decode(errors="replace")
        stderr = self._stderr.read().decode(errors="replace")
        stage: str | None = None
        companion_failed = False
        payload: dict[str, Any] | None = None
        for line in stdout.splitlines():
            if not line.startswith(self._marker):
                continue
            kind, _, body = line[len(self._marker) :].partition(" ")
            try:
                value = json.loads(body)
            except ValueError:
                continue
            if kind == "stage" and isinstance(value, str):
                stage = value
            elif kind == "result" and isinstance(value, dict):
                payload = value
            elif kind == "companion" and isinstance(value, dict):
                res.companions[str(value.get("package"))] = value
        if payload is not None and stage and stage.startswith("companion:"):
            # torch's answer came through; a companion's import crashed or hung: that companion's failure only.
            name = stage.split(":", 1)[1]
            if name not in res.companions:
                rc = self._proc.returncode
                module = dict(self.companions).get(name, name)  # what was imported: torch_hang, not torch-hang
                how = (
                    f"did not finish within {self.timeout:g} s (probe killed)"
                    if timed_out
                    else f"crashed (signal {_signal_name(rc)})"
                    if rc is not None and rc < 0
                    else f"exited with code {rc}"
                )
                res.companions[name] = {"package": name, "ok": False, "error": f"import {module} {how}"}
                timed_out, companion_failed = False, True

        what, unfinished = _STAGE_WORDS.get(stage, _STAGE_WORDS[None])
        if timed_out:
            res.verdict = f"{unfinished} within {self.timeout:g} s (probe killed)"
            res.error = _tail(stderr) or None
            return res
        rc = 0 if companion_failed else self._proc.returncode
        if payload is None:
            if rc < 0:
                res.verdict = f"{what} crashed (signal {_signal_name(rc)})"
            else:
                res.verdict = f"{what} exited with code {rc} before reporting"
            res.error = _tail(stderr) or None
            return res

        status = payload.get("status")
        if status == "missing":
            leftover = payload.get("leftover")
            res.verdict = NOT_INSTALLED + (f" (an empty torch folder is left: {leftover[0]})" if leftover else "")
            return res
        if status == "import_error":
            res.error = payload.get("error") or _tail(stderr) or None
            res.verdict = f"import torch failed: {res.error}"
            return res

        res.torch_version = payload.get("torch_version")
        res.cuda_version = payload.get("cuda_version")
        res.hip_version = payload.get("hip_version")
        res.cuda_available = payload.get("cuda_available")
        res.devices = list(payload.get("devices") or [])
        res.error = payload.get("error")
        warnings = [w for w in payload.get("warnings") or [] if w]
        if res.error:
            warnings.insert(0, f"torch.cuda.is_available() raised {res.error}")
        # Only a ROCm build that sees no GPU needs the (cheap) ROCm check.
        rocm = detect_rocm(self._env.get("PATH")) if res.hip_version and not res.cuda_available else None
        res.verdict, res.ok = make_verdict(
            res.torch_version,
            res.cuda_version,
            res.hip_version,
            res.cuda_available,
            res.devices,
            driver,
            self.selected_extras,
            cuda_visible_devices=payload.get("cuda_visible_devices"),
            torch_warnings=warnings,
            rocm_runtime=rocm,
        )
        if rc not in (0, None) and not res.error:
            # The report came through, but the child died afterwards (e.g. at interpreter shutdown).
            how = f"signal {_signal_name(rc)}" if rc < 0 else f"code {rc}"
            res.error = f"probe exited with {how} after reporting"
        return res


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
