"""The probe without a process: its child's output parsed into typed values, and every verdict the judge gives.

``parse_output`` gets the bytes a child would print; ``judge`` gets a :class:`ChildRun` as collecting one would
leave it (exit status, timeout, stderr). The words asserted are the ones the CLI and the card show; the state is the
one the card's badge draws (``verdict_state``). tests/integration/test_probe.py runs the same cases in real child
processes.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields

import pytest

from uvextra.core.probe_child import (
    CHILD_SCRIPT,
    ChildOutput,
    ChildRun,
    CompanionAnswer,
    Device,
    TorchAnswer,
    parse_output,
)
from uvextra.core.probe_verdict import ProbeResult, judge
from uvextra.core.report import Report
from uvextra.render.view import verdict_state

M = "@@uvextra-probe-0123@@"
H100: Device = {"name": "NVIDIA H100 80GB HBM3", "capability": "sm_90"}


def line(kind: str, payload: object) -> bytes:
    return f"\n{M}{kind} {json.dumps(payload)}\n".encode()


def verdict(
    run: ChildRun,
    out: ChildOutput,
    *,
    extras: Sequence[str] = (),
    driver: str | None = None,
    modules: Mapping[str, str] | None = None,
    rocm: bool = False,
) -> ProbeResult:
    return judge(
        run,
        out,
        python="/env/bin/python",
        timeout=5,
        driver=driver,
        selected_extras=extras,
        modules=modules,
        rocm=lambda: rocm,
    )


def badge(result: ProbeResult, extras: Sequence[str] = ()) -> tuple[str, str] | None:
    return verdict_state(Report("probe", extras=list(extras), probe=result))


def answered(**fields: object) -> ChildOutput:
    return ChildOutput("cuda", TorchAnswer(status="ok", **fields))  # type: ignore[arg-type]


EXITED = ChildRun(returncode=0)


# --- parse: bytes → typed values -------------------------------------------------------------------------------


def test_parse_reads_the_marked_lines_and_passes_over_everything_else() -> None:
    stdout = (
        b'loading torch {"result": 1}'  # native noise without a newline before the marker line
        + line("stage", "import")
        + b'{"torch_version": "fake"}\n'
        + line("stage", "cuda")
        + f"{M}result {{not json\n".encode()  # a line cut short: passed over
        + b"@@uvextra-probe-other@@result {}\n"  # another probe's marker
        + line(
            "result",
            {
                "status": "ok",
                "torch_version": "2.9.0+cu128",
                "cuda_version": "12.8",
                "hip_version": None,
                "cuda_available": True,
                "devices": [H100, "not a device", {"capability": "sm_75"}],
                "warnings": ["", "CUDA initialization: driver too old"],
                "cuda_visible_devices": "0",
            },
        )
        + line("stage", "companion:torchvision")
        + line("companion", {"package": "torchvision", "ok": True, "error": None, "ran": "ops.nms on two boxes"})
        + line("stage", "companion:torchaudio")
        + line("companion", {"package": "torchaudio", "ok": False, "error": "ImportError: no libtorchaudio"})
    )
    out = parse_output(stdout, M)
    assert out.stage == "companion:torchaudio"
    assert out.answer == TorchAnswer(
        status="ok",
        torch_version="2.9.0+cu128",
        cuda_version="12.8",
        cuda_available=True,
        devices=(H100, {"name": "", "capability": "sm_75"}),
        warnings=("CUDA initialization: driver too old",),
        cuda_visible_devices="0",
    )
    assert out.companions == {
        "torchvision": CompanionAnswer("torchvision", True, None, "ops.nms on two boxes"),
        "torchaudio": CompanionAnswer("torchaudio", False, "ImportError: no libtorchaudio"),
    }


def test_parse_keeps_only_values_of_their_type() -> None:
    out = parse_output(
        line("result", {"status": "odd", "torch_version": 2, "cuda_available": "yes", "devices": "x", "warnings": 1}),
        M,
    )
    # an unknown status is read as an import that worked; a value of the wrong type is as good as absent
    assert out.answer == TorchAnswer(status="ok")
    assert parse_output(b"torch printed this\n" + line("stage", 3), M) == ChildOutput()


def test_the_child_script_writes_exactly_the_typed_fields() -> None:
    """Both sides agree: every key the child writes is a field of the typed answer, and every field is written."""
    tree = ast.parse(CHILD_SCRIPT)
    written: dict[str, set[str]] = {"out": set(), "dev": set(), "got": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in written:
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                written[node.value.id].add(node.slice.value)
        elif (
            isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Dict)
        ):
            name = node.targets[0].id
            if name in written:
                written[name] |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    # out[key + "_version"] for cuda and hip
    written["out"] |= {"cuda_version", "hip_version"}
    assert written["out"] == {f.name for f in fields(TorchAnswer)}
    assert written["dev"] == set(Device.__annotations__)
    assert written["got"] == {f.name for f in fields(CompanionAnswer)}


# --- judge: the process never answered ------------------------------------------------------------------------


def test_the_interpreter_that_does_not_start() -> None:
    result = verdict(ChildRun(launch_error="FileNotFoundError: [Errno 2] No such file"), ChildOutput())
    assert result.verdict == "target Python not found or not runnable: /env/bin/python"
    assert result.error == "FileNotFoundError: [Errno 2] No such file"
    assert (result.state, result.ok, badge(result)) == ("unavailable", False, ("bad", "CUDA ✗"))


@pytest.mark.parametrize(
    ("stage", "words"),
    [
        ("import", "torch import did not finish within 5 s (probe killed)"),
        ("cuda", "torch.cuda.is_available() did not return within 5 s (probe killed)"),
        (None, "the probe process did not answer within 5 s (probe killed)"),
    ],
)
def test_a_hang_is_blamed_on_the_stage_it_reached(stage: str | None, words: str) -> None:
    run = ChildRun(stderr=b"a\nb\nc\nd\ne\nf\nwaiting for the GPU\n", returncode=-9, timed_out=True, elapsed_s=5.1)
    result = verdict(run, ChildOutput(stage))
    assert result.verdict == words
    assert result.error == "c\nd\ne\nf\nwaiting for the GPU"  # the last five lines of stderr
    assert result.elapsed_s == 5.1
    assert (result.state, badge(result)) == ("unavailable", ("bad", "CUDA ✗"))


def test_a_crash_before_the_answer() -> None:
    result = verdict(ChildRun(returncode=-6), ChildOutput("import"))
    assert result.verdict == "import torch crashed (signal SIGABRT)"
    assert result.error is None and result.torch_version is None
    assert badge(result) == ("bad", "CUDA ✗")
    assert verdict(ChildRun(returncode=-200), ChildOutput("cuda")).verdict == (
        "torch.cuda.is_available() crashed (signal signal 200)"
    )


def test_an_exit_before_the_answer() -> None:
    result = verdict(ChildRun(stderr=b"Fatal Python error\n", returncode=3), ChildOutput())
    assert result.verdict == "the probe process exited with code 3 before reporting"
    assert result.error == "Fatal Python error"


# --- judge: torch's answer ------------------------------------------------------------------------------------


def test_no_torch_is_neutral() -> None:
    result = verdict(EXITED, ChildOutput("import", TorchAnswer(status="missing")), extras=["cu128"])
    assert (result.verdict, result.error, result.state) == ("torch is not installed", None, "no-torch")
    assert badge(result) == ("neutral", "no torch")
    left = verdict(EXITED, ChildOutput("import", TorchAnswer(status="missing", leftover=("/env/site/torch",))))
    assert left.verdict == "torch is not installed (an empty torch folder is left: /env/site/torch)"


def test_an_import_that_raises() -> None:
    out = ChildOutput("import", TorchAnswer(status="import_error", error="OSError: libcudnn.so.9: cannot open"))
    result = verdict(EXITED, out)
    assert result.verdict == "import torch failed: OSError: libcudnn.so.9: cannot open"
    assert (result.error, badge(result)) == ("OSError: libcudnn.so.9: cannot open", ("bad", "CUDA ✗"))
    # without the exception's words, stderr's say what happened
    bare = verdict(
        ChildRun(stderr=b"ImportError: boom\n", returncode=0), ChildOutput("import", TorchAnswer("import_error"))
    )
    assert bare.verdict == "import torch failed: ImportError: boom"


def test_cuda_works() -> None:
    out = answered(torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=True, devices=(H100, H100))
    result = verdict(EXITED, out, extras=["cu128"], driver="580.95.05")
    assert result.verdict == "CUDA available: 2× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95.05"
    assert (result.ok, result.state, result.error, result.devices) == (True, "available", None, [H100, H100])
    assert badge(result) == ("ok", "CUDA ✓")


def test_rocm_works_and_its_badge_says_rocm() -> None:
    out = answered(torch_version="2.9.0+rocm6.3", hip_version="6.3.42131-fa1d09cbd", cuda_available=True)
    result = verdict(EXITED, out, extras=["rocm6.3"])
    assert result.verdict == "ROCm available, ROCm 6.3"
    assert badge(result) == ("ok", "ROCm ✓")


def test_cpu_build_without_a_gpu_extra_is_neutral_and_under_one_is_not() -> None:
    out = answered(torch_version="2.9.0+cpu", cuda_available=False)
    for extras in ([], ["cpu"], ["pypi"]):
        result = verdict(EXITED, out, extras=extras)
        assert result.verdict == "CPU build of torch (2.9.0+cpu); CUDA not expected"
        assert (result.ok, result.state, badge(result, extras)) == (False, "cpu", ("neutral", "CPU"))
    under = verdict(EXITED, out, extras=["cu128"], driver="580.95")
    assert under.verdict == "not available: CPU build of torch installed (2.9.0+cpu) while extra cu128 is selected"
    assert (under.state, badge(under, ["cu128"])) == ("unavailable", ("bad", "CUDA ✗"))


def test_xpu_build_is_neutral_too() -> None:
    result = verdict(EXITED, answered(torch_version="2.9.0+xpu", cuda_available=False))
    assert result.verdict == "XPU build of torch (2.9.0+xpu); uvextra checks CUDA and ROCm only"
    assert badge(result) == ("neutral", "CPU")


def test_cuda_build_without_a_driver() -> None:
    out = answered(torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=False)
    result = verdict(EXITED, out, extras=["cu128"])
    assert result.verdict == "not available: CUDA 12.8 build but no NVIDIA driver on this machine"
    assert (result.state, badge(result)) == ("unavailable", ("bad", "CUDA ✗"))


def test_a_driver_too_old_for_the_build() -> None:
    out = answered(torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=False)
    result = verdict(EXITED, out, extras=["cu128"], driver="515.65")
    assert result.verdict == (
        "not available: driver 515.65 supports up to CUDA 11.8, this build needs 12.8 (driver ≥ 525.60.13)"
    )
    assert result.state == "unavailable"


def test_a_gpu_hidden_by_cuda_visible_devices_with_torchs_warning() -> None:
    out = answered(
        torch_version="2.9.0+cu128",
        cuda_version="12.8",
        cuda_available=False,
        cuda_visible_devices="-1",
        warnings=("CUDA initialization: no CUDA-capable device is detected",),
    )
    result = verdict(EXITED, out, extras=["cu128"], driver="580.95")
    assert result.verdict == (
        "not available: CUDA 12.8 build and driver 580.95 present, but torch sees no device (check "
        "CUDA_VISIBLE_DEVICES / container GPU access; CUDA_VISIBLE_DEVICES='-1' hides every GPU); "
        "torch says: CUDA initialization: no CUDA-capable device is detected"
    )


def test_the_rocm_check_runs_only_for_a_rocm_build_that_sees_no_device() -> None:
    def never() -> bool:
        raise AssertionError("asked for ROCm")

    rocm = answered(torch_version="2.9.0+rocm6.3", hip_version="6.3.42131", cuda_available=False)
    assert verdict(EXITED, rocm, extras=["rocm6.3"]).verdict == "not available: ROCm 6.3 build but no ROCm runtime"
    present = verdict(EXITED, rocm, extras=["rocm6.3"], rocm=True)
    assert present.verdict.startswith("not available: ROCm 6.3 build and a ROCm GPU present, but torch sees no device")
    assert badge(present) == ("bad", "ROCm ✗")
    cuda = answered(torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=False)
    judge(EXITED, cuda, python="p", timeout=5, rocm=never)  # a CUDA build: ROCm is not asked


def test_cuda_that_raises_is_worded_and_never_neutral() -> None:
    out = answered(torch_version="2.9.0+cpu", cuda_available=None, error="RuntimeError: no driver")
    result = verdict(EXITED, out)
    assert result.verdict == "CPU build of torch (2.9.0+cpu); CUDA not expected"
    assert result.error == "RuntimeError: no driver"
    assert (result.state, badge(result)) == ("unavailable", ("bad", "CUDA ✗"))  # a failure is no "nothing wrong"
    cuda = answered(torch_version="2.9.0+cu128", cuda_version="12.8", error="RuntimeError: no driver")
    assert verdict(EXITED, cuda, driver="580.95").verdict.endswith(
        "; torch says: torch.cuda.is_available() raised RuntimeError: no driver"
    )


def test_a_child_that_dies_after_its_answer() -> None:
    cpu = answered(torch_version="2.9.0+cpu", cuda_available=False)
    result = verdict(ChildRun(returncode=-11), cpu)
    assert result.verdict == "CPU build of torch (2.9.0+cpu); CUDA not expected"
    assert result.error == "probe exited with signal SIGSEGV after reporting"
    assert result.state == "unavailable"
    assert verdict(ChildRun(returncode=2), cpu).error == "probe exited with code 2 after reporting"
    works = answered(torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=True, devices=(H100,))
    died = verdict(ChildRun(returncode=-11), works, driver="580.95")
    assert (died.state, died.error) == ("available", "probe exited with signal SIGSEGV after reporting")


# --- judge: a companion that crashes or hangs after torch answered --------------------------------------------


@pytest.mark.parametrize(
    ("run", "how"),
    [
        (ChildRun(returncode=-9, timed_out=True), "did not finish within 5 s (probe killed)"),
        (ChildRun(returncode=-6), "crashed (signal SIGABRT)"),
        (ChildRun(returncode=1), "exited with code 1"),
    ],
)
def test_a_companion_that_dies_is_its_own_failure_and_torchs_answer_stands(run: ChildRun, how: str) -> None:
    out = ChildOutput(
        "companion:xtorch-hang",
        TorchAnswer(
            status="ok", torch_version="2.9.0+cu128", cuda_version="12.8", cuda_available=True, devices=(H100,)
        ),
        {"torchaudio": CompanionAnswer("torchaudio", True, None, "its extension loaded")},
    )
    result = verdict(run, out, extras=["cu128"], driver="580.95", modules={"xtorch-hang": "xtorch_hang"})
    assert result.verdict == "CUDA available: 1× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95"
    assert (result.state, result.error) == ("available", None)
    assert result.companions == {
        "torchaudio": CompanionAnswer("torchaudio", True, None, "its extension loaded"),
        "xtorch-hang": CompanionAnswer("xtorch-hang", False, f"import xtorch_hang {how}"),
    }


def test_a_hang_after_the_last_companion_answered_is_the_process_s() -> None:
    out = ChildOutput(
        "companion:torchaudio",
        TorchAnswer(status="ok", torch_version="2.9.0+cpu"),
        {"torchaudio": CompanionAnswer("torchaudio", True)},
    )
    result = verdict(ChildRun(returncode=-9, timed_out=True), out)
    assert result.verdict == "the probe process did not answer within 5 s (probe killed)"
    assert result.state == "unavailable"


# --- the report carries the state ------------------------------------------------------------------------------


def test_the_reports_json_carries_the_state_beside_the_probes_keys() -> None:
    result = verdict(EXITED, answered(torch_version="2.9.0+cpu", cuda_available=False))
    probe = Report("probe", probe=result).to_dict()["probe"]
    assert (probe["verdict"], probe["ok"], probe["state"]) == (
        "CPU build of torch (2.9.0+cpu); CUDA not expected",
        False,
        "cpu",
    )
    assert Report("probe", probe=result).exit_code == 0
    assert Report("probe", probe=verdict(EXITED, ChildOutput("import", TorchAnswer("missing")))).exit_code == 1
