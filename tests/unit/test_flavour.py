"""What a torch build is for, decided in one place: names and local tags, and what torch itself answers."""

from __future__ import annotations

import pytest

from uvextra.core.flavour import Flavour, flavour_of_name, flavour_of_tag, flavour_of_torch, local_tag
from uvextra.core.probe_verdict import ProbeResult
from uvextra.core.report import Report
from uvextra.kernel.record import make_record


@pytest.mark.parametrize(
    ("name", "kind", "version"),
    [
        ("cpu", "cpu", None),
        ("CPU", "cpu", None),
        ("cpu.cxx11.abi", "cpu", None),
        ("cu92", "cuda", "9.2"),
        ("cu118", "cuda", "11.8"),
        ("cu130", "cuda", "13.0"),
        ("rocm6.3", "rocm", "6.3"),
        ("rocm6.2.4", "rocm", "6.2.4"),
        ("xpu", "xpu", None),
    ],
)
def test_a_name_says_its_flavour(name: str, kind: str, version: str | None) -> None:
    found = flavour_of_name(name)
    assert found is not None and (found.kind, found.version) == (kind, version)


@pytest.mark.parametrize("name", ["pypi", "cuda", "cu1280", "cu1", "gpu", "", None])
def test_other_names_say_nothing(name: str | None) -> None:
    assert flavour_of_name(name) is None


def test_a_local_tag_is_kept_in_the_flavour_and_its_label() -> None:
    assert flavour_of_tag("cu128") == Flavour("cuda", "12.8", "cu128")
    assert [flavour_of_tag(t).label for t in ("cpu", "cu130", "rocm6.3")] == [  # type: ignore[union-attr]
        "CPU (+cpu)",
        "CUDA 13.0 (+cu130)",
        "ROCm 6.3 (+rocm6.3)",
    ]
    assert (local_tag("2.9.0+cu128"), local_tag("2.9.0"), local_tag("not a version"), local_tag(None)) == (
        "cu128",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("torch", "cuda", "hip", "kind", "name"),
    [
        ("2.9.0+cu128", "12.8", None, "cuda", "cu128"),
        ("2.9.0", "12.8", None, "cuda", "cu128"),  # PyPI's CUDA torch: no local tag, the build says it
        ("2.9.0", "13.0.1", None, "cuda", "cu130"),
        ("2.9.0+rocm6.3", None, "6.3.42131-fa1d09cbd", "rocm", "rocm6.3"),
        ("2.9.0", None, "6.3.42131-fa1d09cbd", "rocm", "rocm6.3"),
        ("2.9.0+xpu", None, None, "xpu", "xpu"),
        ("2.9.0+cpu", None, None, "cpu", "cpu"),
        ("2.9.0", None, None, "cpu", "cpu"),
        ("2.9.0+internal", None, None, "cpu", "internal"),  # a tag of someone's own build is its name
    ],
)
def test_what_torch_answers_says_its_flavour(
    torch: str, cuda: str | None, hip: str | None, kind: str, name: str
) -> None:
    found = flavour_of_torch(torch, cuda, hip)
    assert found is not None and (found.kind, found.name) == (kind, name)
    assert flavour_of_torch(None, cuda, hip) is None


def test_the_notebook_record_names_the_build_the_probe_saw() -> None:
    probe = ProbeResult(torch_version="2.9.0", cuda_version="12.8", cuda_available=False, verdict="…")
    record = make_record(Report("status", probe=probe))
    assert record["torch"] == {"version": "2.9.0", "build": "cu128"}
    assert make_record(Report("status", probe=ProbeResult(verdict="torch is not installed")))["torch"] is None
