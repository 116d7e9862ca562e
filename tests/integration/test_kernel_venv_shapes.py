"""Switches on real environment shapes (issue 9), not only on venvs that hold the project and ipykernel.

* ``pyvenv_kernel``: a kernel venv made the way users make one, ``python3.11 -m venv`` (pip *and* setuptools)
  plus the real ``ipykernel`` from the registry;
* ``hub_like_venv``: the same, plus the Jupyter server stack as users install it (``jupyterlab``, ``nbconvert``,
  ``ipykernel``, ``ipywidgets``, with the dependencies pip/uv resolve through *extras*: ``bleach[css]`` → tinycss2,
  ``jsonschema[format-nongpl]`` → fqdn, isoduration, …), uvextra itself (a real wheel of this checkout) and one
  package an admin installed by hand with pip (``admin-tool``).

Each test drives the real CLI (``python -m uvextra switch EXTRA --project P --python VENV/bin/python --json``) with
the newest uv (and uv 0.9.4) through cpu → cu128 → cpu of the seed-shaped project of ``make_project``, with
``FORCE_COLOR=1 CLICOLOR_FORCE=1`` set as ipykernel sets them, and asserts what a user would see: ``python -m pip``
still works, setuptools / the server stack / the admin's package are still there, ``from nbconvert import
HTMLExporter`` still imports, the old extra's stand-in ``nvidia-*`` packages are gone, and the JSON report names
every removal (``changes.removed``) and the packages it kept because they are not the project's
(``changes.kept_foreign``).

The real packages come from the registry uv is configured with, through uv's default cache (the dev venv has
downloaded most of them already); the project's own packages come from the local stand-in indexes.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from support import localindex
from support.cli import run_cli
from support.run import KERNEL_COLOR_ENV
from support.venvs import dist_infos, site_packages

#: What cu128's torch stand-in needs and cpu's does not: a switch back to cpu must remove exactly these.
CU128_ONLY = {"nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "triton"}
#: What nbconvert / jupyter-events need only through extras (``bleach[css]``, ``jsonschema[format-nongpl]``).
THROUGH_EXTRAS = (
    "tinycss2",
    "fqdn",
    "isoduration",
    "jsonpointer",
    "rfc3987-syntax",
    "uri-template",
    "webcolors",
    "arrow",
    "lark",
)
#: What the hub-like venv holds from the registry, as a user or an image build installs it.
HUB_STACK = ("jupyterlab", "nbconvert", "ipykernel", "ipywidgets")
ADMIN_PACKAGE = "admin-tool"
EXPECTED_TORCH = {"cpu": "torch-2.9.0+cpu.dist-info", "cu128": "torch-2.9.0+cu128.dist-info"}


# ------------------------------------------------------------------------------------------------------ helpers


def _run(cmd: list[str | os.PathLike[str]], env: Mapping[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(os.fspath, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n"
            f"--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


#: uv's words when the registry cannot be reached (then the real-package fixtures skip, saying so).
_UNREACHABLE = (
    "Failed to fetch",
    "error sending request",
    "dns error",
    "tcp connect error",
    "Connection refused",
    "Network is unreachable",
    "the network was disabled",
)


def _registry_install(
    uv: str, python: Path, *packages: str | os.PathLike[str], uv_env: Mapping[str, str], options: tuple[str, ...] = ()
) -> None:
    """``uv pip install`` of real packages from the configured registry, through uv's default cache (warm from the
    dev venv's install); skips when the registry cannot be reached."""
    env = {k: v for k, v in uv_env.items() if k != "UV_CACHE_DIR"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    cmd = [uv, "pip", "install", *options, "--python", os.fspath(python), *map(os.fspath, packages)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        if any(word in proc.stderr for word in _UNREACHABLE):
            pytest.skip(
                f"the package registry is not reachable for {' '.join(map(os.fspath, packages))}: "
                f"{proc.stderr.strip()[-300:]}"
            )
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}", pytrace=False)


def _python311() -> str:
    """A Python 3.11: the one whose ``-m venv`` seeds pip *and* setuptools (3.12+ seeds pip only)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        pytest.skip("needs a Python 3.11 (its `-m venv` gives pip and setuptools): none on PATH")
    return found


def installed(venv: Path) -> dict[str, str]:
    """``{canonical name: version}`` of what is installed in ``venv``'s own site-packages (read from disk)."""
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=[str(site_packages(venv))])
    }


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # what uv itself does from its cache; nothing here writes an installed file in place
    except OSError:
        shutil.copy2(src, dst)


