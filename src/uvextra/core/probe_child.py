"""The probe's child: the script a fresh interpreter of the target environment runs, and its answer as typed values.

The child prints lines behind a random marker (``<marker>stage "import"``, ``<marker>result {...}``,
``<marker>companion {...}``), so whatever torch prints cannot be mistaken for them. The keys it writes are the fields
of :class:`TorchAnswer`, :class:`Device` and :class:`CompanionAnswer` (tests/unit/test_probe_parse_and_judge.py
holds the script to them); :func:`parse_output` turns its stdout into those values, whatever else the output holds.
No process is run here: :mod:`uvextra.core.cuda_probe` collects, :mod:`uvextra.core.probe_verdict` judges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, TypedDict

__all__ = ["CHILD_SCRIPT", "ChildOutput", "ChildRun", "CompanionAnswer", "Device", "TorchAnswer", "parse_output"]

# Runs in the target interpreter. Stages are announced before each step that can hang or crash (import, CUDA
# initialisation) so that a signal or a timeout can be blamed on the right step. Python 3.8+ syntax only.
CHILD_SCRIPT = r"""
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


#: How the child's torch import ended: imported, not installed (or only an empty folder left), or it raised.
ChildStatus = Literal["ok", "missing", "import_error"]
_STATUSES: tuple[ChildStatus, ...] = ("ok", "missing", "import_error")


class Device(TypedDict):
    """One GPU torch sees: its name and compute capability (``sm_90``; a ROCm device's ``gfx90a``)."""

    name: str
    capability: str | None


@dataclass(frozen=True)
class TorchAnswer:
    """The child's ``result`` line: what ``import torch`` and ``torch.cuda`` said."""

    status: ChildStatus
    torch_version: str | None = None
    cuda_version: str | None = None  # torch.version.cuda
    hip_version: str | None = None  # torch.version.hip
    cuda_available: bool | None = None  # torch.cuda.is_available(); None: it raised (``error``) or never ran
    devices: tuple[Device, ...] = ()
    warnings: tuple[str, ...] = ()  # what torch warned while initialising CUDA
    error: str | None = None  # the import's exception (import_error), or what torch.cuda raised
    cuda_visible_devices: str | None = None  # the child's CUDA_VISIBLE_DEVICES
    leftover: tuple[str, ...] = ()  # missing: the empty torch folder an uninstall left behind


@dataclass(frozen=True)
class CompanionAnswer:
    """A companion's ``companion`` line: did its import and one operation of its compiled part work."""

    package: str
    ok: bool
    error: str | None = None
    ran: str | None = None  # what ran ("ops.nms on two boxes")


@dataclass(frozen=True)
class ChildOutput:
    """Everything the child said: the last stage it announced (what was running when it stopped), torch's answer
    (None: it never gave one) and each companion's."""

    stage: str | None = None
    answer: TorchAnswer | None = None
    companions: dict[str, CompanionAnswer] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildRun:
    """What collecting the child gave: its output and how it ended. ``launch_error``: it never started."""

    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = None  # negative: killed by that signal
    timed_out: bool = False  # it was killed at the timeout
    elapsed_s: float = 0.0
    launch_error: str | None = None

    @property
    def stderr_tail(self) -> str | None:
        """The last five lines of stderr (None when it wrote nothing)."""
        text = self.stderr.decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-5:]) or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _device(value: object) -> Device | None:
    if not isinstance(value, dict):
        return None
    return Device(name=_text(value.get("name")) or "", capability=_text(value.get("capability")))


def _answer(value: dict[str, object]) -> TorchAnswer:
    status = value.get("status")
    available = value.get("cuda_available")
    devices = value.get("devices")
    return TorchAnswer(
        # a result without a status of ours is judged as an import that worked (what it says is read as it is)
        status=next((s for s in _STATUSES if s == status), "ok"),
        torch_version=_text(value.get("torch_version")),
        cuda_version=_text(value.get("cuda_version")),
        hip_version=_text(value.get("hip_version")),
        cuda_available=available if isinstance(available, bool) else None,
        devices=tuple(d for d in map(_device, devices if isinstance(devices, list) else ()) if d is not None),
        warnings=tuple(w for w in _texts(value.get("warnings")) if w),
        error=_text(value.get("error")),
        cuda_visible_devices=_text(value.get("cuda_visible_devices")),
        leftover=_texts(value.get("leftover")),
    )


def _companion(value: dict[str, object]) -> CompanionAnswer:
    ran = value.get("ran")
    return CompanionAnswer(
        package=str(value.get("package")),
        ok=bool(value.get("ok")),
        error=_text(value.get("error")),
        ran=None if ran is None else str(ran),
    )


def parse_output(stdout: bytes, marker: str) -> ChildOutput:
    """The child's marked lines in ``stdout`` as typed values; every other line (torch's own chatter, a line cut
    short by a crash, JSON that does not parse) is passed over."""
    stage: str | None = None
    answer: TorchAnswer | None = None
    companions: dict[str, CompanionAnswer] = {}
    for line in stdout.decode(errors="replace").splitlines():
        if not line.startswith(marker):
            continue
        kind, _, body = line[len(marker) :].partition(" ")
        try:
            value = json.loads(body)
        except ValueError:
            continue
        if kind == "stage" and isinstance(value, str):
            stage = value
        elif kind == "result" and isinstance(value, dict):
            answer = _answer(value)
        elif kind == "companion" and isinstance(value, dict):
            got = _companion(value)
            companions[got.package] = got
    return ChildOutput(stage, answer, companions)
