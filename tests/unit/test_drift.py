"""The drift classifier on fabricated dist-info folders and lock entries (no uv, milliseconds)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from uvextra.core.drift import classify
from uvextra.core.installed import read_dist_info
from uvextra.core.lock import LockInfo, Wanted
from uvextra.core.state import Provenance

PYPI = "http://127.0.0.1:1/pypi/simple"
MIRROR = "http://127.0.0.1:1/mirror/simple"


def dist_info(
    site: Path, name: str, version: str, *, requires=(), tag="py3-none-any", direct_url=None, installer="uv", files="a"
) -> Path:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    (folder / "METADATA").write_text("\n".join(meta) + "\n\n")
    (folder / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
    (folder / "INSTALLER").write_text(installer + "\n")
    (folder / "RECORD").write_text(f"{name}/__init__.py,sha256={hashlib.sha256(files.encode()).hexdigest()},1\n")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))
    return folder


def inst(site: Path, *args, **kw):
    return read_dist_info(dist_info(site, *args, **kw))


def want(
    name="torch", version="2.9.0", index=PYPI, wheel_hash="aa", tags=("py3-none-any",), kind="index", location=None
):
    return Wanted(
        name,
        version,
        kind,
        index=index if kind == "index" else None,
        location=location,
        wheel=f"{name}-{version}-py3-none-any.whl",
        wheel_hash=wheel_hash,
        wheel_tags=tags,
    )


def kinds(drift):
    return [(d.package, d.kind) for d in drift]


def test_local_version_is_caught_even_though_pep440_equal_matches(tmp_path):
    installed = {"torch": inst(tmp_path, "torch", "2.9.0+cpu")}
    drift, _ = classify({"torch": want()}, installed)
    assert kinds(drift) == [("torch", "local-version")]
    assert drift[0].installed == "2.9.0+cpu" and drift[0].wanted == "2.9.0"
    assert "uv#16368" in drift[0].detail


def test_other_public_version_and_missing(tmp_path):
    drift, _ = classify(
        {"torch": want(version="2.9.0"), "numpy": want("numpy", "2.3.4")}, {"torch": inst(tmp_path, "torch", "2.8.0")}
    )
    assert kinds(drift) == [("numpy", "missing"), ("torch", "version")]


def test_equal_versions_spelled_differently_are_not_drift(tmp_path):
    drift, unverified = classify({"torch": want(version="2.9")}, {"torch": inst(tmp_path, "torch", "2.9.0")})
    assert (drift, unverified) == ([], [])


def test_build_drift_from_the_provenance_record(tmp_path):
    torch = inst(tmp_path, "torch", "2.9.0")
    record = Provenance("2.9.0", "index", PYPI, "torch-2.9.0-py3-none-any.whl", "aa", torch.fingerprint)
    drift, _ = classify({"torch": want(index=MIRROR, wheel_hash="bb")}, {"torch": torch}, records={"torch": record})
    assert kinds(drift) == [("torch", "build")]
    assert PYPI in drift[0].detail and MIRROR in drift[0].detail
    # the record matching the lock entry: clean, and verified
    drift, unverified = classify({"torch": want()}, {"torch": torch}, records={"torch": record})
    assert (drift, unverified) == ([], [])


def test_build_drift_from_dependency_evidence_without_a_record(tmp_path):
    torch = inst(
        tmp_path,
        "torch",
        "2.9.0",
        requires=["nvidia-cublas-cu12==12.8.4.1; platform_system == 'Linux'", "filelock", "sympy; extra == 'opt'"],
    )
    lock = LockInfo(
        sources={("torch", "2.9.0"): [f"registry:{MIRROR}"]},
        dependencies={("torch", "2.9.0", f"registry:{MIRROR}"): frozenset({"filelock"})},
    )
    drift, _ = classify({"torch": want(index=MIRROR)}, {"torch": torch}, lock=lock)
    assert kinds(drift) == [("torch", "build")]
    assert "requires nvidia-cublas-cu12" in drift[0].detail
    # the same dependencies (extras ignored): no evidence of another build
    lock_same = LockInfo(
        sources=lock.sources,
        dependencies={("torch", "2.9.0", f"registry:{MIRROR}"): frozenset({"filelock", "nvidia-cublas-cu12"})},
    )
    assert classify({"torch": want(index=MIRROR)}, {"torch": torch}, lock=lock_same) == ([], [])


def test_build_drift_from_wheel_tags(tmp_path):
    torch = inst(tmp_path, "torch", "2.9.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    drift, _ = classify({"torch": want(tags=("cp311-cp311-manylinux_2_28_aarch64",))}, {"torch": torch})
    assert kinds(drift) == [("torch", "build")]
    assert "x86_64" in drift[0].detail


def test_unverified_when_the_lock_has_two_builds_and_no_record(tmp_path):
    torch = inst(tmp_path, "torch", "2.9.0")
    lock = LockInfo(sources={("torch", "2.9.0"): [f"registry:{PYPI}", f"registry:{MIRROR}"]}, dependencies={})
    drift, unverified = classify({"torch": want()}, {"torch": torch}, lock=lock)
    assert drift == []
    assert [(u.package, u.version) for u in unverified] == [("torch", "2.9.0")]
    # …unless uv installed it from the lock in this very run
    assert classify({"torch": want()}, {"torch": torch}, lock=lock, fresh={"torch"}) == ([], [])


def test_files_changed_since_the_record_is_unverified_not_clean(tmp_path):
    torch = inst(tmp_path, "torch", "2.9.0", installer="pip", files="rebuilt")
    record = Provenance("2.9.0", "index", PYPI, "torch-2.9.0-py3-none-any.whl", "aa", "0" * 64)
    drift, unverified = classify({"torch": want()}, {"torch": torch}, records={"torch": record})
    assert drift == []
    assert "installer now: pip" in unverified[0].reason


def test_source_drift_editable_vs_index_and_other_path(tmp_path):
    editable = inst(
        tmp_path / "a", "torch", "2.9.0", direct_url={"url": "file:///src/torch", "dir_info": {"editable": True}}
    )
    assert editable.source == "editable" and editable.location == "/src/torch"
    drift, _ = classify({"torch": want()}, {"torch": editable})
    assert kinds(drift) == [("torch", "source")]
    assert "editable" in drift[0].detail
    # the lock wants an editable project at another path
    drift, _ = classify({"torch": want(kind="editable", location="/work/torch")}, {"torch": editable})
    assert kinds(drift) == [("torch", "source")] and "/work/torch" in drift[0].detail
    assert classify({"torch": want(kind="editable", location="/src/torch")}, {"torch": editable}) == ([], [])
    # an index install where the lock wants a directory
    plain = inst(tmp_path / "b", "torch", "2.9.0")
    drift, _ = classify({"torch": want(kind="directory", location="/src/torch")}, {"torch": plain})
    assert kinds(drift) == [("torch", "source")]


def test_extraneous_is_reported_but_not_an_error_and_protected_is_not_extraneous(tmp_path):
    installed = {
        "torch": inst(tmp_path, "torch", "2.9.0"),
        "six": inst(tmp_path, "six", "1.16.0"),
        "ipykernel": inst(tmp_path, "ipykernel", "7.0.0"),
    }
    drift, _ = classify({"torch": want()}, installed, protected={"ipykernel"})
    assert kinds(drift) == [("six", "extraneous")]
    assert not drift[0].is_error


def test_dist_info_reader_tolerates_half_removed_installs(tmp_path):
    folder = tmp_path / "gone-1.0.dist-info"
    folder.mkdir()
    assert read_dist_info(folder) is None
    (folder / "METADATA").write_text("Name: gone\n\n")  # no version
    assert read_dist_info(folder) is None
    (folder / "METADATA").write_text("Name: Gone_Pkg\nVersion: 1.0\n\n")
    dist = read_dist_info(folder)
    assert (dist.name, dist.version, dist.source, dist.wheel_tags) == ("gone-pkg", "1.0", "index", ())
