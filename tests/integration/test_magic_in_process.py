"""``%uvextra`` in an in-process IPython (a terminal shell: text output): loading, arguments, every bad input.

The magic always targets "the kernel's own environment" — in this process that would be the dev venv running
pytest. An autouse fixture points the core at a throwaway venv instead, so a test can run a real switch (real uv,
local index) without ever touching the interpreter that runs the tests.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uvextra.core import verbs as core
from uvextra.core.environment import Environment
from uvextra.core.report import Report
from uvextra.magic import UvextraMagics, last_outcome


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import start_ipython

    return start_ipython()


@pytest.fixture(autouse=True)
def loaded(ip) -> Iterator[None]:
    ip.run_line_magic("load_ext", "uvextra")
    yield
    ip.run_line_magic("unload_ext", "uvextra")


@pytest.fixture(autouse=True)
def kernel_env(
    tmp_path: Path,
    make_venv,
    uv_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Environment:
    """The "kernel's own environment" for the core: a fresh venv, never the interpreter running the tests."""
    venv = make_venv(tmp_path / "kernel-venv")
    env = Environment(prefix=venv, python=venv / "bin" / "python")
    real = core.resolve_environment
    monkeypatch.setattr(core, "resolve_environment", lambda python=None: env if python is None else real(python))
    for key in ("UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS", "FORCE_COLOR", "CLICOLOR_FORCE"):
        monkeypatch.setenv(key, uv_env[key])
    monkeypatch.delenv("UVEXTRA_UV", raising=False)
    return env


def run(ip, capsys: pytest.CaptureFixture[str], line: str) -> tuple[str, str]:
    capsys.readouterr()
    ip.run_cell(line)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return out, err


def one_line(ip, capsys: pytest.CaptureFixture[str], line: str) -> str:
    """Run a bad ``%uvextra``: exactly one line, on stderr, and nothing else."""
    out, err = run(ip, capsys, line)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("uvextra: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------------- loading


def test_load_and_unload(ip) -> None:
    assert "uvextra" in ip.magics_manager.magics["line"]
    assert any(cb.__name__ == "_watch_imports" for cb in ip.events.callbacks["post_run_cell"])
    ip.run_line_magic("unload_ext", "uvextra")
    assert "uvextra" not in ip.magics_manager.magics["line"]
    assert "UvextraMagics" not in ip.magics_manager.registry
    assert not any(cb.__name__ == "_watch_imports" for cb in ip.events.callbacks["post_run_cell"])
    ip.run_line_magic("load_ext", "uvextra")
    assert "uvextra" in ip.magics_manager.magics["line"]


def test_the_magic_drives_the_shared_controller(ip) -> None:
    """The magic holds a :class:`uvextra.kernel.session.Session` (the card gets the same one); the controller is not
    the magic's: it lives in its own module."""
    from uvextra import magic
    from uvextra.kernel.session import Session

    magics = ip.magics_manager.registry["UvextraMagics"]
    assert isinstance(magics.session, Session) and magic._current is magics.session
    assert magics.session.shell is ip
    assert not hasattr(magic, "Session") or magic.Session is Session  # one class, never a copy


def test_usage_comes_from_magic_arguments() -> None:
    doc = UvextraMagics.uvextra.__doc__ or ""
    assert (
        "%uvextra [--project DIR] [--extra EXTRA] [--group GROUP] [--check] [--no-probe] [--keep-extraneous]"
        in " ".join(doc.split())
    )
    assert "[EXTRA ...]" in doc and "`auto`" in doc


