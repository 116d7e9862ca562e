"""Issue 16, trust below the metadata: what a killed or disk-full install, a stale lock, a lock that lacks hashes,
an interrupt in the removal phase and a venv whose interpreter is gone look like to the user — and that repair and a
retried switch leave the venv whole.

Faults are made real: files really removed from a real install, ``kill -9`` of the real uv while it copies the real
CPU torch wheel (found through pip's configuration), a real ``tmpfs`` that fills up, a real index server that is
stopped, a real SIGINT. The CLI is the real ``python -m uvextra`` with ``FORCE_COLOR=1`` as ipykernel sets it.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import Setup, error_line, report_of, run_cli
from support.localindex import IndexServer, build_demo_indexes, build_wheel, torch_files, write_project
from support.pip_indexes import cpu_torch_wheel
from support.run import run_uv
from support.venvs import dist_infos, site_packages


def torch_dist_info(venv: Path) -> Path:
    (found,) = site_packages(venv).glob("torch-*.dist-info")
    return found


def imports_torch(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv / "bin" / "python", "-c", "import torch, torch.version; print(torch.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc: no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def drift_of(report: dict, package: str) -> dict:
    found = [d for d in report["drift"] if d["package"] == package]
    assert found, report["drift"]
    return found[0]


# --------------------------------------------------------------------------------------------- files on disk


def test_files_gone_from_an_install_are_drift_and_repair_makes_it_whole(make_project, pyvenv, uv_env, uv_new):
    """Files torch's RECORD lists removed (and INSTALLER, as a killed uv leaves it): check exit 1 naming how many
    files are missing; repair reinstalls exactly torch and says it is whole; check exit 0, `import torch` works."""
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    dist = torch_dist_info(pyvenv)
    listed = [
        row.split(",")[0]
        for row in (dist / "RECORD").read_text().splitlines()
        if row.startswith("torch/") and not row.split(",")[0].endswith(".pyc")
    ]
    for rel in listed[:2]:
        (site_packages(pyvenv) / rel).unlink()
    (dist / "INSTALLER").unlink()
    assert imports_torch(pyvenv).returncode != 0, "the damage is real"

    report = report_of(s.run("check", "--json"))
    assert report["exit_code"] == 1
    torch = drift_of(report, "torch")
    assert torch["kind"] == "files", torch
    assert "2 of " in torch["detail"] and "files missing — an install that did not finish" in torch["detail"]
    text = s.run("check")
    assert text.returncode == 1 and "match the lock" not in text.stdout
    assert "files missing" in text.stdout and "uvextra repair" in text.stdout, text.stdout

    repaired = report_of(s.run("repair", "--json"))
    assert (repaired["exit_code"], repaired["repaired"]) == (0, ["torch"]), repaired
    assert [c["name"] for c in repaired["changes"]["installed"]] == ["torch"], "only torch was reinstalled"
    assert repaired["repaired_notes"] and "files missing" in repaired["repaired_notes"][0]
    assert "every file there now" in repaired["repaired_notes"][0]
    assert imports_torch(pyvenv).returncode == 0
    assert report_of(s.run("check", "--json"))["exit_code"] == 0
    s.assert_nothing_lost()


def test_a_file_of_another_size_is_drift_and_verify_compares_hashes(make_project, pyvenv, uv_env, uv_new):
    """A file overwritten with other content of another size: files drift. Same size, other bytes: only
    `check --verify` (sha256 against RECORD) finds it, and says how many files it read and how long it took."""
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    version_py = site_packages(pyvenv) / "torch" / "version.py"
    original = version_py.read_bytes()

    def overwrite(data: bytes) -> None:  # a new file in its place: uv hard-links from its cache, which must not change
        version_py.with_suffix(".new").write_bytes(data)
        os.replace(version_py.with_suffix(".new"), version_py)

    overwrite(original + b"# appended\n")
    report = report_of(s.run("check", "--json"))
    assert drift_of(report, "torch")["kind"] == "files"
    assert "of another size than RECORD says" in drift_of(report, "torch")["detail"]
    overwrite(original[:-1] + (b"X" if original[-1:] != b"X" else b"Y"))  # same size, other bytes
    assert report_of(s.run("check", "--json"))["exit_code"] == 0, "size matches: only --verify can tell"
    verified = report_of(s.run("check", "--verify", "--json"))
    assert verified["exit_code"] == 1
    assert "with another sha256 than RECORD says" in drift_of(verified, "torch")["detail"]
    assert verified["verified"]["files"] > 3 and verified["verified"]["seconds"] >= 0
    assert "sha256 of" in s.run("check", "--verify").stdout


def test_retried_switch_reinstalls_what_uv_calls_installed(make_project, pyvenv, uv_env, uv_new):
    """uv takes a half-installed package for a whole one ("Checked N packages"): the retried switch finds it and
    reinstalls it, and the report says what was broken."""
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    shutil.rmtree(site_packages(pyvenv) / "torch" / "cuda")
    (torch_dist_info(pyvenv) / "INSTALLER").unlink()
    again = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert again["exit_code"] == 0, again
    assert again["repaired"] == ["torch"] and "files missing" in again["repaired_notes"][0]
    assert imports_torch(pyvenv).returncode == 0
    assert (torch_dist_info(pyvenv) / "INSTALLER").is_file()


# --------------------------------------------------------------------------------------------- the lock


def test_a_stale_lock_is_said_and_never_matches(make_project, pyvenv, uv_env, uv_new):
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    pyproject = s.project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('dependencies = ["numpy"]', 'dependencies = ["numpy", "triton"]')
    )
    for command in ("check", "status"):
        proc = s.run(command, "--json")
        report = report_of(proc)
        assert (proc.returncode, report["failure_kind"]) == (1, "stale-lock"), report
        assert report["failure"].startswith("uv.lock no longer fits pyproject.toml"), report["failure"]
    text = s.run("check")
    assert text.returncode == 1 and "match the lock" not in text.stdout
    assert "uvextra switch cpu" in text.stdout and "uv lock" in text.stdout, text.stdout
    # switch locks again: afterwards check agrees
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    assert report_of(s.run("check", "--json"))["exit_code"] == 0


def test_check_reads_a_lock_without_hashes_with_the_index_stopped(index_root, pyvenv, tmp_path, uv_env, uv_new):
    """uv's pylock export downloads every wheel whose hash uv.lock lacks ("to compute missing hashes"); a check reads
    such a lock with the index stopped and an empty uv cache: exit 0, no drift, nothing downloaded — torch at most
    unverified, saying that the lock has no hash for its wheel."""
    server = IndexServer(index_root).start()
    try:
        project = tmp_path / "proj"
        write_project(
            project,
            {e: server.simple_url(e) for e in ("cpu", "cu128", "pypi")},
            default_index=server.simple_url("pypi"),
        )
        run_uv(uv_new, "lock", env=uv_env, cwd=project)
        s = Setup(project, pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
        assert s.run("switch", "cpu", "--no-probe").returncode == 0
    finally:
        server.stop()
    # the lock as an index that publishes no hashes leaves it: torch's wheels without one (a new lock text: no
    # export of it is kept in the venv)
    lock = project / "uv.lock"
    text = lock.read_text()
    stripped = (
        "\n".join(
            line.split(', hash = "')[0] + " }," if "/torch-" in line and "hash = " in line else line
            for line in text.splitlines()
        )
        + "\n"
    )
    assert stripped != text
    lock.write_text(stripped)
    empty = tmp_path / "empty-cache"
    env = dict(s.env, UV_CACHE_DIR=str(empty))
    offline = subprocess.run(
        [uv_new, "export", "--format", "pylock.toml", "--offline", "--frozen", "--extra", "cpu"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert offline.returncode != 0 and "to compute missing hashes" in offline.stderr, "uv's export needs the network"
    proc = s.run("check", "--json", env=env)
    report = report_of(proc)
    assert (report["exit_code"], report["extras"], report["failure"]) == (0, ["cpu"], None), proc.stderr
    assert [d for d in report["drift"] if d["kind"] != "extraneous"] == [], report["drift"]
    assert all(u["package"] == "torch" and "no hash" in u["reason"] for u in report["unverified"]), report
    assert not list(empty.rglob("*.whl")) and not list(empty.glob("archive-v0/*")), "nothing was downloaded"


# --------------------------------------------------------------------------------------------- interrupts

_SLOW_UNINSTALL = """#!/bin/sh
case " $* " in
  *" pip uninstall "*) touch {armed}; sleep 60 ;;
