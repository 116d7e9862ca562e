"""Issue 9, the command line's part: no colour codes, the target chosen like uv chooses it, and the small items.

Every test drives the real CLI in a subprocess (``python -m uvextra …``) with the real uv against local indexes on
127.0.0.1, in real venvs (``python -m venv`` and ``uv venv``), and with ``FORCE_COLOR=1 CLICOLOR_FORCE=1`` set as
ipykernel sets them.

The "tool venv" is what ``pipx`` / ``uv tool install`` make: a venv of its own that runs uvextra. Here it is a
``python -m venv`` venv (pip included) whose ``.pth`` file puts uvextra's source and its dependencies on the path; its
``sys.prefix`` is its own, so a uvextra that targets "the running interpreter" would change *it*. It is never the
test session's own venv, so a regression cannot touch the environment pytest runs in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from support.cli import error_line, report_of, run_cli
from support.localindex import IndexServer, write_project
from support.run import run_uv
from support.venvs import dist_infos, site_packages

SRC = Path(__file__).resolve().parents[2] / "src"
COLOR = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}
ESC = "\x1b"


# ------------------------------------------------------------------------------------------------ helpers


def json_error(proc: subprocess.CompletedProcess[str]) -> str:
    message = error_line(proc)
    assert json.loads(proc.stdout) == {"error": message, "exit_code": 2}, proc.stdout
    return message


def listing(venv: Path) -> list[str]:
    return sorted(p.name for p in site_packages(venv).iterdir())


@pytest.fixture
def env(uv_env, uv_new) -> dict[str, str]:
    """uv_env (no VIRTUAL_ENV, no UV_PROJECT_ENVIRONMENT) with the newest uv and ipykernel's colour variables."""
    out = dict(uv_env, UVEXTRA_UV=uv_new, **COLOR)
    out.pop("VIRTUAL_ENV", None)
    out.pop("UV_PROJECT_ENVIRONMENT", None)
    return out


@pytest.fixture(scope="module")
def tool_venv(tmp_path_factory) -> Path:
    """A ``python -m venv`` venv that runs uvextra (as pipx would), pip and all; not the session's venv."""
    venv = tmp_path_factory.mktemp("tool") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=180)
    paths = [str(SRC), sysconfig.get_paths()["purelib"]]  # uvextra's source, then its dependencies
    (site_packages(venv) / "uvextra_tool.pth").write_text("\n".join(paths) + "\n")
    return venv


@pytest.fixture
def tool(tool_venv) -> Iterator[Path]:
    """The tool venv's python; the test fails if anything was installed into or removed from the tool venv."""
    before = listing(tool_venv)
    yield tool_venv / "bin" / "python"
    assert listing(tool_venv) == before, "uvextra changed its own (tool) venv"


# ------------------------------------------------------------------------------------------------ 1. colour