def test_unknown_flag_is_one_usage_line(ip, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(ip, capsys, "%uvextra --frobnicate")
    lines = (out + err).strip().splitlines()
    assert lines == ["UsageError: unrecognized arguments: --frobnicate"]


def test_a_variable_the_kernel_lost_is_one_usage_line(ip, capsys: pytest.CaptureFixture[str]) -> None:
    # IPython fills {project} from the user's namespace and leaves it as it is when there is no such variable,
    # as after a restart: say that, not "no pyproject.toml found in …/{project}".
    ip.user_ns.pop("project", None)
    out, err = run(ip, capsys, "%uvextra pypi --project {project}")
    assert (out + err).strip().splitlines() == [
        "UsageError: {project} was not filled in: this kernel has no variable `project` "
        "(after a restart, run the cell that sets it first)"
    ]


# ---------------------------------------------------------------------------------------------------- arguments


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:
    seen: list[tuple[str, tuple, dict]] = []

    def fake(name: str):
        def call(*args: object, **kwargs: object) -> Report:
            seen.append((name, args, kwargs))
            return Report(command="status" if name == "check" else name, extras=["cpu"])

        return call

    monkeypatch.setattr(core, "switch", fake("switch"))
    monkeypatch.setattr(core, "check", fake("check"))
    return seen


@pytest.mark.parametrize(
    ("line", "name", "args", "kwargs"),
    [
        ("%uvextra", "check", (None, None, None), {"probe": True, "command": "status"}),
        (
            "%uvextra --no-probe --project ~/p",
            "check",
            (str(Path("~/p").expanduser()), None, None),
            {"probe": False, "command": "status"},
        ),
        ("%uvextra --check cu128", "check", (None, None, ["cu128"]), {"probe": True, "command": "check"}),
        ("%uvextra cu128", "switch", (["cu128"], None, None), {"probe": True, "keep_extraneous": False}),
        (
            "%uvextra auto --keep-extraneous --no-probe",
            "switch",
            (["auto"], None, None),
            {"probe": False, "keep_extraneous": True},
        ),
        ("%uvextra --project /p pypi", "switch", (["pypi"], "/p", None), {"probe": True, "keep_extraneous": False}),
        ("%uvextra cpu --no-default-groups", "switch", (["cpu"], None, None), {"no_default_groups": True}),
        ("%uvextra cpu", "switch", (["cpu"], None, None), {"no_default_groups": False}),
        ("%uvextra --check --no-default-groups", "check", (None, None, None), {"no_default_groups": True}),
        ("%uvextra --check", "check", (None, None, None), {"no_default_groups": None}),  # as the last switch did
    ],
)
def test_arguments_reach_the_core(
    ip,
    capsys,
    calls,
    line: str,
    name: str,
    args: tuple,
    kwargs: dict,
) -> None:
    run(ip, capsys, line)
    [(called, got_args, got_kwargs)] = calls
    assert called == name and got_args == args  # python is always None: the kernel's own environment
    for key, value in kwargs.items():
        assert got_kwargs[key] == value


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def project(make_project) -> Path:
    return make_project()


def test_unknown_extra_lists_the_available_ones(ip, capsys, project: Path) -> None:
    line = one_line(ip, capsys, f"%uvextra --project {project} cuda")
    assert line == "uvextra: unknown extra 'cuda'; this project's extras are: cpu, cu128, pypi"


def test_conflicting_extras(ip, capsys, project: Path) -> None:
    line = one_line(ip, capsys, f"%uvextra --project {project} cpu cu128")
    assert line == "uvextra: extras cpu and cu128 conflict (conflict set: cpu, cu128, pypi); pick one of them"


def test_no_project(ip, capsys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line(ip, capsys, f"%uvextra --project {empty} cpu")
    assert line.startswith(f"uvextra: no pyproject.toml found in {empty}") and "--project DIR" in line


def test_no_uv(ip, capsys, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UVEXTRA_UV", str(tmp_path / "no-such-uv"))
    line = one_line(ip, capsys, f"%uvextra --project {project} cpu")
    assert line.startswith(f"uvextra: UVEXTRA_UV={tmp_path / 'no-such-uv'} does not exist; point it at a uv binary")
    from uvextra.core import uv

    monkeypatch.delenv("UVEXTRA_UV")
    monkeypatch.setattr(uv, "_bundled_uv", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    line = one_line(ip, capsys, f"%uvextra --project {project} cpu")
    assert line.startswith("uvextra: no uv found; install it with `pip install 'uv>=0.9.24'`")


def test_not_in_a_virtual_environment(
    ip,
    capsys,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvextra.core import environment

    monkeypatch.setattr(core, "resolve_environment", environment.resolve_environment)
    monkeypatch.setattr(sys, "base_prefix", sys.prefix)
    line = one_line(ip, capsys, f"%uvextra --project {project} cpu")
    assert "is not in a virtual environment" in line and "start the kernel from the project's .venv" in line


def test_malformed_pyproject(ip, capsys, project: Path) -> None:
    (project / "pyproject.toml").write_text("[project\nname = 'x'\n")
    line = one_line(ip, capsys, f"%uvextra --project {project}")
    assert "invalid TOML" in line and "fix that line and retry" in line


def test_malformed_lock(ip, capsys, project: Path) -> None:
    (project / "uv.lock").write_text("this is = [not a lock\n")
    line = one_line(ip, capsys, f"%uvextra --project {project} --check cpu")
    assert "uv.lock" in line or "could not export the lock" in line


def test_unexpected_errors_are_one_line_with_a_hint(ip, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> Report:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(core, "switch", boom)
    line = one_line(ip, capsys, "%uvextra cpu")
    assert line == "uvextra: unexpected RuntimeError: disk on fire; run `uvextra check` in a terminal for details"
    assert last_outcome() is not None and last_outcome().error == line.removeprefix("uvextra: ")


# ---------------------------------------------------------------------------------------------------- real runs


def test_switch_streams_uv_and_prints_the_report(ip, capsys, project: Path) -> None:
    out, err = run(ip, capsys, f"%uvextra --project {project} cpu")
    assert "  │ Resolved" in out and "  │  + torch==2.9.0+cpu" in out
    assert "extras       cpu — given" in out
    assert "drift        none — installed packages match the lock" in out
    assert "CUDA         CPU build of torch (2.9.0+cpu); CUDA not expected" in out
    assert "kernel       no imported module is stale" in out
    outcome = last_outcome()
    assert outcome is not None and outcome.report.extras == ["cpu"] and outcome.report.clean

    out, err = run(ip, capsys, f"%uvextra --project {project} --check --no-probe pypi")
    assert err == ""
    assert "drift        4 packages differ from the lock:" in out
    assert re.search(r"^  torch +local-version +2\.9\.0\+cpu → 2\.9\.0$", out, re.M)
    assert re.search(r"^  triton +missing +— → 3\.5\.0$", out, re.M)
    assert "next         run `uvextra repair` to reinstall nvidia-cublas-cu12 nvidia-cuda-runtime-cu12 torch" in out


def test_an_interrupt_rechecks_and_says_so(
    ip,
    capsys,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(ip, capsys, f"%uvextra --project {project} --no-probe cpu")

    def interrupted(*args: object, **kwargs: object) -> Report:
        raise KeyboardInterrupt

    monkeypatch.setattr(core, "switch", interrupted)
    out, _ = run(ip, capsys, f"%uvextra --project {project} pypi")
    assert "FAILED       interrupted before uvextra finished; the environment was checked again" in out
    assert re.search(r"^  torch +local-version +2\.9\.0\+cpu → 2\.9\.0$", out, re.M)  # still the cpu build
    assert last_outcome().report.interrupted


# ---------------------------------------------------------------------------------------------------- --user-env


def test_user_env_makes_registers_and_says_which_kernel_to_pick(
    ip,
    capsys: pytest.CaptureFixture[str],
    make_project,
    kernel_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a Jupyter server (a terminal IPython), ``--user-env`` makes the env, layered on the kernel's own,
    registers its kernel and names it; the kernel's environment is not changed."""
    import json

    from uvextra.core import userenv

    monkeypatch.setattr(userenv, "resolve_environment", lambda python=None: kernel_env)
    monkeypatch.setenv("UVEXTRA_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    project = make_project()
    before = sorted(p.name for p in kernel_env.site_packages()[0].iterdir())
    out, err = run(ip, capsys, f"%uvextra cpu --project {project} --no-probe --user-env")
    assert err == "", err
    made = userenv.list_user_envs()
    assert len(made) == 1 and made[0].extras == ("cpu",)
    display = f"{made[0].project_name} (cpu, your env)"
    assert out.strip().splitlines()[-1] == (
        f"uvextra: pick the kernel “{display}” for this notebook (Kernel › Change "
        f"Kernel…, or the kernel picker); kernelspec {made[0].kernelspec}"
    )
    assert str(made[0].prefix) in out  # the card names the environment it changed
    spec = json.loads((tmp_path / "jupyter" / "kernels" / made[0].kernelspec / "kernel.json").read_text())
    assert spec["display_name"] == display
    assert sorted(p.name for p in kernel_env.site_packages()[0].iterdir()) == before
    outcome = last_outcome()
    assert outcome is not None and outcome.error is None and outcome.report is not None
    assert outcome.report.environment == str(made[0].prefix)


def test_user_env_without_a_backend_is_one_line(
    ip,
    capsys: pytest.CaptureFixture[str],
    make_project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UVEXTRA_ENVS_DIR", str(tmp_path / "envs"))
    line = one_line(ip, capsys, f"%uvextra --project {make_project()} --user-env")
    assert line == "uvextra: name the backend for your environment: `%uvextra EXTRA --project DIR --user-env`"
    assert not (tmp_path / "envs").exists()


def test_a_switch_in_a_throwaway_container_env_says_so_once(
    ip,
    capsys: pytest.CaptureFixture[str],
    make_project,
    kernel_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvextra.core import userenv

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the kernel's venv is outside it
    monkeypatch.setattr(userenv, "in_container", lambda environ=None: True)
    project = make_project()
    run(ip, capsys, f"%uvextra cpu --project {project} --no-probe")
    first = last_outcome()
    run(ip, capsys, f"%uvextra pypi --project {project} --no-probe")
    second = last_outcome()
    assert first is not None and first.report is not None and second is not None and second.report is not None
    said = [w for w in first.report.warnings if "lasts until your server restarts" in w]
    assert said == [userenv.throwaway_line(kernel_env, container=True)], first.report.warnings
    assert not [w for w in second.report.warnings if "lasts until your server restarts" in w]