esac
exec {uv} "$@"
"""


def test_ctrl_c_in_the_removal_phase_is_an_interrupt(make_project, pyvenv, tmp_path, uv_env, uv_new):
    s = Setup(make_project(), pyvenv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert s.run("switch", "cu128", "--no-probe").returncode == 0
    wrapper, armed = tmp_path / "uv-slow-uninstall", tmp_path / "removing"
    wrapper.write_text(_SLOW_UNINSTALL.format(armed=shlex.quote(str(armed)), uv=shlex.quote(uv_new)))
    wrapper.chmod(0o755)
    # started as a script's background job is: SIGINT ignored, inherited (`trap "" INT`) — uvextra answers it anyway
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            'trap "" INT; exec "$0" "$@"',
            sys.executable,
            "-m",
            "uvextra",
            "switch",
            "cpu",
            "--no-probe",
            "--json",
            *s.target(),
        ],
        env=dict(s.env, UVEXTRA_UV=str(wrapper)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not armed.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert armed.exists(), "the removal phase was never reached"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    report = json.loads(out)
    assert (proc.returncode, report["exit_code"], report["failure_kind"]) == (130, 130, "interrupted"), err
    assert report["failure"].startswith("interrupted:"), report["failure"]
    again = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert again["exit_code"] == 0 and not [d for d in dist_infos(pyvenv) if d.startswith("nvidia")], again
    assert report_of(s.run("check", "--json"))["exit_code"] == 0
    assert imports_torch(pyvenv).stdout.strip() == "2.9.0+cpu"


# --------------------------------------------------------------------------------------------- the venv


def test_a_venv_whose_base_interpreter_is_gone_says_so(make_project, tmp_path, uv_env):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    gone = tmp_path / "old-python" / "bin" / "python3.11"
    for link in (venv / "bin").iterdir():
        if link.is_symlink():
            link.unlink()
            link.symlink_to(gone)
    project = make_project()
    for target in (venv, venv / "bin" / "python"):
        line = error_line(run_cli("check", "--project", project, "--python", target, env=uv_env))
        assert f"points to {gone}, which no longer exists" in line, line
        assert "base interpreter was moved or removed" in line and f"uv venv {venv}" in line
        assert "pyvenv.cfg" not in line and "no such interpreter" not in line


# --------------------------------------------------------------------------------------------- a full disk


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {proc.stderr.strip()}")


def _resize(where: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, capture_output=True)


def test_a_full_disk_is_refused_before_and_said_after(tmp_path, uv_env, uv_new):
    """A cu128 torch of 42 MB unpacked, 25 MB free: switch refuses before anything changes; with --no-space-check
    uv hits ENOSPC — "disk full on MOUNT" with uv's words, the half-written torch is drift; once space is freed the
    same switch reinstalls it and `import torch` works."""
    root = tmp_path / "indexes"
    build_demo_indexes(root, kernelish=True)
    big = dict(torch_files("2.9.0+cu128", "12.8", build_label="cu128-big"))
    big["torch/lib/libtorch_cuda.so"] = base64.b64encode(os.urandom(31_500_000)).decode()  # 42 MB of text
    (root / "cu128").joinpath("torch-2.9.0+cu128-py3-none-any.whl").unlink()
    build_wheel(root / "cu128", "torch", "2.9.0+cu128", big, ("filelock",))
    server = IndexServer(root, sizes=True).start()  # uv locks each wheel's size: the space check reads them
    project = tmp_path / "proj"
    write_project(
        project, {e: server.simple_url(e) for e in ("cpu", "cu128", "pypi")}, default_index=server.simple_url("pypi")
    )
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "200m")
    try:
        venv = disk / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        s = Setup(project, venv, dict(uv_env, UVEXTRA_UV=uv_new))
        assert s.run("switch", "cpu", "--no-probe").returncode == 0
        st = os.statvfs(disk)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        _resize(disk, used + 25_000_000)
        state = (venv / ".uvextra" / "state.json").read_bytes()

        refused = s.run("switch", "cu128", "--no-probe")
        line = error_line(refused, 1)
        assert line.startswith("not enough disk space: this needs about") and f"on {disk}" in line, line
        assert "free space there, or point UV_CACHE_DIR" in line and "nothing was changed" in line
        assert s.torch() == ["torch-2.9.0+cpu.dist-info"] and (venv / ".uvextra" / "state.json").read_bytes() == state

        full = report_of(s.run("switch", "cu128", "--no-probe", "--no-space-check", "--json"))
        assert (full["exit_code"], full["failure_kind"]) == (1, "disk-full"), full
        assert full["failure"].startswith(f"disk full on {disk}: uv sync failed"), full["failure"]
        assert "No space left on device" in full["uv_error"]
        assert [d for d in full["drift"] if d["package"] == "torch"], "the half-written torch must not pass"
        assert report_of(s.run("check", "--json"))["exit_code"] == 1

        _resize(disk, 200_000_000)
        again = report_of(s.run("switch", "cu128", "--no-probe", "--json"))
        assert again["exit_code"] == 0, again
        assert imports_torch(venv).stdout.strip() == "2.9.0+cu128"
        assert report_of(s.run("check", "--json"))["exit_code"] == 0
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# --------------------------------------------------------------------------------------------- kill -9, real torch


def test_kill_9_while_uv_copies_the_real_cpu_torch(tmp_path, uv_env, uv_new):
    """`kill -9` of the uv that `uvextra switch cpu` runs, while it copies the real torch-2.13.0+cpu wheel's files:
    the switch says uv was killed; check says how many files are missing (exit 1); the retried switch reinstalls
    torch; `import torch` works and check exits 0."""
    wheel = cpu_torch_wheel()
    if wheel is None:
        pytest.skip("no torch-2.13.0+cpu wheel in pip's find-links folders on this machine")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the real CPU torch wheel on this machine is for Python 3.11")
    import typing_extensions

    from support.real_torch import STAND_INS, TORCH_DEPS, local_indexes_for, persistent_uv_cache, write_real_project

    real = local_indexes_for(*TORCH_DEPS)
    server = IndexServer(tmp_path / "indexes").start()
    if real is None:  # torch's dependencies as stand-ins, on an index of their own
        deps = tmp_path / "indexes" / "deps"
        build_wheel(
            deps,
            "typing-extensions",
            "4.15.0",
            {"typing_extensions.py": Path(typing_extensions.__file__).read_text(encoding="utf-8")},
        )
        for name, v in STAND_INS.items():
            build_wheel(deps, name, v, {f"{name}/__init__.py": f"__version__ = {v!r}\n"})
    project = write_real_project(tmp_path / "proj", cpu=wheel, cuda=None, indexes=real or [server.simple_url("deps")])
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_LINK_MODE="copy", UV_CACHE_DIR=persistent_uv_cache())
    run_uv(uv_new, "lock", env=env, cwd=project, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    s = Setup(project, venv, env)
    sp = site_packages(venv)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvextra", "switch", "cpu", "--no-probe", "--json", *s.target()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        metas = list(sp.glob("torch-*.dist-info/METADATA"))
        if metas and (sp / "torch").is_dir():
            for pid in children(proc.pid):
                os.killpg(int(pid), signal.SIGKILL)  # uv runs in a process group of its own
                killed = True
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=300)
    if not killed or (metas[0].parent / "INSTALLER").exists():
        pytest.skip("uv finished copying torch before the test could kill it (a race this machine lost)")
    report = json.loads(out)
    assert (report["exit_code"], report["failure_kind"]) == (1, "killed"), err
    assert report["failure"].startswith("uv was killed (SIGKILL) — out of memory?"), report["failure"]
    torch = drift_of(report, "torch")
    assert torch["kind"] == "files" and "files missing — an install that did not finish" in torch["detail"]
    assert imports_torch(venv).returncode != 0

    check = report_of(s.run("check", "--json"))
    assert check["exit_code"] == 1 and drift_of(check, "torch")["kind"] == "files"
    again = report_of(s.run("switch", "cpu", "--no-probe", "--json", timeout=600))
    assert again["exit_code"] == 0, again
    assert "torch" in again["repaired"] or any(c["name"] == "torch" for c in again["changes"]["installed"])
    assert imports_torch(venv).stdout.strip() == "2.13.0+cpu"
    assert report_of(s.run("check", "--json"))["exit_code"] == 0
    assert dist_infos(venv, "torch") == ["torch-2.13.0+cpu.dist-info"]
    server.stop()


@pytest.mark.parametrize("shape", ["simple", "flat-folder", "package"])
def test_the_offline_read_agrees_with_uvs_pylock_export(make_project, index_root, tmp_path, uv_env, uv_new, shape):
    """Where uv's pylock export needs no download, what uvextra reads without it (the requirements export and
    uv.lock) is the same selection: names, exact versions, sources, indexes, wheels and their hashes."""
    from uvextra.core import verbs as core
    from uvextra.core.lock import wanted_offline

    if shape == "flat-folder":
        project = tmp_path / "flat"
        write_project(
            project,
            {e: index_root / e for e in ("cpu", "cu128", "pypi")},
            flat=("cpu", "cu128", "pypi"),
        )
        pyproject = project / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text() + f'\n[[tool.uv.index]]\nname = "base"\nurl = '
            f'"{index_root / "pypi"}"\nformat = "flat"\ndefault = true\n'
        )
        run_uv(uv_new, "lock", env=uv_env, cwd=project)
    else:
        project = make_project(package=shape == "package")
    venv = tmp_path / "venv"
    run_uv(uv_new, "venv", "--quiet", "--python", sys.executable, venv, env=uv_env)
    ctx = core.open_context(project, venv / "bin" / "python")
    fields = ("name", "version", "kind", "index", "location", "wheel", "wheel_hash", "wheel_tags")
    for extras in (["cpu"], ["cu128"], ["pypi"]):
        exported = {n: tuple(getattr(w, f) for f in fields) for n, w in core._wanted(ctx, extras).items()}
        offline = {
            n: tuple(getattr(w, f) for f in fields)
            for n, w in wanted_offline(ctx.project, ctx.env, ctx.uv, extras).items()
        }
        if shape == "package":  # uv's pylock export gives an editable project no version; uv.lock does
            exported = {n: v if v[2] != "editable" else (v[0], "0.1.0", *v[2:]) for n, v in exported.items()}
        assert offline == exported, extras
