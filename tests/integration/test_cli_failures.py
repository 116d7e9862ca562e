"""Issue 6: bad input, interruption, concurrency and failures — nothing lost, nothing leaked.

Every row of the issue's table is a test here. Each drives the real CLI the way a user does
(``python -m uvextra …`` in a subprocess, the real uv, real local indexes on 127.0.0.1) and asserts:

* the one line the user sees (``uvextra: error: …`` on stderr for bad input) and the exit code
  (2 bad input / configuration, 1 failure, 130 interrupt);
* that nothing was lost: ``pyproject.toml`` byte for byte, the venv still there, the kernel's own packages
  (the stand-in ``ipykernel``/``tornado``/``comm`` installed outside the lock) still installed;
* after a failure, that the environment was checked again and the report says what it holds now.

The read-only venv row: the tests run as root, and root passes every permission check, so ``chmod -R a-w`` proves
nothing. Instead the venv stays owned by root (an admin's shared image) and the CLI runs as ``nobody``
(``setpriv``), for whom it really is read-only. As a non-root user the venv is made read-only with ``chmod``.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import Setup, drift_kinds, error_line, project_on, report_of, run_cli
from support.localindex import IndexServer
from support.processes import assert_no_process_left, processes_mentioning
from support.run import run_uv

SRC = Path(__file__).resolve().parents[2] / "src"


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def setup(make_project, target_venv, uv_env, uv_new) -> Setup:
    return Setup(make_project(), target_venv, dict(uv_env, UVEXTRA_UV=uv_new))


@pytest.fixture
def own_server(index_root) -> Iterator[IndexServer]:
    """A server of this test's own (the session's must never stop), with a stall on the cu128 torch wheel."""
    server = IndexServer(index_root).start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_extra_lists_the_projects_extras(setup):
    for args in (("switch", "rocm"), ("check", "--extra", "rocm"), ("repair", "--extra", "rocm")):
        message = error_line(setup.run(*args))
        assert message == "unknown extra 'rocm'; this project's extras are: cpu, cu128, pypi"
    proc = setup.run("switch", "rocm", "--json")
    assert report_of(proc) == {
        "error": "unknown extra 'rocm'; this project's extras are: cpu, cu128, pypi",
        "exit_code": 2,
    }
    setup.assert_nothing_lost()
    assert setup.torch() == [] and not (setup.venv / ".uvextra").exists()


def test_two_conflicting_extras_name_the_conflict_set(setup):
    for args in (("switch", "cpu", "cu128"), ("check", "--extra", "cpu", "--extra", "pypi")):
        message = error_line(setup.run(*args))
        assert "conflict (conflict set: cpu, cu128, pypi); pick one of them" in message
        assert message.startswith(("extras cpu and cu128", "extras cpu and pypi"))
    setup.assert_nothing_lost()
    assert setup.torch() == []


@pytest.mark.parametrize(
    "name", ["cpu; rm -rf /", "$(touch pwned)", "`touch pwned`", "ünï", "c p u", "cpu\nx", "../../etc", "--help-me"]
)
def test_extra_names_with_shell_metacharacters_are_refused_literally(setup, tmp_path, name):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = run_cli("switch", "--project", setup.project, "--python", setup.python, "--", name, env=setup.env, cwd=cwd)
    message = error_line(proc)
    assert message == f"unknown extra {name!r}; this project's extras are: cpu, cu128, pypi"
    proc = run_cli(
        "check", "--project", setup.project, "--python", setup.python, f"--extra={name}", env=setup.env, cwd=cwd
    )
    assert error_line(proc).startswith(f"unknown extra {name!r}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "a file was created"
    assert not list(Path.cwd().glob("pwned")) and not (cwd / "pwned").exists()
    setup.assert_nothing_lost()


def test_no_pyproject_anywhere_up(tmp_path, target_venv, uv_env, uv_new):
    empty = tmp_path / "not-a-project"
    empty.mkdir()
    env = dict(uv_env, UVEXTRA_UV=uv_new)
    message = error_line(run_cli("switch", "cpu", "--python", target_venv / "bin" / "python", env=env, cwd=empty))
    assert message.startswith(f"no pyproject.toml found in {empty} or any folder above it")
    assert "pass --project DIR" in message
    message = error_line(run_cli("check", "--project", empty, "--python", target_venv / "bin" / "python", env=env))
    assert message.startswith(f"--project {empty}: no pyproject.toml in {empty}")  # never a parent's project
    assert sorted(p.name for p in empty.iterdir()) == []


def test_no_extras_declared(make_project, target_venv, uv_env, uv_new):
    s = Setup(make_project({}), target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    message = error_line(s.run("switch", "cpu"))
    assert message == (
        f"{s.project / 'pyproject.toml'} declares no extras or dependency groups: add "
        "[project.optional-dependencies] or [dependency-groups] (e.g. cpu, cu128)"
    )
    s.assert_nothing_lost()


def test_missing_lock_is_created_as_uv_sync_would(make_project, target_venv, uv_env, uv_new):
    s = Setup(make_project(lock=False), target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    assert not (s.project / "uv.lock").exists()
    proc = s.run("switch", "cpu", "--no-probe", "--json")
    report = report_of(proc)
    assert proc.returncode == 0, report
    assert (s.project / "uv.lock").is_file()
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"] and drift_kinds(report) == {}
    s.assert_nothing_lost()


@pytest.mark.parametrize("flag", ["--frozen", "--locked"])
def test_missing_lock_is_refused_under_frozen_or_locked(make_project, target_venv, uv_env, uv_new, flag):
    s = Setup(make_project(lock=False), target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    message = error_line(s.run("switch", "cpu", flag))
    assert message.startswith(f"no uv.lock in {s.project}, and {flag} never creates one: run `uv lock` first")
    assert not (s.project / "uv.lock").exists()
    assert s.torch() == []
    s.assert_nothing_lost()


def test_stale_lock_is_refused_under_locked_and_the_env_reported(setup):
    lock_bytes = (setup.project / "uv.lock").read_bytes()
    pyproject = setup.project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('dependencies = ["numpy"]', 'dependencies = ["numpy", "filelock"]')
    )
    setup.pyproject_bytes = pyproject.read_bytes()
    proc = setup.run("switch", "cpu", "--locked", "--no-probe")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "needs to be updated" in proc.stderr  # uv's own words, streamed
    assert "FAILED" in proc.stdout and "uv sync failed" in proc.stdout
    assert "torch" in proc.stdout and "missing" in proc.stdout  # re-checked: torch is not there
    assert (setup.project / "uv.lock").read_bytes() == lock_bytes
    assert setup.torch() == []
    setup.assert_nothing_lost()


def test_malformed_pyproject_names_file_and_line(setup):
    pyproject = setup.project / "pyproject.toml"
    lines = pyproject.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("conflicts"))
    lines[at] = "conflicts = [[ { extra = 'cpu' }"  # unterminated
    pyproject.write_text("\n".join(lines) + "\n")
    setup.pyproject_bytes = pyproject.read_bytes()
    for args in (("switch", "cpu"), ("check",), ("status",)):
        message = error_line(setup.run(*args))
        assert message.startswith(f"{pyproject}: invalid TOML: "), message
        assert f"line {at + 1}" in message or f"line {at + 2}" in message, message
    setup.assert_nothing_lost()


def test_malformed_uv_lock_names_file_and_line(setup):
    lock = setup.project / "uv.lock"
    lines = lock.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith('name = "torch"'))
    lines[at] = 'name = "torch'  # unterminated string
    lock.write_text("\n".join(lines) + "\n")
    lock_bytes = lock.read_bytes()
    for args in (("switch", "cpu"), ("check", "--extra", "cpu"), ("repair",)):
        message = error_line(setup.run(*args))
        assert message.startswith(f"{lock}: invalid TOML: ") and f"line {at + 1}" in message, message
        assert "uv lock" in message
    assert lock.read_bytes() == lock_bytes and setup.torch() == []
    setup.assert_nothing_lost()


# ------------------------------------------------------------------------------------------------ uv and python


def test_no_uv_found_says_what_to_install(setup, tmp_path):
    message = error_line(setup.run("switch", "cpu", env=dict(setup.env, UVEXTRA_UV=str(tmp_path / "no-uv"))))
    assert (
        message.startswith(f"UVEXTRA_UV={tmp_path / 'no-uv'} does not exist") and "pip install 'uv>=0.9.24'" in message
    )
    # no UVEXTRA_UV, no bundled uv wheel (shadowed by one whose binary is gone), no uv on PATH
    shadow = tmp_path / "shadow" / "uv"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("def find_uv_bin():\n    raise FileNotFoundError('uv binary removed')\n")
    env = {k: v for k, v in setup.env.items() if k != "UVEXTRA_UV"}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(shadow.parent))
    message = error_line(setup.run("switch", "cpu", env=env))
    assert message == "no uv found; install it with `pip install 'uv>=0.9.24'` (or set UVEXTRA_UV)"
    setup.assert_nothing_lost()
    assert setup.torch() == []


@pytest.mark.parametrize("answer", ["uv 0.4.0", "not uv at all"])
def test_uv_too_old_to_read_the_lock_is_refused_before_it_runs(setup, tmp_path, answer):
    calls = tmp_path / "calls"
    fake = tmp_path / "old-uv"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "{answer}"\n')
    fake.chmod(0o755)
    for args in (("switch", "cpu"), ("check",), ("repair",)):
        message = error_line(setup.run(*args, env=dict(setup.env, UVEXTRA_UV=str(fake))))
        assert "pip install 'uv>=0.9.24'" in message
        if answer == "uv 0.4.0":
            assert message.startswith("uv 0.4.0") and "is too old to read this project's lock" in message
        else:  # issue 9: named as what it is, not as "uv 0 … too old"
            assert message.startswith(f"UVEXTRA_UV={fake} is not uv (`{fake} --version` printed 'not uv at all')")
    assert set(calls.read_text().split()) <= {"--version"}, "the old uv was asked to do more than --version"
    setup.assert_nothing_lost()
    assert setup.torch() == []


def test_python_not_in_a_virtual_environment_is_refused(setup, tmp_path):
    base = Path(sys.base_prefix) / "bin" / "python3"
    if not base.exists():
        pytest.skip(f"no base interpreter at {base}")
    message = error_line(run_cli("switch", "cpu", "--project", setup.project, "--python", base, env=setup.env))
    assert message.startswith(f"{base} is not in a virtual environment (no pyvenv.cfg next to it)")
    assert "uvextra only changes venvs" in message
    message = error_line(
        run_cli("check", "--project", setup.project, "--python", tmp_path / "nope" / "python", env=setup.env)
    )
    assert "no such interpreter" in message
    # run by the base interpreter (outside any venv) with no --python: the CLI targets the project's .venv (issue 9),
    # which does not exist here; `probe` with no project upward targets the running interpreter, which is no venv
    env = dict(setup.env, PYTHONPATH=os.pathsep.join([str(SRC), sysconfig.get_paths()["purelib"]]))
    proc = run_cli("switch", "cpu", "--project", setup.project, python=base, env=env, timeout=60)
    message = error_line(proc)
    assert message.startswith(f"the project's .venv {setup.project / '.venv'} does not exist: create it"), message
    proc = run_cli("probe", python=base, env=env, cwd=tmp_path, timeout=60)
    message = error_line(proc)
    assert "is not in a virtual environment; uvextra only changes venvs" in message
    setup.assert_nothing_lost()


# ------------------------------------------------------------------------------------------------ failures


def test_index_unreachable_during_a_switch_shows_uvs_error_and_reports_the_env(
    own_server, target_venv, tmp_path, uv_new, uv_env
):
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
    s = Setup(project_on(own_server, tmp_path / "project", uv_new, env), target_venv, env)
    proc = s.run("switch", "cpu", "--no-probe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    own_server.stop()
    proc = s.run("switch", "cu128", "--no-probe")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    streamed = [ln for ln in proc.stderr.splitlines() if ln.startswith("  │ ")]
    assert any(f"127.0.0.1:{own_server.port}" in ln for ln in streamed), proc.stderr  # uv's error, as it came
    failed = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED"))
    assert "uv sync failed" in failed
    # re-checked and reported: the cpu build is still there, the lock wants the cu128 one
    assert "torch" in proc.stdout and "2.9.0+cpu → 2.9.0+cu128" in proc.stdout
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    s.assert_nothing_lost()
    # what was recorded is still the last good switch: a check (offline) agrees
    report = report_of(s.run("check", "--json"))
    assert (report["extras"], report["exit_code"], drift_kinds(report)) == (["cpu"], 0, {})


def test_ctrl_c_in_the_middle_of_a_switch(own_server, target_venv, tmp_path, uv_new, uv_env):
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"))
    s = Setup(project_on(own_server, tmp_path / "project", uv_new, env), target_venv, env)
    assert s.run("switch", "cpu", "--no-probe").returncode == 0
    own_server.delay["torch-2.9.0+cu128"] = 60.0  # uv hangs in the download of the cu128 build
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvextra", "switch", "cu128", *s.target()],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its own process group, like a shell job
    try:
        assert own_server.stalled.wait(60), "uv never reached the torch download"
        uv_running = [p for p, cmd in processes_mentioning(str(s.venv)) if "sync" in cmd]
        assert uv_running, "no uv process while the download stalls"
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does (and a kernel interrupt, to a kernel)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert time.monotonic() - started < 15
    assert "Traceback" not in out + err
    assert "interrupted: uv was stopped before it finished; the environment was checked again" in out
    assert "the switch was interrupted; run it again to finish" in out
    assert "2.9.0+cpu → 2.9.0+cu128" in out  # the re-check: what is installed now against what cu128 wants
    assert_no_process_left(s.venv)
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    s.assert_nothing_lost()
    own_server.delay.clear()
    proc = s.run("switch", "cu128", "--no-probe", "--json")
    assert (proc.returncode, s.torch()) == (0, ["torch-2.9.0+cu128.dist-info"]), proc.stdout + proc.stderr


def test_two_switches_at_once_never_interleave(own_server, target_venv, tmp_path, uv_new, uv_env):
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"))
    s = Setup(project_on(own_server, tmp_path / "project", uv_new, env), target_venv, env)
    own_server.delay["torch-2.9.0+cu128"] = 3.0
    popen = dict(env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = subprocess.Popen([sys.executable, "-m", "uvextra", "switch", "cu128", "--no-probe", *s.target()], **popen)
    try:
        assert own_server.stalled.wait(60), "the first switch never reached the download"
        second = subprocess.Popen(
            [sys.executable, "-m", "uvextra", "switch", "cpu", "--no-probe", "--json", *s.target()], **popen
        )
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=120)
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0, out2 + err2
    waited = [ln for ln in err2.splitlines() if "waiting for it to finish" in ln]
    assert waited == [
        f"uvextra: another uvextra is changing {s.venv} (process {first.pid}); waiting for it to finish…"
    ], err2
    assert "+ torch==2.9.0+cu128" in err1
    # never interleaved: the second switch looked at the venv only once the first had finished with it
    changes = report_of(subprocess.CompletedProcess([], 0, out2, err2))["changes"]
    assert {"name": "torch", "old": "2.9.0+cu128", "new": "2.9.0+cpu"} in changes["installed"]
    # the env is what the *second* switch asked for, and consistent with its record
    report = report_of(s.run("check", "--json"))
    assert (report["extras"], report["exit_code"], drift_kinds(report), report["unverified"]) == (["cpu"], 0, {}, [])
    assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
    assert "recorded by the last switch" in report["extras_source"]
    s.assert_nothing_lost()


AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _as_nobody(*cmd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_NOBODY, *cmd], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def _nobody_setup(env: dict[str, str]) -> tuple[str | None, str]:
    """(a base interpreter ``nobody`` may run for the venv, "") or (None, why the test cannot run as ``nobody``)."""
    if shutil.which("setpriv") is None:
        return None, "setpriv is not installed"
    proc = _as_nobody(sys.executable, "-c", "import uvextra, uv; print(uv.find_uv_bin())", env=env)
    if proc.returncode != 0:
        return None, f"`nobody` cannot run {sys.executable} with uvextra: {proc.stderr.strip()[-300:]}"
    base = getattr(sys, "_base_executable", sys.executable)
    for candidate in (os.path.realpath(base), shutil.which("python3.11"), "/usr/bin/python3", "/usr/local/bin/python3"):
        # os.stat too: some sandboxes let `nobody` execute a file in a folder it may not look into
        if (
            candidate
            and _as_nobody(
                candidate,
                "-c",
                "import os, sys; os.stat(sys.argv[1]); assert sys.version_info >= (3, 11)",
                candidate,
                env=env,
            ).returncode
            == 0
        ):
            return candidate, ""
    return None, "no Python >= 3.11 that `nobody` may run, to make the venv with"


def _tree(root: Path) -> list[tuple[str, int, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    )


def test_read_only_venv_refuses_cleanly(index_server, uv_new, uv_env, make_venv):
    base = Path(tempfile.mkdtemp(prefix="uvextra-ro-"))
    try:
        base.chmod(0o755)  # everyone may read it; only its owner (root) may write
        env = dict(uv_env, UVEXTRA_UV=uv_new, PYTHONDONTWRITEBYTECODE="1")
        cache = base / "nobody-cache"
        cache.mkdir()
        cache.chmod(0o777)
        user_env = dict(env, UV_CACHE_DIR=str(cache), HOME=str(cache))
        python = sys.executable
        if os.geteuid() == 0:  # root passes every permission check: run the CLI as `nobody` instead
            python, why = _nobody_setup(user_env)
            if python is None:
                pytest.skip(f"root bypasses permission checks and {why}")
            prefix = AS_NOBODY
        else:
            prefix = []
        s = Setup(
            project_on(index_server, base / "project", uv_new, env),
            make_venv(base / "venv", python=python, packages=["ipykernel"]),
            env,
        )
        assert s.run("switch", "cpu", "--no-probe").returncode == 0
        if not prefix:
            for p in [s.venv, *s.venv.rglob("*")]:
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        before = _tree(s.venv)
        for args in (("switch", "cu128"), ("switch", "pypi", "--repair"), ("repair", "--extra", "pypi")):
            message = error_line(run_cli(*args, *s.target(), env=user_env, prefix=prefix))
            assert message.startswith(f"the environment {s.venv} is read-only; uvextra changes nothing there"), message
            assert "create your own venv (`uv venv`)" in message
        # reading still works: check says the env matches the cpu switch, and writes nothing
        proc = run_cli("check", *s.target(), "--json", env=user_env, prefix=prefix)
        report = report_of(proc)
        assert (proc.returncode, report["extras"], drift_kinds(report)) == (0, ["cpu"], {}), proc.stderr
        assert _tree(s.venv) == before, "the read-only venv was changed"
        assert s.torch() == ["torch-2.9.0+cpu.dist-info"]
        s.assert_nothing_lost()
        if prefix:  # drift in a shared image's venv: the report says what to do instead of a repair that must fail
            run_uv(
                uv_new,
                "pip",
                "install",
                "--python",
                s.venv / "bin" / "python",
                "--no-deps",
                "--index-url",
                index_server.simple_url("cu128"),
                "torch==2.9.0+cu128",
                env=env,
            )
            proc = run_cli("check", *s.target(), env=user_env, prefix=prefix)
            assert proc.returncode == 1, proc.stderr
            assert "this venv is read-only, so uvextra cannot repair it" in proc.stdout
            assert "uvextra repair" not in proc.stdout
    finally:
        for p in [base, *base.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ secrets

SECRET = "Zx9-s3cr3t-Tok3n-7Qp"


@pytest.mark.parametrize("where", ["url", "env", "loud-uv"])
def test_credentials_never_appear_anywhere(index_root, target_venv, tmp_path, uv_new, uv_env, where):
    """``url``: credentials inside the index URLs of pyproject.toml; ``env``: in ``UV_INDEX_<NAME>_PASSWORD``;
    ``loud-uv``: both, and a uv that prints the URL with its password and the bare password on every run
    (today's uv masks them itself; an older or newer one might not)."""
    server = IndexServer(index_root, auth=("alice", SECRET)).start()
    try:
        env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
        if where in ("env", "loud-uv"):  # uv's per-index variables
            for name in ("PYTORCH_CPU", "PYTORCH_CU128", "PYTORCH_PYPI", "DEFAULT"):
                env[f"UV_INDEX_{name}_USERNAME"] = "alice"
                env[f"UV_INDEX_{name}_PASSWORD"] = SECRET
        s = Setup(project_on(server, tmp_path / "project", uv_new, env, credentials=where != "env"), target_venv, env)
        if where == "loud-uv":
            loud = tmp_path / "loud-uv"
            loud.write_text(
                f'#!/bin/sh\necho "debug: GET {server.simple_url("cpu")} as alice:$UV_INDEX_DEFAULT_PASSWORD" >&2\n'
                f'exec {uv_new} "$@"\n'
            )
            loud.chmod(0o755)
            env["UVEXTRA_UV"] = str(loud)
        outputs = []
        for args in (
            ("switch", "cpu"),
            ("switch", "pypi", "--json", "-v"),
            ("check", "--json"),
            ("status",),
            ("status", "--json"),
            ("repair", "--json", "--probe"),
            ("switch", "cpu", "-v"),
        ):
            proc = s.run(*args)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            outputs += [proc.stdout, proc.stderr]
        # a failure prints uv's own error lines and the index URL: still masked
        server.stop()
        proc = s.run("switch", "cu128", "--no-probe")
        assert proc.returncode == 1
        outputs += [proc.stdout, proc.stderr]
        proc = s.run("switch", "cu128", "--no-probe", "--json")
        assert proc.returncode == 1 and report_of(proc)["failure"]
        outputs += [proc.stdout, proc.stderr]
        assert "127.0.0.1" in outputs[-3]  # uv's error names the index it could not reach
        if where == "loud-uv":
            assert "debug: GET http://alice:***@127.0.0.1" in outputs[-3] and "as alice:***" in outputs[-3]
        state_files = [p for p in (s.venv / ".uvextra").rglob("*") if p.is_file()]
        assert any(p.name == "state.json" for p in state_files) and any(p.suffix == ".toml" for p in state_files)
        basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
        for needle in (SECRET, basic):
            for n, text in enumerate(outputs):
                assert needle not in text, f"output {n} leaks the secret:\n{text}"
            for p in state_files:
                assert needle.encode() not in p.read_bytes(), f"{p} leaks the secret"
        s.assert_nothing_lost()
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ the probe


def test_probe_says_when_torch_crashes_or_hangs_on_import(setup):
    assert setup.run("switch", "cpu", "--no-probe").returncode == 0
    proc = run_cli("probe", "--python", setup.python, "--json", env=dict(setup.env, UVEXTRA_FAKE_TORCH_CRASH="1"))
    probe = report_of(proc)["probe"]
    assert probe["verdict"] == "import torch crashed (signal SIGABRT)", probe
    assert probe["ok"] is False and proc.returncode == 1  # probe: no working torch is exit 1 (issue 9)

    started = time.monotonic()
    proc = setup.run("status", env=dict(setup.env, UVEXTRA_FAKE_TORCH_HANG="1", UVEXTRA_PROBE_TIMEOUT="2"))
    took = time.monotonic() - started
    cuda = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CUDA"))
    assert cuda.split(None, 1)[1] == "torch import did not finish within 2 s (probe killed)", proc.stdout
    assert took < 12, f"the probe timeout was not honoured ({took:.1f} s)"
    assert proc.returncode == 0  # the env itself matches the lock: the probe's verdict is information
    assert_no_process_left(setup.venv)
    # the same through switch, in JSON
    proc = setup.run(
        "switch", "cpu", "--json", env=dict(setup.env, UVEXTRA_FAKE_TORCH_HANG="1", UVEXTRA_PROBE_TIMEOUT="1.5")
    )
    assert report_of(proc)["probe"]["verdict"] == "torch import did not finish within 1.5 s (probe killed)"
    assert_no_process_left(setup.venv)
    setup.assert_nothing_lost()
