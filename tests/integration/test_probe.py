"""The CUDA probe: every verdict wording as a pure function, then real child processes in throwaway venvs.

The process tests put a fabricated ``torch`` package (plain Python files) into a venv made with
``python -m venv --without-pip`` and probe that venv's interpreter for real: import, crash, hang, missing.
The real CPU wheel is used only under ``pytest -m slow`` and only where pip's find-links configuration has it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from support.cli import run_cli
from support.run import run_uv
from uvextra.core.accelerators import read_driver_version
from uvextra.core.cuda_probe import ProbeResult, make_verdict, probe, start_probe

H100 = {"name": "NVIDIA H100 80GB HBM3", "capability": "sm_90"}
MI250 = {"name": "AMD Instinct MI250X/MI250", "capability": "gfx90a"}


# --- make_verdict: the wordings ---------------------------------------------------------------------------------


def test_cuda_available_one_device() -> None:
    assert make_verdict("2.9.0+cu128", "12.8", None, True, [H100], "580.95", ["cu128"]) == (
        "CUDA available: 1× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95",
        True,
    )


def test_cuda_available_groups_identical_devices() -> None:
    t4 = {"name": "Tesla T4", "capability": "sm_75"}
    verdict, ok = make_verdict("2.9.0+cu128", "12.8", None, True, [H100, H100, t4], "580.95", ["cu128"])
    assert verdict == "CUDA available: 2× NVIDIA H100 80GB HBM3 (sm_90), 1× Tesla T4 (sm_75), driver 580.95"
    assert ok


def test_cuda_available_but_build_differs_from_selected_extra() -> None:
    # A stale build that still works: worth a note (uv#16368 leaves exactly this behind).
    verdict, ok = make_verdict("2.9.0+cu126", "12.6", None, True, [H100], "580.95", ["cu128"])
    assert verdict == (
        "CUDA available: 1× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95; "
        "note: CUDA 12.6 build installed while extra cu128 is selected"
    )
    assert ok
    verdict, _ = make_verdict("2.9.0", "12.8", None, True, [H100], "580.95", ["cpu"])
    assert verdict.endswith("; note: CUDA 12.8 build installed while extra cpu is selected")
    # An unclassifiable extra (pypi) expects nothing in particular.
    assert "note" not in make_verdict("2.9.0", "12.8", None, True, [H100], "580.95", ["pypi"])[0]


def test_cpu_build_under_cuda_extra() -> None:
    assert make_verdict("2.9.0+cpu", None, None, False, [], "580.95", ["cu128"]) == (
        "not available: CPU build of torch installed (2.9.0+cpu) while extra cu128 is selected",
        False,
    )


def test_cpu_build_without_cuda_extra_is_neutral() -> None:
    for extras in ([], ["cpu"], ["pypi"]):
        assert make_verdict("2.9.0+cpu", None, None, False, [], None, extras) == (
            "CPU build of torch (2.9.0+cpu); CUDA not expected",
            False,
        )


def test_cuda_build_without_driver() -> None:
    assert make_verdict("2.9.0+cu128", "12.8", None, False, [], None, ["cu128"]) == (
        "not available: CUDA 12.8 build but no NVIDIA driver on this machine",
        False,
    )


def test_driver_too_old() -> None:
    verdict, ok = make_verdict("2.9.0+cu128", "12.8", None, False, [], "515.65", ["cu128"])
    assert verdict == (
        "not available: driver 515.65 supports up to CUDA 11.8, this build needs 12.8 (driver ≥ 525.60.13)"
    )
    assert not ok
    verdict, _ = make_verdict("2.9.0+cu130", "13.0", None, False, [], "570.86.15", ["cu130"])
    assert verdict.startswith("not available: driver 570.86.15 supports up to CUDA 12.9, this build needs 13.0")


def test_driver_present_but_no_device_hidden_by_cuda_visible_devices() -> None:
    for hidden in ("", "-1", "none", "NoDevFiles"):
        verdict, ok = make_verdict(
            "2.9.0+cu128", "12.8", None, False, [], "580.95", ["cu128"], cuda_visible_devices=hidden
        )
        assert verdict == (
            "not available: CUDA 12.8 build and driver 580.95 present, but torch sees no device "
            f"(check CUDA_VISIBLE_DEVICES / container GPU access; CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU)"
        )
        assert not ok


def test_driver_present_but_no_device_generic_hint() -> None:
    for visible in (None, "0", "0,1", "GPU-5f3c2a1e"):
        verdict, _ = make_verdict(
            "2.9.0+cu128", "12.8", None, False, [], "580.95", ["cu128"], cuda_visible_devices=visible
        )
        assert verdict.startswith(
            "not available: CUDA 12.8 build and driver 580.95 present, but torch sees no device ("
        )
        assert "CUDA_VISIBLE_DEVICES" not in verdict


def test_no_device_mentions_minor_version_compat_and_torch_warning() -> None:
    verdict, _ = make_verdict(
        "2.9.0+cu128",
        "12.8",
        None,
        False,
        [],
        "535.104.05",
        ["cu128"],
        torch_warnings=["CUDA initialization: CUDA driver initialization failed, you might not have a CUDA gpu."],
    )
    assert "relies on minor-version compatibility" in verdict
    assert verdict.endswith(
        "; torch says: CUDA initialization: CUDA driver initialization failed, you might not have a CUDA gpu."
    )


def test_torch_not_installed() -> None:
    assert make_verdict(None, None, None, None, [], "580.95", ["cu128"]) == ("torch is not installed", False)


def test_rocm_available() -> None:
    verdict, ok = make_verdict("2.9.0+rocm6.3", None, "6.3.42131-fa1d09cbd", True, [MI250, MI250], None, ["rocm6.3"])
    assert verdict == "ROCm available: 2× AMD Instinct MI250X/MI250 (gfx90a), ROCm 6.3"
    assert ok


def test_rocm_without_runtime() -> None:
    assert make_verdict("2.9.0+rocm6.3", None, "6.3.42131-fa1d09cbd", False, [], None, ["rocm6.3"]) == (
        "not available: ROCm 6.3 build but no ROCm runtime",
        False,
    )
    verdict, _ = make_verdict("2.9.0+rocm6.3", None, "6.3.42131", False, [], None, ["rocm6.3"], rocm_runtime=True)
    assert verdict.startswith("not available: ROCm 6.3 build and a ROCm GPU present, but torch sees no device")


def test_cpu_build_under_rocm_extra() -> None:
    verdict, _ = make_verdict("2.9.0+cpu", None, None, False, [], None, ["rocm6.3"])
    assert verdict == "not available: CPU build of torch installed (2.9.0+cpu) while extra rocm6.3 is selected"


# --- real child processes ---------------------------------------------------------------------------------------


def make_venv(root: Path) -> tuple[Path, Path]:
    """A throwaway venv without pip; returns (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = next(root.glob("lib/python3*/site-packages"))
    return python, site


def write_fake_torch(
    site: Path,
    *,
    version: str = "2.9.0+cpu",
    cuda: str | None = None,
    hip: str | None = None,
    available: bool = False,
    devices: Sequence[tuple[str, tuple[int, int], str]] = (),
    warning: str | None = None,
    on_import: str = "",
    on_is_available: str = "",
) -> None:
    """A stand-in ``torch`` package: just the attributes the probe reads, plus optional misbehaviour."""
    pkg = site / "torch"
    (pkg / "cuda").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            f"""\
            import sys
            # Noise the probe must ignore: a half line and a JSON-looking one, as native code might print.
            sys.stdout.write('loading torch {{"result": 1}}')
            print('{{"torch_version": "fake"}}')
            {on_import}
            __version__ = {version!r}
            from . import version, cuda
            """
        )
    )
    (pkg / "version.py").write_text(f"cuda = {cuda!r}\nhip = {hip!r}\n")
    (pkg / "cuda" / "__init__.py").write_text(
        textwrap.dedent(
            f"""\
            import warnings
            _DEVICES = {list(devices)!r}

            class _Props:
                def __init__(self, arch):
                    self.gcnArchName = arch

            def is_available():
                {on_is_available or "pass"}
                if {warning!r}:
                    warnings.warn({warning!r})
                return {available!r}

            def device_count():
                return len(_DEVICES)

            def get_device_name(i):
                return _DEVICES[i][0]

            def get_device_capability(i):
                return tuple(_DEVICES[i][1])

            def get_device_properties(i):
                return _Props(_DEVICES[i][2])
            """
        )
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UV_CUDA_DRIVER_VERSION", "CUDA_VISIBLE_DEVICES")}
    env.update(extra)
    return env


def process_gone(pid: int) -> bool:
    # A killed grandchild may linger as a zombie of whoever adopted it; a zombie runs nothing.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture
def venv(tmp_path: Path) -> tuple[Path, Path]:
    return make_venv(tmp_path / "venv")


def test_probe_torch_not_installed(venv: tuple[Path, Path]) -> None:
    python, _ = venv
    result = probe(str(python), selected_extras=["cu128"], timeout=30)
    assert result.verdict == "torch is not installed"
    assert result.ok is False
    assert result.torch_version is None
    assert result.error is None
    assert set(result.to_dict()) == {
        "torch_version",
        "cuda_version",
        "hip_version",
        "cuda_available",
        "devices",
        "driver_version",
        "verdict",
        "ok",
        "error",
    }


def test_probe_empty_torch_folder_left_behind(venv: tuple[Path, Path]) -> None:
    python, site = venv
    (site / "torch").mkdir()
    result = probe(str(python), timeout=30)
    assert result.verdict.startswith("torch is not installed (an empty torch folder is left: ")


def test_probe_cpu_build_under_cuda_extra(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(site, version="2.9.0+cpu")
    result = probe(str(python), selected_extras=["cu128"], timeout=30, env=clean_env())
    assert result.verdict == "not available: CPU build of torch installed (2.9.0+cpu) while extra cu128 is selected"
    assert (result.torch_version, result.cuda_version, result.hip_version) == ("2.9.0+cpu", None, None)
    assert result.cuda_available is False
    assert result.ok is False
    assert result.elapsed_s > 0


def test_probe_cuda_available(venv: tuple[Path, Path]) -> None:
    python, site = venv
    h100 = ("NVIDIA H100 80GB HBM3", (9, 0), "")
    write_fake_torch(site, version="2.9.0+cu128", cuda="12.8", available=True, devices=[h100, h100])
    result = probe(
        str(python), selected_extras=["cu128"], timeout=30, env=clean_env(UV_CUDA_DRIVER_VERSION="580.95.05")
    )
    assert result.verdict == "CUDA available: 2× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95.05"
    assert result.ok is True
    assert result.devices == [H100, H100]
    assert (result.driver_version, result.driver_source) == ("580.95.05", "UV_CUDA_DRIVER_VERSION")
    assert result.to_dict()["cuda_available"] is True


def test_probe_cuda_build_without_driver(venv: tuple[Path, Path]) -> None:
    if read_driver_version(env={})[0] is not None:
        pytest.skip("this machine has an NVIDIA driver")
    python, site = venv
    write_fake_torch(site, version="2.9.0+cu128", cuda="12.8")
    result = probe(str(python), selected_extras=["cu128"], timeout=30, env=clean_env())
    assert result.verdict == "not available: CUDA 12.8 build but no NVIDIA driver on this machine"
    assert result.driver_version is None
    assert result.driver_source.startswith("not found (checked ")


def test_probe_hidden_gpus_and_torch_warning(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(
        site, version="2.9.0+cu128", cuda="12.8", warning="CUDA initialization: no CUDA-capable device is detected"
    )
    env = clean_env(UV_CUDA_DRIVER_VERSION="580.95.05", CUDA_VISIBLE_DEVICES="-1")
    result = probe(str(python), selected_extras=["cu128"], timeout=30, env=env)
    assert result.verdict == (
        "not available: CUDA 12.8 build and driver 580.95.05 present, but torch sees no device "
        "(check CUDA_VISIBLE_DEVICES / container GPU access; CUDA_VISIBLE_DEVICES='-1' hides every GPU)"
        "; torch says: CUDA initialization: no CUDA-capable device is detected"
    )


def test_probe_rocm_without_runtime(venv: tuple[Path, Path], tmp_path: Path) -> None:
    python, site = venv
    write_fake_torch(site, version="2.9.0+rocm6.3", hip="6.3.42131-fa1d09cbd")
    # PATH without rocm_agent_enumerator, but with the venv for anything else the child might need.
    env = clean_env(PATH=str(python.parent))
    result = probe(str(python), selected_extras=["rocm6.3"], timeout=30, env=env)
    assert result.verdict == "not available: ROCm 6.3 build but no ROCm runtime"


def test_probe_import_crash_abort(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(site, on_import="import os; os.abort()")
    result = probe(str(python), timeout=30, env=clean_env())
    assert result.verdict == "import torch crashed (signal SIGABRT)"
    assert result.ok is False
    assert result.torch_version is None


def test_probe_import_exception(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(
        site, on_import="raise OSError('libcudnn.so.9: cannot open shared object file: No such file or directory')"
    )
    result = probe(str(python), timeout=30, env=clean_env())
    assert result.verdict == (
        "import torch failed: OSError: libcudnn.so.9: cannot open shared object file: No such file or directory"
    )
    assert result.error == "OSError: libcudnn.so.9: cannot open shared object file: No such file or directory"


def test_probe_import_hang_is_killed_with_its_children(venv: tuple[Path, Path], tmp_path: Path) -> None:
    python, site = venv
    pidfile = tmp_path / "grandchild.pid"
    write_fake_torch(
        site,
        on_import=(
            "import subprocess, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); "
            "time.sleep(600)"
        ),
    )
    started = time.monotonic()
    handle = start_probe(str(python), timeout=3, env=clean_env())
    assert time.monotonic() - started < 2, "start_probe must not wait for the child"
    assert not handle.done()
    result = handle.result()
    assert 3 <= result.elapsed_s < 15
    assert result.verdict == "torch import did not finish within 3 s (probe killed)"
    assert result.ok is False
    assert handle.pid is not None and process_gone(handle.pid)
    deadline = time.monotonic() + 5
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not process_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(grandchild)
    assert handle.result() is result  # cached, not probed again


def test_probe_cuda_init_hang(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(site, version="2.9.0+cu128", cuda="12.8", on_is_available="import time; time.sleep(600)")
    result = probe(str(python), timeout=2, env=clean_env())
    assert result.verdict == "torch.cuda.is_available() did not return within 2 s (probe killed)"


def test_probe_cancel(venv: tuple[Path, Path]) -> None:
    python, site = venv
    write_fake_torch(site, on_import="import time; time.sleep(600)")
    with start_probe(str(python), timeout=60, env=clean_env()) as handle:
        handle.cancel()
        assert handle.done()
    handle.close()  # closing twice is harmless


def test_probe_missing_python(tmp_path: Path) -> None:
    result = probe(str(tmp_path / "no-such-venv" / "bin" / "python"), timeout=5)
    assert result.verdict.startswith("target Python not found or not runnable: ")
    assert result.ok is False
    assert result.error is not None and "FileNotFoundError" in result.error


def test_probe_result_defaults() -> None:
    assert ProbeResult().to_dict()["devices"] == []


# --- optional: the real CPU wheel -------------------------------------------------------------------------------


def _find_links() -> list[Path]:
    # Where pip is configured to find wheels; never a hard-coded folder.
    raw = os.environ.get("PIP_FIND_LINKS", "")
    if not raw:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
        )
        raw = " ".join(m.group(1) for m in re.finditer(r"find-links='([^']*)'", done.stdout))
    return [Path(p.removeprefix("file://")) for p in raw.split() if p and "://" not in p.removeprefix("file://")]


def _cpu_torch_wheel() -> Path | None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in _find_links():
        if folder.is_dir():
            wheels = sorted(folder.glob(f"torch-*+cpu-{tag}-*.whl"))
            if wheels:
                return wheels[-1]
    return None


@pytest.mark.slow  # installs a ~200 MB wheel
def test_probe_real_cpu_torch(tmp_path: Path, uv_new: str, uv_env: dict[str, str]) -> None:
    wheel = _cpu_torch_wheel()
    if wheel is None:
        pytest.skip("no torch-*+cpu wheel for this Python in pip's find-links")
    python, site = make_venv(tmp_path / "venv")
    # uv, not pip: the test environment is a venv uv made, without pip
    run_uv(uv_new, "pip", "install", "--python", python, "--no-deps", "--offline", wheel, env=uv_env, timeout=600)
    version = wheel.name.split("-")[1]

    # Without its dependencies a real torch fails to import: the verdict names the missing module.
    result = probe(str(python), selected_extras=["cu128"], timeout=120, env=clean_env())
    assert result.verdict == "import torch failed: ModuleNotFoundError: No module named 'typing_extensions'"

    # typing_extensions is all `import torch` needs; copy the test runner's rather than reach an index.
    import typing_extensions

    (site / "typing_extensions.py").write_bytes(Path(typing_extensions.__file__).read_bytes())
    result = probe(str(python), selected_extras=["cu128"], timeout=120, env=clean_env())
    assert result.verdict == f"not available: CPU build of torch installed ({version}) while extra cu128 is selected"
    assert (result.torch_version, result.cuda_version, result.hip_version) == (version, None, None)
    assert result.cuda_available is False
    assert probe(str(python), selected_extras=["cpu"], timeout=120, env=clean_env()).verdict == (
        f"CPU build of torch ({version}); CUDA not expected"
    )


# --- companions after torch answered: installed as wheels by the real uv, probed through the CLI ------------------

_H100_TORCH = {
    "torch/__init__.py": "__version__ = '2.9.0+cu128'\nfrom . import version, cuda\n",
    "torch/version.py": "cuda = '12.8'\nhip = None\n",
    "torch/cuda/__init__.py": textwrap.dedent(
        """\
        def is_available():
            return True

        def device_count():
            return 1

        def get_device_name(i):
            return 'NVIDIA H100 80GB HBM3'

        def get_device_capability(i):
            return (9, 0)
        """
    ),
}
H100_VERDICT = "CUDA available: 1× NVIDIA H100 80GB HBM3 (sm_90), driver 580.95.05"


def torchaudio_files(extension_loads: bool) -> dict[str, str]:
    """A stand-in torchaudio 2.9.0+cu128 shaped like the real one: ``torchaudio._extension`` says whether its
    compiled part (libtorchaudio) loaded in ``_IS_TORCHAUDIO_EXT_AVAILABLE`` instead of raising."""
    return {
        "torchaudio/__init__.py": "import torch\nfrom torchaudio import _extension\n"
        "from torchaudio.version import __version__\n",
        "torchaudio/version.py": "__version__ = '2.9.0+cu128'\n",
        "torchaudio/_extension/__init__.py": f"_IS_TORCHAUDIO_EXT_AVAILABLE = {extension_loads!r}\n",
    }


def install_stack(
    tmp_path: Path, uv: str, env: dict[str, str], companions: dict[str, tuple[str, dict[str, str]]]
) -> Path:
    """A venv made by the real uv holding the stand-in torch and ``companions`` ({name: (version, files)}, each
    pinning ``torch==2.9.0``), built as wheels and installed with ``uv pip install``; returns its python."""
    from support.localindex import build_wheel

    wheels = [build_wheel(tmp_path / "wheels", "torch", "2.9.0+cu128", _H100_TORCH)]
    wheels += [
        build_wheel(tmp_path / "wheels", name, version, files, ("torch==2.9.0",))
        for name, (version, files) in companions.items()
    ]
    venv = tmp_path / "stack-venv"
    run_uv(uv, "venv", "--quiet", "--python", sys.executable, venv, env=env)
    run_uv(
        uv,
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--python",
        venv / "bin" / "python",
        *wheels,
        env=env,
    )
    return venv / "bin" / "python"


def probe_cli(python: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), **env, "UV_CUDA_DRIVER_VERSION": "580.95.05"}
    return run_cli("probe", "--python", python, *args, env=env, timeout=120, cwd=python.parents[2])


def cli_rows(text: str, key: str) -> list[str]:
    return [line.split("  ", 1)[1].strip() for line in text.splitlines() if line.startswith(key + " ")]


def test_probe_companions_torchaudio_extension_missing_and_a_crashing_import(
    tmp_path: Path, uv_new: str, uv_env: dict[str, str]
) -> None:
    python = install_stack(
        tmp_path,
        uv_new,
        uv_env,
        {
            "torchaudio": ("2.9.0+cu128", torchaudio_files(extension_loads=False)),
            "xtorch-crash": ("1.0", {"xtorch_crash/__init__.py": "import os\nos.abort()\n"}),  # after torchaudio
        },
    )
    proc = probe_cli(python, uv_env)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert cli_rows(out, "CUDA") == [H100_VERDICT], out  # torch's answer, kept: the crash came after it
    assert cli_rows(out, "stack") == [
        "FAILS: torchaudio 2.9.0+cu128: `ImportError: torchaudio's extension (libtorchaudio) did not load`",
        "FAILS: xtorch-crash 1.0: `import xtorch_crash crashed (signal SIGABRT)`",
    ], out
    assert "Traceback" not in out + proc.stderr
    # their files fit this torch: the next step must not send the user after another build
    [step] = cli_rows(out, "next")
    assert step.startswith("torchaudio, xtorch-crash: the files are built for this torch, yet it failed"), out
    assert "install the build" not in out, out

    report = json.loads(probe_cli(python, uv_env, "--json").stdout)
    assert (report["probe"]["verdict"], report["probe"]["ok"], report["probe"]["error"]) == (H100_VERDICT, True, None)
    assert [(e["package"], e["ok"], e["error"]) for e in report["stack"]] == [
        ("torchaudio", False, "ImportError: torchaudio's extension (libtorchaudio) did not load"),
        ("xtorch-crash", False, "import xtorch_crash crashed (signal SIGABRT)"),
    ]


def test_probe_companion_that_hangs_is_named_and_torch_answer_kept(
    tmp_path: Path, uv_new: str, uv_env: dict[str, str]
) -> None:
    python = install_stack(
        tmp_path,
        uv_new,
        uv_env,
        {
            "torchaudio": ("2.9.0+cu128", torchaudio_files(extension_loads=True)),
            "xtorch-hang": ("1.0", {"xtorch_hang/__init__.py": "import time\ntime.sleep(600)\n"}),
        },
    )
    started = time.monotonic()
    proc = probe_cli(python, {"UVEXTRA_PROBE_TIMEOUT": "3"})
    took = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert 3 <= took < 30, took
    assert cli_rows(out, "CUDA") == [H100_VERDICT], out
    assert cli_rows(out, "stack") == [
        "ok: torchaudio 2.9.0+cu128: a CUDA 12.8 build (+cu128), fits torch 2.9.0+cu128; its extension loaded",
        "FAILS: xtorch-hang 1.0: `import xtorch_hang did not finish within 3 s (probe killed)`",
    ], out
