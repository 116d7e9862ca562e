"""A CPU build served by a flat (find-links) index, switched with every supported uv.

uv <= 0.9.x exports ``hashes = {}`` in ``pylock.toml`` for a wheel from a flat-folder index (uv 0.13 exports its
sha256); ``packaging.pylock`` rejects an empty table, and uvextra used to exit 2 after ``uv sync`` had already changed
the venv. The export read now takes the wheel's identity from ``uv.lock`` where uv recorded a hash there, else from
the wheel file when it lies on this machine (what newer uv exports), and a build with no hash anywhere is read all
the same; the build check says where that leaves it unverifiable. End to end with uv 0.9.4 and the newest uv, with
the flat index as a folder and as an HTTP page, and with ``FORCE_COLOR=1 CLICOLOR_FORCE=1`` as ipykernel sets them.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from support.cli import run_json
from support.venvs import dist_infos
from uvextra.core.drift import classify
from uvextra.core.environment import Environment
from uvextra.core.installed import read_dist_info
from uvextra.core.lock import LockInfo, wanted_from_pylock
from uvextra.core.project import Project
from uvextra.core.state import Provenance

# As ipykernel sets them in every kernel; uvextra must not let them colour what it reports.
COLOUR = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}


def errors(report: dict) -> dict[str, str]:
    return {d["package"]: d["kind"] for d in report["drift"] if d["kind"] != "extraneous"}


# (uv, flat index given as, FORCE_COLOR set, uv.lock written by): uv.lock by the same uv is what a user of that uv
# has; a lock by the newest uv switched with the old one is a team where one machine still has it.
CASES = [
    ("old", "path", False, "self"),
    ("old", "path", True, "new"),
    ("old", "url", False, "self"),
    ("new", "path", False, "self"),
    ("new", "path", True, "self"),
    ("new", "url", False, "self"),
]


@pytest.mark.parametrize(
    ("which", "flat_by", "colour", "locked_by"),
    CASES,
    ids=[f"{w}-uv-{f}-{'FORCE_COLOR' if c else 'plain'}-locked-by-{lb}" for w, f, c, lb in CASES],
)
def test_switch_to_a_flat_index_extra(
    make_project,
    make_venv,
    index_server,
    tmp_path: Path,
    uv_env,
    uv_new,
    request: pytest.FixtureRequest,
    which: str,
    flat_by: str,
    colour: bool,
    locked_by: str,
) -> None:
    old = which == "old"
    which_uv = request.getfixturevalue("uv_old") if old else uv_new
    cpu = index_server.flat_path("cpu") if flat_by == "path" else "cpu"
    # uvextra's switch locks when there is no uv.lock (with the uv it runs)
    project = make_project({"cpu": cpu, "pypi": "pypi"}, flat={"cpu"}, lock=(locked_by == "new" or not old))
    venv = make_venv(tmp_path / "venv")
    env = {k: v for k, v in uv_env.items() if k not in COLOUR}  # "plain": as a terminal or a script runs it
    env.update(UVEXTRA_UV=which_uv, **(COLOUR if colour else {}))
    python = str(venv / "bin" / "python")
    where = ("--project", str(project), "--python", python)

    outputs: list[str] = []

    def run(*args: str) -> tuple[int, dict]:
        code, report, err = run_json(*args, *where, env=env)
        outputs.append(json.dumps(report))
        assert report["uv"]["version"] == ("0.9.4" if old else report["uv"]["version"])
        return code, report

    code, report = run("switch", "cpu")
    assert code == 0, report
    assert (errors(report), report["unverified"], report["failure"]) == ({}, [], None)
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]

    # To PyPI's build: uv 0.9.4 keeps 2.9.0+cpu (uv#16368) — named, and repaired with --repair.
    code, report = run("switch", "pypi", "--repair")
    assert code == 0, report
    assert report["repaired"] == (["torch"] if old else [])
    assert dist_infos(venv, "torch") == ["torch-2.9.0.dist-info"]
    assert (errors(report), report["unverified"]) == ({}, [])

    code, report = run("switch", "cpu")
    assert code == 0, report
    assert (errors(report), report["unverified"]) == ({}, [])
    assert dist_infos(venv, "torch") == ["torch-2.9.0+cpu.dist-info"]

    code, report = run("check")
    assert (code, errors(report), report["unverified"], report["extras"]) == (0, {}, [], ["cpu"]), report
    # the wheel's identity is known even where uv 0.9.4 exported none: uvextra recorded its sha256
    state = json.loads((venv / ".uvextra" / "state.json").read_text())
    assert len(state["packages"]["torch"]["sha256"] or "") == 64, state["packages"]["torch"]
    assert not any("\x1b" in o or "\\u001b" in o for o in outputs), "ANSI escapes in uvextra's JSON"


# --- the export read on its own (no uv; milliseconds) -----------------------------------------------------------

REMOTE = "http://127.0.0.1:1/flat/"


def _pylock(*packages: str) -> str:
    return 'lock-version = "1.0"\ncreated-by = "uv"\nrequires-python = ">=3.10"\n\n' + "\n".join(packages)


def _package(name: str, version: str, url: str, hashes: str = "{}", index: str = REMOTE) -> str:
    return (
        f'[[packages]]\nname = "{name}"\nversion = "{version}"\nindex = "{index}"\n'
        f'wheels = [{{ url = "{url}", hashes = {hashes} }}]\n'
    )


def _where(tmp_path: Path) -> tuple[Project, Environment]:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    # The interpreter that runs the tests, but the state (uvextra's caches) in a folder of the test's own.
    return (
        Project(root=root, name="moo", extras=("cpu",), conflict_sets=()),
        Environment(prefix=tmp_path / "venv", python=Path(sys.executable)),
    )


def _uv_lock(project: Project, *entries: tuple[str, str, str, str]) -> None:
    text = ["version = 1", "revision = 3", 'requires-python = ">=3.10"', ""]
    for name, version, registry, wheel in entries:
        text += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "{version}"',
            f'source = {{ registry = "{registry}" }}',
            f"wheels = [{wheel}]",
            "",
        ]
    project.lockfile.write_text("\n".join(text), encoding="utf-8")


def test_empty_hashes_of_a_local_wheel_are_its_files_sha256(tmp_path: Path) -> None:
    project, env = _where(tmp_path)
    wheel = tmp_path / "flat" / "torch-2.9.0+cpu-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"not really a wheel")
    _uv_lock(project, ("torch", "2.9.0+cpu", "../flat", '{ path = "torch-2.9.0+cpu-py3-none-any.whl" }'))
    text = _pylock(_package("torch", "2.9.0+cpu", wheel.as_uri(), index=wheel.parent.as_uri()))
    [torch] = wanted_from_pylock(text, project, env).values()
    assert torch.wheel_hash == hashlib.sha256(b"not really a wheel").hexdigest()
    assert (torch.version, torch.kind, torch.no_hash) == ("2.9.0+cpu", "index", None)


def test_empty_hashes_are_filled_from_uv_lock(tmp_path: Path) -> None:
    project, env = _where(tmp_path)
    sha = "ab" * 32
    other = "http://127.0.0.1:1/other/"
    _uv_lock(
        project,
        (
            "torch",
            "2.9.0+cpu",
            REMOTE,
            f'{{ url = "{REMOTE}torch-2.9.0%2Bcpu-py3-none-any.whl", hash = "sha256:{sha}" }}',
        ),
        (
            "torch",
            "2.9.0+cpu",
            other,
            f'{{ url = "{other}torch-2.9.0%2Bcpu-py3-none-any.whl", hash = "sha256:{"cd" * 32}" }}',
        ),
    )
    text = _pylock(
        _package("torch", "2.9.0+cpu", f"{REMOTE}torch-2.9.0%2Bcpu-py3-none-any.whl"),
        _package(
            "filelock", "3.20.0", f"{REMOTE}filelock-3.20.0-py3-none-any.whl", hashes=f'{{ sha256 = "{"ef" * 32}" }}'
        ),
    )
    wanted = wanted_from_pylock(text, project, env)
    assert wanted["torch"].wheel_hash == sha  # the entry of the export's own index, not the other one
    assert wanted["torch"].no_hash is None
    assert wanted["filelock"].wheel_hash == "ef" * 32
    # uv.lock changes (here: the hash) and the export text does not: the read follows uv.lock, not a stale copy
    _uv_lock(
        project,
        (
            "torch",
            "2.9.0+cpu",
            REMOTE,
            f'{{ url = "{REMOTE}torch-2.9.0%2Bcpu-py3-none-any.whl", hash = "sha256:{"12" * 32}" }}',
        ),
    )
    assert wanted_from_pylock(text, project, env)["torch"].wheel_hash == "12" * 32


def test_no_hash_anywhere_reads_and_says_the_build_cannot_be_verified(tmp_path: Path) -> None:
    project, env = _where(tmp_path)
    _uv_lock(project, ("torch", "2.9.0+cpu", REMOTE, f'{{ url = "{REMOTE}torch-2.9.0%2Bcpu-py3-none-any.whl" }}'))
    sdist = (
        '[[packages]]\nname = "moo-helper"\nversion = "1.0"\nindex = "http://127.0.0.1:1/flat/"\n'
        'sdist = { url = "http://127.0.0.1:1/flat/moo_helper-1.0.tar.gz", hashes = {} }\n'
    )
    text = _pylock(_package("torch", "2.9.0+cpu", f"{REMOTE}torch-2.9.0%2Bcpu-py3-none-any.whl"), sdist)
    wanted = wanted_from_pylock(text, project, env)
    torch = wanted["torch"]
    assert torch.wheel_hash is None
    assert torch.no_hash is not None and "torch-2.9.0+cpu-py3-none-any.whl" in torch.no_hash
    assert "flat index" in torch.no_hash
    assert wanted["moo-helper"].no_hash is not None
    assert "sha256" not in json.dumps(torch.to_dict()).replace('"sha256": null', "")

    site = tmp_path / "site"
    info = site / "torch-2.9.0+cpu.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.9.0+cpu\n\n")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "RECORD").write_text("torch/__init__.py,,\n")
    installed = {"torch": read_dist_info(info)}
    # just installed by uv from this lock: clean
    assert classify({"torch": torch}, installed, fresh={"torch"}) == ([], [])
    # recorded with the same index and no hash (a switch with this uv): clean
    record = Provenance("2.9.0+cpu", "index", REMOTE, torch.wheel, None, installed["torch"].fingerprint)
    assert classify({"torch": torch}, installed, records={"torch": record}) == ([], [])
    # recorded with a hash (a switch with a newer uv), the lock no longer names one: unverified, and why
    record = Provenance("2.9.0+cpu", "index", REMOTE, torch.wheel, "ab" * 32, installed["torch"].fingerprint)
    drift, unverified = classify({"torch": torch}, installed, records={"torch": record})
    assert drift == []
    [u] = unverified
    assert (u.package, u.version) == ("torch", "2.9.0+cpu")
    assert "nor uv.lock has a hash" in u.reason and "cannot verify" in u.reason
    # the same version locked from two indexes, no record: unverified, naming the missing hash too
    lock = LockInfo(
        sources={("torch", "2.9.0+cpu"): [f"registry:{REMOTE.rstrip('/')}", "registry:http://x"]}, dependencies={}
    )
    _, [u] = classify({"torch": torch}, installed, lock=lock)
    assert "more than one index" in u.reason and "nor uv.lock has a hash" in u.reason