def test_no_colour_codes_anywhere_even_with_force_color(index_root, make_venv, tmp_path, env, uv_new, monkeypatch):
    server = IndexServer(index_root).start()
    try:
        env = dict(env, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
        project = tmp_path / "project"
        write_project(
            project,
            {e: server.simple_url(e) for e in ("cpu", "cu128", "pypi")},
            default_index=server.simple_url("pypi"),
        )
        run_uv(uv_new, "lock", env=env, cwd=project)
        venv = make_venv(tmp_path / "kernel-venv", packages=["ipykernel"])
        python = venv / "bin" / "python"
        target = ["--project", project, "--python", python]
        # the premise: with these variables uv colours its output into a pipe unless told `--color never`
        forced = subprocess.run(
            [uv_new, "pip", "install", "--python", str(tmp_path / "nowhere"), "x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ESC in forced.stderr, forced.stderr
        outputs: dict[str, str] = {}
        proc = run_cli("switch", "cpu", "-v", *target, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "+ torch==2.9.0+cpu" in proc.stderr  # uv's own lines, streamed
        outputs.update(switch_out=proc.stdout, switch_err=proc.stderr)
        # the report's log (what the card shows as "uv output"), in this process, with the kernel's variables
        from uvextra.core import verbs as core

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        report = core.switch(["pypi"], project, python, probe=False)
        assert report.exit_code == 0 and report.log, report.to_dict()
        outputs.update(log="\n".join(report.log), report=json.dumps(report.to_dict(), ensure_ascii=False))
        server.stop()  # the index goes away: uv fails, with its (normally red) error
        proc = run_cli("switch", "cu128", *target, env=env)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "FAILED" in proc.stdout and "127.0.0.1" in proc.stderr
        outputs.update(fail_out=proc.stdout, fail_err=proc.stderr)
        proc = run_cli("switch", "cu128", "--json", *target, env=env)
        data = report_of(proc)
        assert proc.returncode == 1 and data["failure"], proc.stdout
        outputs.update(
            fail_json=proc.stdout,
            failure=data["failure"],
            fail_json_err=proc.stderr,
            everything=json.dumps(data, ensure_ascii=False),
        )
        report = core.switch(["cu128"], project, python, probe=False)
        assert report.failure and report.log
        outputs.update(
            failure_in_process=report.failure,
            fail_log="\n".join(report.log),
            fail_report=json.dumps(report.to_dict(), ensure_ascii=False),
        )
        for name, text in outputs.items():
            assert ESC not in text and "\\u001b" not in text, f"{name} has colour codes: {text!r}"
    finally:
        server.stop()


@pytest.fixture
def setup_project(make_project, make_venv, tmp_path) -> tuple[Path, Path]:
    return make_project(), make_venv(tmp_path / "kernel-venv", packages=["ipykernel"])


def test_colour_codes_a_uv_prints_anyway_are_stripped(setup_project, tmp_path, env, uv_new):
    """A uv (or a wrapper around it) that writes escapes whatever it is told: CSI colours and OSC hyperlinks."""
    project, venv = setup_project
    loud = tmp_path / "loud-uv"
    loud.write_text(
        "#!/bin/sh\n"
        "printf '\\033[1m\\033[31mwarning\\033[39m\\033[0m: \\033]8;;https://example.invalid\\033\\\\"
        "a link\\033]8;;\\033\\\\ from the wrapper\\n' >&2\n"
        f'exec {uv_new} "$@"\n'
    )
    loud.chmod(0o755)
    env = dict(env, UVEXTRA_UV=str(loud))
    target = ["--project", project, "--python", venv / "bin" / "python"]
    proc = run_cli("switch", "cpu", "--no-probe", *target, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "  │ warning: a link from the wrapper" in proc.stderr.splitlines()
    proc2 = run_cli("switch", "pypi", "--no-probe", "--json", *target, env=env)
    assert report_of(proc2)["exit_code"] == 0 and proc2.returncode == 0, proc2.stderr
    for text in (proc.stdout, proc.stderr, proc2.stdout, proc2.stderr):
        assert ESC not in text and "\\u001b" not in text, repr(text)


# ------------------------------------------------------------------------------------------------ 2. the target


def test_switch_without_python_lands_in_the_projects_venv_not_the_tool_venv(make_project, make_venv, tool, env):
    project = make_project()
    dot_venv = make_venv(project / ".venv")
    sub = project / "notebooks"
    sub.mkdir()
    proc = run_cli("switch", "cpu", "--no-probe", "--json", python=tool, env=env, cwd=sub)
    report = report_of(proc)
    assert proc.returncode == 0, proc.stderr
    assert (report["environment"], report["environment_source"]) == (str(dot_venv), "the project's .venv")
    assert report["project"] == str(project)
    assert dist_infos(dot_venv, "torch") == ["torch-2.9.0+cpu.dist-info"]
    assert dist_infos(tool.parent.parent, "torch") == []
    assert subprocess.run([tool, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode == 0
    # the text report says which environment and why
    proc = run_cli("check", python=tool, env=env, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"environment  {dot_venv} (the project's .venv)" in proc.stdout.splitlines()
    # probe without --python: the same environment (the nearest project's), and torch is there: exit 0
    proc = run_cli("probe", "--json", python=tool, env=env, cwd=sub)
    report = report_of(proc)
    assert (proc.returncode, report["environment"], report["environment_source"]) == (
        0,
        str(dot_venv),
        "the project's .venv",
    ), proc.stderr
    assert report["probe"]["torch_version"] == "2.9.0+cpu"


def test_virtual_env_wins_then_uv_project_environment_relative_to_the_project(
    make_project, make_venv, tool, env, tmp_path
):
    project = make_project()
    make_venv(project / ".venv")
    active = make_venv(tmp_path / "activated")
    elsewhere = make_venv(project / "envs" / "main")
    sub = project / "sub"
    sub.mkdir()

    def target_of(extra_env: dict[str, str], *args: str | os.PathLike[str]) -> tuple[str, str]:
        report = report_of(
            run_cli("check", "--extra", "cpu", "--json", *args, python=tool, env=dict(env, **extra_env), cwd=sub)
        )
        return report["environment"], report["environment_source"]

    assert target_of({"VIRTUAL_ENV": str(active)}) == (str(active), "$VIRTUAL_ENV")
    assert target_of({"UV_PROJECT_ENVIRONMENT": "envs/main"}) == (str(elsewhere), "UV_PROJECT_ENVIRONMENT")
    assert target_of({"UV_PROJECT_ENVIRONMENT": str(active)}) == (str(active), "UV_PROJECT_ENVIRONMENT")
    assert target_of({"UV_PROJECT_ENVIRONMENT": ""}) == (str(project / ".venv"), "the project's .venv")
    # --python still wins over everything
    assert target_of({"VIRTUAL_ENV": str(active)}, "--python", elsewhere / "bin" / "python") == (
        str(elsewhere),
        "--python",
    )
    proc = run_cli("check", "--extra", "cpu", "--python", elsewhere, python=tool, env=env, cwd=sub)
    assert f"environment  {elsewhere} (--python)" in proc.stdout.splitlines(), proc.stdout


def test_missing_target_environment_is_one_line_saying_how_to_create_it(make_project, make_venv, tool, env, tmp_path):
    project = make_project()
    for args in (("switch", "cpu"), ("check",), ("status",), ("repair",), ("probe",)):
        message = error_line(run_cli(*args, python=tool, env=env, cwd=project))
        assert message == (
            f"the project's .venv {project / '.venv'} does not exist: create it (`uv sync` or "
            f"`uv venv` in {project}), or pass --python PY"
        ), message
    message = json_error(
        run_cli("switch", "cpu", "--json", python=tool, env=dict(env, UV_PROJECT_ENVIRONMENT="nope"), cwd=project)
    )
    assert message.startswith(f"UV_PROJECT_ENVIRONMENT ({project / 'nope'}) does not exist: create it (`uv sync`")
    gone = tmp_path / "deactivated"
    message = error_line(run_cli("switch", "cpu", python=tool, env=dict(env, VIRTUAL_ENV=str(gone)), cwd=project))
    assert message == f"$VIRTUAL_ENV ({gone}) does not exist: create it (`uv venv {gone}`), or pass --python PY"
    not_venv = project / "not-a-venv"
    not_venv.mkdir()
    message = error_line(run_cli("check", python=tool, env=dict(env, UV_PROJECT_ENVIRONMENT="not-a-venv"), cwd=project))
    assert message.startswith(f"UV_PROJECT_ENVIRONMENT ({not_venv}) is not a virtual environment (no pyvenv.cfg)")
    assert not (project / ".venv").exists() and not list(project.glob("nope"))


def test_probe_without_a_project_targets_virtual_env_else_the_running_venv(make_venv, tool, env, tmp_path):
    empty = tmp_path / "no-project"
    empty.mkdir()
    report = report_of(run_cli("probe", "--json", python=tool, env=env, cwd=empty))
    assert report["environment"] == str(tool.parent.parent)
    assert report["environment_source"] == "the Python running uvextra: no $VIRTUAL_ENV, no project upward"
    active = make_venv(tmp_path / "active")
    report = report_of(run_cli("probe", "--json", python=tool, env=dict(env, VIRTUAL_ENV=str(active)), cwd=empty))
    assert (report["environment"], report["environment_source"]) == (str(active), "$VIRTUAL_ENV")


def test_the_magic_keeps_the_kernels_own_environment():
    """``python=None`` (what the magic passes) still means the running interpreter, and says so."""
    from uvextra.core import verbs as core

    report = core.probe(None)
    assert report.environment == str(Path(sys.prefix).absolute())
    assert report.environment_source == "this kernel's environment"
    assert report.to_dict()["environment_source"] == "this kernel's environment"


# ------------------------------------------------------------------------------------------------ 3. small items


def test_project_naming_a_missing_folder_or_one_without_pyproject_is_refused(make_project, make_venv, env, tmp_path):
    project = make_project()
    venv = make_venv(tmp_path / "venv")
    (project / "sub").mkdir()
    for given, why in (
        (project / "missing", "no such folder"),
        (project / "sub", f"no pyproject.toml in {project / 'sub'}"),
    ):
        for args in (("switch", "cpu"), ("check",), ("status", "--json"), ("repair",)):
            proc = run_cli(*args, "--project", given, "--python", venv / "bin" / "python", env=env)
            message = json_error(proc) if "--json" in args else error_line(proc)
            assert message.startswith(f"--project {given}: {why}"), message
    assert dist_infos(venv, "torch") == [] and not (venv / ".uvextra").exists()
    # the pyproject.toml itself is accepted, as the folder
    report = report_of(
        run_cli(
            "check",
            "--extra",
            "cpu",
            "--json",
            "--project",
            project / "pyproject.toml",
            "--python",
            venv / "bin" / "python",
            env=env,
        )
    )
    assert report["project"] == str(project)


def test_probe_exits_1_when_python_cannot_run_or_torch_is_missing(make_venv, env, tmp_path):
    bare = make_venv(tmp_path / "bare")
    proc = run_cli("probe", "--python", bare / "bin" / "python", "--json", env=env)
    report = report_of(proc)
    assert (proc.returncode, report["exit_code"]) == (1, 1), proc.stdout
    assert report["probe"]["verdict"] == "torch is not installed"
    proc = run_cli("probe", "--python", bare / "bin" / "python", env=env)
    assert proc.returncode == 1 and "torch is not installed" in proc.stdout
    broken = tmp_path / "broken"
    (broken / "bin").mkdir(parents=True)
    (broken / "pyvenv.cfg").write_text("home = /nonexistent\n")
    (broken / "bin" / "python").write_text("not a program\n")  # there, but nobody may run it
    (broken / "bin" / "python").chmod(0o644)
    proc = run_cli("probe", "--python", broken / "bin" / "python", "--json", env=env)
    report = report_of(proc)
    assert (proc.returncode, report["exit_code"]) == (1, 1), proc.stdout
    assert report["probe"]["verdict"].startswith("target Python not found or not runnable")


def test_ascii_only_output_never_raises(setup_project, env):
    project, venv = setup_project
    ascii_env = dict(env, PYTHONIOENCODING="ascii")
    target = ["--project", project, "--python", venv / "bin" / "python"]
    proc = run_cli("switch", "cpu", "--no-probe", *target, env=ascii_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "  \\u2502 " in proc.stderr  # the streamed uv lines' "│", escaped instead of a crash
    proc = run_cli("switch", "pypi", "--no-probe", "-v", "--json", *target, env=ascii_env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    proc.stdout.encode("ascii")
    report = report_of(proc)
    assert {"name": "torch", "old": "2.9.0+cpu", "new": "2.9.0"} in report["changes"]["installed"]
    proc = run_cli("check", "--extra", "cpu", *target, env=ascii_env)  # drift rows hold "→" and "—"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "\\u2192" in proc.stdout


def test_version(env):
    proc = run_cli("--version", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"uvextra {metadata.version('uvextra')}"


def test_usage_errors_are_one_line(env, tmp_path):
    for args, starts in (
        (("switch",), "the following arguments are required: EXTRA"),
        (("switch", "cpu", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
        ((), "the following arguments are required: COMMAND"),
    ):
        message = error_line(run_cli(*args, env=env, cwd=tmp_path))
        assert message.startswith(starts), message
    message = json_error(run_cli("switch", "--json", env=env, cwd=tmp_path))
    assert message == "the following arguments are required: EXTRA (see `uvextra switch --help`)"


def _fake(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_a_uvextra_uv_that_is_not_uv_is_named_as_such(setup_project, env, tmp_path):
    project, venv = setup_project
    calls = tmp_path / "calls"
    fakes = {
        _fake(
            tmp_path,
            "py-uv",
            f"#!{sys.executable}\nimport sys\n"
            f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
            "print('Python ' + sys.version.split()[0])\n",
        ): "'Python ",
        _fake(tmp_path, "silent-uv", f'#!/bin/sh\necho "$@" >> {calls}\n'): "nothing)",
        _fake(tmp_path, "failing-uv", f'#!/bin/sh\necho "$@" >> {calls}\nexit 3\n'): "nothing and exited 3)",
        _fake(tmp_path, "echo-uv", f'#!/bin/sh\necho "$@" >> {calls}\necho "$@"\n'): "'--version')",
    }
    for fake, printed in fakes.items():
        for args in (("switch", "cpu"), ("check", "--json"), ("status",)):
            proc = run_cli(
                *args,
                "--project",
                project,
                "--python",
                venv / "bin" / "python",
                env=dict(env, UVEXTRA_UV=str(fake)),
            )
            message = json_error(proc) if "--json" in args else error_line(proc)
            assert message.startswith(f"UVEXTRA_UV={fake} is not uv (`{fake} --version` printed {printed}"), message
            assert "too old" not in message and "point UVEXTRA_UV at a uv binary or unset it" in message
    assert set(calls.read_text().split()) == {"--version"}, "a non-uv was asked to do more than --version"
    assert dist_infos(venv, "torch") == []
