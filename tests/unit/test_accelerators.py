"""Driver table, extra names, backend choice and driver detection on fabricated /sys and /proc trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from packaging.version import Version

from uvextra.core.accelerators import (
    CUDA_DRIVER_TABLE,
    Accel,
    choose_extra,
    detect_rocm,
    max_cuda_for_driver,
    min_driver_for_cuda,
    parse_extra,
    read_driver_version,
    toolkit_driver_for_cuda,
)

PROC_580 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Release Build  (dvs-builder@U16-A24-23-2)"
    "  Tue Sep 23 09:52:25 UTC 2025\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)
PROC_OPEN_550 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.144.03  Release Build  "
    "(dvs-builder@U16-I3-D08-1-2)  Mon Dec 30 17:26:13 UTC 2024\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)


# --- the table -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cuda", "driver"),
    [
        ("13.0", "580"),
        ("cu130", "580"),
        ("12.9", "525.60.13"),
        ("12.8", "525.60.13"),
        ("cu128", "525.60.13"),
        ("12.8.1", "525.60.13"),
        ("12.0", "525.60.13"),
        ("11.8", "450.80.02"),
        ("cu111", "450.80.02"),
        ("11.0", "450.36.06"),
        ("10.2", "440.33"),
        ("cu92", "396.26"),
        ("8.0", "375.26"),
        # Unlisted minors inherit the major's minor-version-compatibility minimum.
        ("12.7", "525.60.13"),
        ("13.1", "580"),
    ],
)
def test_min_driver_for_cuda(cuda: str, driver: str) -> None:
    assert min_driver_for_cuda(cuda) == driver


@pytest.mark.parametrize("cuda", ["7.5", "14.0", "cu75"])
def test_min_driver_for_unknown_cuda_is_none(cuda: str) -> None:
    assert min_driver_for_cuda(cuda) is None


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("580.95.05", "13.2"),
        ("580", "13.2"),
        ("575.57.08", "12.9"),
        ("525.60.13", "12.9"),
        ("525.60.12", "11.8"),
        ("515.65", "11.8"),
        ("450.80.02", "11.8"),
        ("450.51.06", "11.0"),
        ("440.33.01", "10.2"),
        ("375.26", "8.0"),
        ("300.1", None),
    ],
)
def test_max_cuda_for_driver(driver: str, cuda: str | None) -> None:
    assert max_cuda_for_driver(driver) == cuda


def test_max_cuda_rejects_non_version() -> None:
    with pytest.raises(ValueError):
        max_cuda_for_driver("not-a-driver")


def test_table_is_newest_first_and_compat_never_above_toolkit() -> None:
    versions = [Version(c) for c, _, _ in CUDA_DRIVER_TABLE]
    assert versions == sorted(versions, reverse=True)
    for _cuda, compat, toolkit in CUDA_DRIVER_TABLE:
        if toolkit is not None:
            assert Version(compat) <= Version(toolkit)
    # The 12.8 toolkit ships 570.26, but minor-version compatibility (what uv uses) needs only 525.60.13.
    assert toolkit_driver_for_cuda("12.8") == "570.26"
    assert toolkit_driver_for_cuda("13.1") is None


# --- extra names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu", Accel("cpu", "cpu")),
        ("CPU", Accel("CPU", "cpu")),
        ("cu118", Accel("cu118", "cuda", "11.8")),
        ("cu128", Accel("cu128", "cuda", "12.8")),
        ("cu130", Accel("cu130", "cuda", "13.0")),
        ("cu92", Accel("cu92", "cuda", "9.2")),
        ("rocm6.3", Accel("rocm6.3", "rocm", "6.3")),
        ("rocm6.2.4", Accel("rocm6.2.4", "rocm", "6.2.4")),
        ("xpu", Accel("xpu", "xpu")),
        ("pypi", Accel("pypi", "unknown")),
        ("cuda", Accel("cuda", "unknown")),
        ("cu1280", Accel("cu1280", "unknown")),
        ("gpu", Accel("gpu", "unknown")),
    ],
)
def test_parse_extra(name: str, expected: Accel) -> None:
    assert parse_extra(name) == expected


def test_is_gpu() -> None:
    assert [parse_extra(n).is_gpu for n in ("cpu", "cu128", "rocm6.3", "xpu", "pypi")] == [
        False,
        True,
        True,
        True,
        False,
    ]


# --- choosing an extra -----------------------------------------------------------------------------------------

EXTRAS = ["cpu", "cu118", "cu126", "cu128", "cu130", "pypi"]


def test_choose_without_driver_is_cpu() -> None:
    extra, reason = choose_extra(EXTRAS, None)
    assert extra == "cpu"
    assert reason == (
        "cpu: no NVIDIA driver found (checked /sys/module/nvidia/version, /proc/driver/nvidia/version, nvidia-smi)"
    )


def test_choose_580_takes_highest_cuda() -> None:
    assert choose_extra(EXTRAS, "580.95.05") == (
        "cu130",
        "cu130: NVIDIA driver 580.95.05 supports CUDA ≤ 13.2; highest CUDA extra it can run",
    )
    extra, reason = choose_extra(["cpu", "cu126", "cu128", "pypi"], "580.95")
    assert extra == "cu128"
    assert reason.startswith("cu128: NVIDIA driver 580.95 supports CUDA ≤ ")


def test_choose_570_cannot_run_cu130() -> None:
    extra, reason = choose_extra(EXTRAS, "570.86.15")
    assert extra == "cu128"
    assert "supports CUDA ≤ 12.9" in reason


def test_choose_515_takes_cu117_when_present() -> None:
    extra, reason = choose_extra(["cpu", "cu117", "cu128"], "515.65")
    assert extra == "cu117"
    assert reason == "cu117: NVIDIA driver 515.65 supports CUDA ≤ 11.8; highest CUDA extra it can run"


def test_choose_515_falls_back_to_cpu_with_reason() -> None:
    extra, reason = choose_extra(["cpu", "cu128", "cu130"], "515.65")
    assert extra == "cpu"
    assert reason == (
        "cpu: NVIDIA driver 515.65 supports CUDA ≤ 11.8, below every CUDA extra (cu128 needs ≥ 525.60.13)"
    )


def test_choose_driver_but_no_cuda_extra() -> None:
    extra, reason = choose_extra(["cpu", "rocm6.3"], "580.95")
    assert extra == "cpu"
    assert "no CUDA extra" in reason


def test_choose_rocm() -> None:
    assert choose_extra(["cpu", "cu128", "rocm6.2", "rocm6.3"], None, rocm=True)[0] == "rocm6.3"
    # An NVIDIA driver wins over ROCm, as in uv.
    assert choose_extra(["cpu", "cu128", "rocm6.3"], "580.95", rocm=True)[0] == "cu128"
    extra, reason = choose_extra(["cpu", "cu128"], None, rocm=True)
    assert extra == "cpu"
    assert "no rocmX.Y extra" in reason


def test_choose_without_cpu_extra_says_cpu_only() -> None:
    extra, reason = choose_extra(["cu128", "cu130", "pypi"], None)
    assert extra == "cu128"
    assert reason.endswith("no cpu extra, so torch will run on the CPU only")


def test_choose_unclassifiable_raises() -> None:
    with pytest.raises(ValueError, match="none of the extras pypi, default names a torch backend"):
        choose_extra(["pypi", "default"], "580.95")
    with pytest.raises(ValueError, match=r"\(none\)"):
        choose_extra([], None)


# --- reading the driver ----------------------------------------------------------------------------------------


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_read_driver_nothing(tmp_path: Path) -> None:
    version, source = read_driver_version(tmp_path, env={}, nvidia_smi=None)
    assert version is None
    assert source == "not found (checked /sys/module/nvidia/version, /proc/driver/nvidia/version, nvidia-smi)"


def test_read_driver_sys_module(tmp_path: Path) -> None:
    _write(tmp_path, "sys/module/nvidia/version", "580.95.05\n")
    _write(tmp_path, "proc/driver/nvidia/version", PROC_OPEN_550)
    assert read_driver_version(tmp_path, env={}, nvidia_smi=None) == ("580.95.05", "/sys/module/nvidia/version")


@pytest.mark.parametrize(("content", "version"), [(PROC_580, "580.95.05"), (PROC_OPEN_550, "550.144.03")])
def test_read_driver_proc(tmp_path: Path, content: str, version: str) -> None:
    _write(tmp_path, "proc/driver/nvidia/version", content)
    assert read_driver_version(tmp_path, env={}, nvidia_smi=None) == (version, "/proc/driver/nvidia/version")


def test_read_driver_garbage_sys_falls_through_to_proc(tmp_path: Path) -> None:
    _write(tmp_path, "sys/module/nvidia/version", "\n")
    _write(tmp_path, "proc/driver/nvidia/version", PROC_580)
    assert read_driver_version(tmp_path, env={}, nvidia_smi=None)[0] == "580.95.05"


def test_env_override_wins(tmp_path: Path) -> None:
    _write(tmp_path, "sys/module/nvidia/version", "580.95.05\n")
    env = {"UV_CUDA_DRIVER_VERSION": "515.65.01"}
    assert read_driver_version(tmp_path, env=env, nvidia_smi=None) == ("515.65.01", "UV_CUDA_DRIVER_VERSION")


def test_env_override_from_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CUDA_DRIVER_VERSION", "570.86.15")
    assert read_driver_version(tmp_path, nvidia_smi=None) == ("570.86.15", "UV_CUDA_DRIVER_VERSION")


def test_env_override_invalid_is_reported(tmp_path: Path) -> None:
    version, source = read_driver_version(tmp_path, env={"UV_CUDA_DRIVER_VERSION": "latest"}, nvidia_smi=None)
    assert version is None
    assert source == "UV_CUDA_DRIVER_VERSION='latest' is not a driver version"


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_read_driver_nvidia_smi(tmp_path: Path) -> None:
    # A real executable standing in for nvidia-smi: it must get the uv query and answer one line per GPU.
    smi = _script(
        tmp_path / "bin",
        "nvidia-smi",
        '[ "$1 $2" = "--query-gpu=driver_version --format=csv,noheader" ] || exit 9\necho 580.95.05\necho 580.95.05\n',
    )
    assert read_driver_version(tmp_path, env={}, nvidia_smi=str(smi)) == ("580.95.05", "nvidia-smi")


def test_read_driver_nvidia_smi_failing_or_missing(tmp_path: Path) -> None:
    smi = _script(tmp_path / "bin", "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert read_driver_version(tmp_path, env={}, nvidia_smi=str(smi))[0] is None
    assert read_driver_version(tmp_path, env={}, nvidia_smi=str(tmp_path / "absent"))[0] is None


def test_detect_rocm(tmp_path: Path) -> None:
    gpu = tmp_path / "gpu"
    _script(gpu, "rocm_agent_enumerator", "echo gfx000\necho gfx90a\n")
    cpu_only = tmp_path / "cpu"
    _script(cpu_only, "rocm_agent_enumerator", "echo gfx000\n")
    broken = tmp_path / "broken"
    _script(broken, "rocm_agent_enumerator", "echo gfx942\nexit 1\n")
    assert detect_rocm(str(gpu)) is True
    assert detect_rocm(str(cpu_only)) is False
    assert detect_rocm(str(broken)) is False
    assert detect_rocm(str(tmp_path / "empty")) is False
    assert detect_rocm(os.pathsep.join([str(tmp_path / "empty"), str(gpu)])) is True