def _rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` without touching the file it may be a hard link of."""
    mode = path.stat().st_mode
    path.unlink()
    path.write_bytes(data)
    path.chmod(mode)


def _copy_venv(template: Path, dest: Path) -> Path:
    """A copy of a venv that works at its new place (scripts' shebangs and pyvenv.cfg point there).

    Hard links, not copies (0.5 s instead of 5 s for ipykernel's ~11k files); every file a test changes is replaced
    as a whole (uv and pip install new files and delete old ones), so the template never changes."""
    shutil.copytree(template, dest, symlinks=True, copy_function=_link_or_copy)
    old, new = os.fsencode(template), os.fsencode(dest)
    for script in (dest / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old in data.split(b"\n", 1)[0]:
            _rewrite(script, data.replace(old, new, 1))
    cfg = dest / "pyvenv.cfg"
    _rewrite(cfg, cfg.read_bytes().replace(old, new))
    return dest


def _pip_works(venv: Path, env: Mapping[str, str]) -> tuple[bool, str]:
    proc = subprocess.run(
        [os.fspath(venv / "bin" / "python"), "-m", "pip", "--version"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-300:]


def _imports(venv: Path, code: str, env: Mapping[str, str]) -> tuple[bool, str]:
    proc = subprocess.run(
        [os.fspath(venv / "bin" / "python"), "-c", code],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode == 0, lines[-1] if lines else ""  # the exception line, when it failed


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def switch(extra: str, project: Path, venv: Path, env: Mapping[str, str]) -> dict[str, object]:
    """``uvextra switch EXTRA --json`` through the real CLI; what the user sees of it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvextra",
            "switch",
            extra,
            "--project",
            os.fspath(project),
            "--python",
            os.fspath(venv / "bin" / "python"),
            "--no-probe",
            "--json",
        ],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            f"switch {extra}: no JSON on stdout (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}",
            pytrace=False,
        )
    return {"code": proc.returncode, "report": report, "stdout": proc.stdout, "stderr": proc.stderr}


def run_sequence(
    project: Path, venv: Path, env: Mapping[str, str], *, extras=("cpu", "cu128", "cpu"), imports: str | None = None
) -> list[dict[str, object]]:
    """Switch through ``extras``; after each, record what was installed/removed and what still works (``imports``:
    code that must still run after the last switch)."""
    steps: list[dict[str, object]] = []
    for extra in extras:
        pre = installed(venv)
        started = time.perf_counter()
        result = switch(extra, project, venv, env)
        took = time.perf_counter() - started
        post = installed(venv)
        report = result["report"]
        changes = report.get("changes", {})  # type: ignore[union-attr]
        step = {
            "extra": extra,
            "code": result["code"],
            "failure": report.get("failure"),  # type: ignore[union-attr]
            "reported_removed": sorted(r["name"] for r in changes.get("removed", [])),
            "gone": sorted(set(pre) - set(post)),
            "kept_foreign": changes.get("kept_foreign"),
            "torch": dist_infos(venv, "torch"),
            "pip": _pip_works(venv, env),
            "ansi_in_stdout": "\x1b" in result["stdout"],  # type: ignore[operator]
            "ansi_in_report": sorted({s[:80] for s in _strings(report) if "\x1b" in s}),
            "ansi_in_stderr": "\x1b" in result["stderr"],  # type: ignore[operator]
            "installed": post,
            "seconds": round(took, 1),
        }
        steps.append(step)
    if imports is not None:  # once, at the end: importing the server stack takes seconds (lark builds a grammar)
        steps[-1]["imports"] = _imports(venv, imports, env)
    return steps


def describe(steps: list[dict[str, object]]) -> str:
    """One line per switch, for assertion messages (and the issue's before/after note)."""
    lines = []
    for s in steps:
        lines.append(
            f"switch {s['extra']} ({s['seconds']} s): exit {s['code']}, removed {s['gone']} "
            f"(report: {s['reported_removed']}), kept_foreign {s['kept_foreign']}, torch {s['torch']}, "
            f"pip {'ok' if s['pip'][0] else 'BROKEN: ' + s['pip'][1]}"  # type: ignore[index]
            + (
                f", imports {'ok' if s['imports'][0] else 'BROKEN: ' + s['imports'][1]}"  # type: ignore[index]
                if "imports" in s
                else ""
            )
            + (f", failure {s['failure']!r}" if s["failure"] else "")
            + (
                ", ANSI escapes in "
                + "/".join(k[8:] for k in ("ansi_in_stdout", "ansi_in_report", "ansi_in_stderr") if s[k])
                if s["ansi_in_stdout"] or s["ansi_in_report"] or s["ansi_in_stderr"]
                else ""
            )
        )
    return "\n".join(lines)


def assert_sequence(venv: Path, steps: list[dict[str, object]], keep: set[str], foreign: set[str]) -> None:
    """What every cpu → cu128 → cpu sequence must show the user."""
    record = describe(steps)
    print(record)  # shown with the failure, and with `-s`: the "what a switch removed" note of issue 9
    for s in steps:
        assert s["code"] == 0, record
        assert s["torch"] == [EXPECTED_TORCH[s["extra"]]], record  # type: ignore[index]
        # The report names every package the switch removed, and nothing it did not remove.
        assert s["reported_removed"] == s["gone"], record
        # A kernel's `%pip` keeps working: pip (and what must stay with it) is not the project's.
        assert s["pip"][0], record  # type: ignore[index]
        missing = sorted(keep - set(s["installed"]))  # type: ignore[arg-type]
        assert not missing, f"removed, not the project's: {missing}\n{record}"
        if "imports" in s:
            assert s["imports"][0], record  # type: ignore[index]
        # The report says what it kept because it is not from this project.
        kept_foreign = s["kept_foreign"]
        assert kept_foreign is not None, f"the JSON report has no changes.kept_foreign\n{record}"
        assert foreign <= {canonicalize_name(n) for n in kept_foreign}, record  # type: ignore[union-attr]
        # FORCE_COLOR=1 CLICOLOR_FORCE=1 are set (as in a kernel): still no colour codes in what the CLI writes.
        assert not s["ansi_in_stdout"] and not s["ansi_in_report"], f"ANSI escapes: {s['ansi_in_report']}"
    # cpu first: nothing of the project was there, so nothing is removed; cpu → cu128 adds only.
    assert [s["gone"] for s in steps[:2]] == [[], []], record
    # Back to cpu: exactly the cu128-only stand-ins go (their dist-info folders are gone), nothing else.
    assert set(steps[2]["gone"]) == CU128_ONLY, record  # type: ignore[arg-type]
    assert [d for n in sorted(CU128_ONLY) for d in dist_infos(venv, n)] == [], record


# ----------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def _pyvenv_template(tmp_path_factory: pytest.TempPathFactory, uv_new: str, uv_env: dict[str, str]) -> Path:
    """``python3.11 -m venv`` + the real ipykernel, once per session (``pyvenv_kernel`` hands out copies)."""
    venv = tmp_path_factory.mktemp("pyvenv-template") / "kernel-venv"
    _run([_python311(), "-m", "venv", venv], uv_env, timeout=180)
    seeded = installed(venv)
    assert {"pip", "setuptools"} <= set(seeded), f"python3.11 -m venv seeded {sorted(seeded)}, not pip+setuptools"
    _registry_install(uv_new, venv / "bin" / "python", "ipykernel", uv_env=uv_env)
    assert "ipykernel" in installed(venv)
    return venv


@pytest.fixture
def pyvenv_kernel(_pyvenv_template: Path, tmp_path: Path) -> Path:
    """A kernel venv as users make one: ``python3.11 -m venv`` (pip, setuptools) + real ipykernel; a fresh copy."""
    return _copy_venv(_pyvenv_template, tmp_path / "kernel-venv")


@pytest.fixture(scope="module")
def hub_like_venv(
    tmp_path_factory: pytest.TempPathFactory,
    _pyvenv_template: Path,
    uv_new: str,
    uv_env: dict[str, str],
    uvextra_wheel: Path,
) -> Path:
    """A kernel env shaped like a JupyterHub image's: the server stack, uvextra, and an admin's own package.

    Built once per module on a copy of the ``python3.11 -m venv`` template (about 10-20 s more); the one test that
    uses it runs its whole sequence on it.
    """
    root = tmp_path_factory.mktemp("hub-like")
    venv = _copy_venv(_pyvenv_template, root / "venv")
    python = venv / "bin" / "python"
    # As users install it: the stack and uvextra (with its dependencies) in one resolution.
    # --compile-bytecode as pip does (and this machine sets PYTHONDONTWRITEBYTECODE): every import check is seconds.
    _registry_install(uv_new, python, *HUB_STACK, uvextra_wheel, uv_env=uv_env, options=("--compile-bytecode",))
    # Installed by hand by an admin, with pip, from a folder of wheels.
    wheels = root / "admin-wheels"
    localindex.build_wheel(wheels, ADMIN_PACKAGE, "1.0", {"admin_tool/__init__.py": '"""An admin\'s tool."""\n'})
    _run([python, "-m", "pip", "install", "--no-index", "--find-links", wheels, ADMIN_PACKAGE], uv_env)
    names = set(installed(venv))
    assert {"pip", "setuptools", ADMIN_PACKAGE, "uvextra", *HUB_STACK} <= names, sorted(names)
    assert {"tinycss2", "fqdn", "jsonpointer"} <= names, f"the stack's extras were not resolved: {sorted(names)}"
    ok, out = _imports(venv, "from nbconvert import HTMLExporter", uv_env)
    assert ok, out
    return venv


# -------------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("which", ["new", "uv-0.9.4"])
def test_python_venv_kernel_keeps_pip_and_setuptools(
    which: str, request: pytest.FixtureRequest, pyvenv_kernel: Path, make_project, uv_env: dict[str, str], uv_new: str
) -> None:
    """A `python -m venv` kernel env: cpu → cu128 → cpu leaves pip and setuptools, removes only the cu128 stand-ins."""
    uv = uv_new if which == "new" else request.getfixturevalue("uv_old")
    assert set(KERNEL_COLOR_ENV.items()) <= set(uv_env.items())
    project = make_project()
    steps = run_sequence(project, pyvenv_kernel, dict(uv_env, UVEXTRA_UV=uv))
    assert_sequence(pyvenv_kernel, steps, keep={"pip", "setuptools", "ipykernel"}, foreign={"pip", "setuptools"})


def test_hub_like_venv_keeps_the_server_stack_and_what_an_admin_installed(
    hub_like_venv: Path, make_project, uv_env: dict[str, str], uv_new: str
) -> None:
    """A hub-shaped kernel env: after cpu → cu128 → cpu, pip, nbconvert (with its extras' dependencies), the
    admin's package and uvextra are all still there and work; only the cu128 stand-ins went."""
    before = installed(hub_like_venv)
    through_extras = {n for n in THROUGH_EXTRAS if n in before}
    project = make_project()
    steps = run_sequence(
        project, hub_like_venv, dict(uv_env, UVEXTRA_UV=uv_new), imports="from nbconvert import HTMLExporter"
    )
    keep = {"pip", "setuptools", ADMIN_PACKAGE, "uvextra", *HUB_STACK, *through_extras}
    assert_sequence(hub_like_venv, steps, keep=keep, foreign={"pip", ADMIN_PACKAGE})
    # Everything that was there before and is not the project's is still there, at the same version.
    after = steps[-1]["installed"]
    changed = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}  # type: ignore[union-attr]
    assert not changed, f"changed or removed, not the project's: {changed}\n{describe(steps)}"


def test_piped_cli_writes_no_colour_codes_with_the_kernels_colour_variables(
    pyvenv_kernel: Path, index_root: Path, make_project, tmp_path: Path, uv_env: dict[str, str], uv_new: str
) -> None:
    """FORCE_COLOR=1 CLICOLOR_FORCE=1 (as in every kernel): uv's lines, the card and a failure headline stay plain
    text when the CLI's output is a pipe, on success and when uv fails (its error text is the coloured part)."""
    from support.localindex import IndexServer

    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
    assert set(KERNEL_COLOR_ENV.items()) <= set(env.items())
    python = os.fspath(pyvenv_kernel / "bin" / "python")
    with IndexServer(index_root) as own:
        project = make_project(
            {e: own.simple_url(e) for e in ("cpu", "cu128", "pypi")}, default_index=own.simple_url("pypi")
        )

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return run_cli(*args, "--project", project, "--python", python, "--no-probe", env=env, timeout=300)

        ok = cli("switch", "cpu")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        own.stop()  # the index goes away: uv fails, and its (coloured) error text reaches uvextra
        failed_text = cli("switch", "cu128")
        failed_json = cli("switch", "cu128", "--json")
    assert failed_text.returncode == 1 and failed_json.returncode == 1, failed_text.stdout + failed_text.stderr
    report = json.loads(failed_json.stdout)
    assert report["failure"], report
    for name, text in [
        ("success stdout", ok.stdout),
        ("success stderr", ok.stderr),
        ("failure stdout", failed_text.stdout),
        ("failure stderr", failed_text.stderr),
        ("failure --json stdout", failed_json.stdout),
        ("failure --json strings", "\n".join(_strings(report))),
    ]:
        assert "\x1b" not in text, f"ANSI escapes in the {name}:\n{text!r}"
