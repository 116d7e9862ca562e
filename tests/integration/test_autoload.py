"""The default extension: the wheel's startup file loads ``%uvextra`` in every kernel of its environment.

Real wheel (built from this checkout), real ``uv pip install`` into a fresh venv, real kernels started with
jupyter_client from a kernelspec — the way JupyterLab or a hub starts them.
"""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from support.kernels import (
    ROOT,
    STARTUP_FILE,
    Kernel,
    install_wheel,
    kernel_env,
    make_kernel_venv,
    uninstall,
    write_kernelspec,
)

SOURCE = ROOT / "jupyter-config" / "ipython" / "startup" / STARTUP_FILE
HAS_MAGIC = "print('uvextra' in get_ipython().magics_manager.magics['line'])"


@pytest.fixture(scope="module")
def shared_kernel_python(
    tmp_path_factory: pytest.TempPathFactory, uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]
) -> Path:
    """A fresh venv with the uvextra wheel installed (its python)."""
    return make_kernel_venv(tmp_path_factory.mktemp("autoload") / "venv", uvextra_wheel, uv_new, uv_env)


def _kernel(tmp_path: Path, python: Path, **env: str) -> Kernel:
    kernels = tmp_path / "kernels"
    write_kernelspec(kernels, "autoload", python, kernel_env(python, os.environ, tmp_path, **env))
    return Kernel(kernels, "autoload")


def test_wheel_ships_the_startup_file_as_shared_data(uvextra_wheel: Path, shared_kernel_python: Path) -> None:
    with zipfile.ZipFile(uvextra_wheel) as zf:
        names = [n for n in zf.namelist() if "/data/" in n]
    assert names == [f"uvextra-0.1.0.data/data/etc/ipython/startup/{STARTUP_FILE}"]
    installed = shared_kernel_python.parents[1] / "etc" / "ipython" / "startup" / STARTUP_FILE
    assert installed.read_text() == SOURCE.read_text()


def test_kernel_has_the_magic_without_load_ext(tmp_path: Path, shared_kernel_python: Path) -> None:
    with _kernel(tmp_path, shared_kernel_python) as kernel:
        help_ = kernel.execute("%uvextra?")
        assert help_["error"] is None, help_
        assert "%uvextra" in help_["page"] and "--check" in help_["page"], help_["page"][:500]
        state = kernel.execute(
            "import sys\n"
            "print(sys.prefix)\n"
            "print('loaded' if 'uvextra' in get_ipython().extension_manager.loaded else 'missing')\n"
            "print(sorted(n for n in globals() if 'uvextra' in n.lower()))\n"
            # loading stays cheap: nothing heavy is imported until %uvextra runs
            "print(sorted(m for m in ('ipywidgets', 'nbformat', 'uvextra.core.verbs') if m in sys.modules))\n"
        )
    prefix, loaded, leaked, heavy = state["stdout"].splitlines()
    assert Path(prefix) == shared_kernel_python.parents[1]
    assert loaded == "loaded"
    assert leaked == "[]", "the startup file must not leave names in the user's namespace"
    assert heavy == "[]", f"autoload imported heavy modules: {heavy}"
    assert state["stderr"] == ""


def test_opt_out_leaves_the_magic_absent(tmp_path: Path, shared_kernel_python: Path) -> None:
    with _kernel(tmp_path, shared_kernel_python, UVEXTRA_NO_AUTOLOAD="1") as kernel:
        absent = kernel.execute(HAS_MAGIC)
        assert (absent["stdout"], absent["stderr"]) == ("False\n", ""), absent
        assert "not found" in kernel.execute("%uvextra?")["stdout"]
        loaded = kernel.execute("%load_ext uvextra\n%uvextra?")  # still one command away
        assert loaded["error"] is None and "%uvextra" in loaded["page"], loaded


def test_a_failing_load_is_one_warning_line_and_the_kernel_lives(tmp_path: Path, shared_kernel_python: Path) -> None:
    # An earlier startup file makes `import uvextra.magic` fail, as a broken install would.
    startup = shared_kernel_python.parents[1] / "etc" / "ipython" / "startup"
    breaker = startup / "00-break-uvextra.py"
    breaker.write_text("import sys\nsys.modules['uvextra.magic'] = None\n")
    try:
        with _kernel(tmp_path, shared_kernel_python) as kernel:
            first = kernel.execute("1 + 1")
            second = kernel.execute("2 + 2")
    finally:
        breaker.unlink()
    assert first["error"] is None and first["data"] == "2"
    lines = first["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("uvextra: not loaded automatically (ModuleNotFoundError"), lines
    assert "UVEXTRA_NO_AUTOLOAD=1" in lines[0]
    assert second["stderr"] == "" and second["data"] == "4", "the warning is shown once"


def test_terminal_ipython_loads_it_too(tmp_path: Path, shared_kernel_python: Path) -> None:
    env = kernel_env(shared_kernel_python, os.environ, tmp_path)
    code = HAS_MAGIC
    on = subprocess.run(
        [str(shared_kernel_python), "-m", "IPython", "--no-banner", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    off = subprocess.run(
        [str(shared_kernel_python), "-m", "IPython", "--no-banner", "-c", code],
        capture_output=True,
        text=True,
        env={**env, "UVEXTRA_NO_AUTOLOAD": "1"},
        timeout=60,
    )
    assert (on.stdout.strip(), on.stderr) == ("True", "")
    assert (off.stdout.strip(), off.stderr) == ("False", "")


def test_uninstall_removes_the_startup_file(
    tmp_path: Path, uvextra_wheel: Path, uv_new: str, uv_env: dict[str, str]
) -> None:
    python = make_kernel_venv(tmp_path / "venv", uvextra_wheel, uv_new, uv_env)
    startup = tmp_path / "venv" / "etc" / "ipython" / "startup" / STARTUP_FILE
    assert startup.is_file()
    uninstall(python, uv_new, uv_env)
    assert not startup.exists()
    with _kernel(tmp_path, python) as kernel:
        gone = kernel.execute(HAS_MAGIC)
    assert gone["stdout"] == "False\n"
    assert gone["stderr"] == "", "no startup file, no warning"
    install_wheel(python, uvextra_wheel, uv_new, uv_env)  # and back, to show it is the wheel's doing
    assert startup.is_file()


def test_autoload_adds_little_to_kernel_start(tmp_path: Path, shared_kernel_python: Path) -> None:
    """Kernel start to first reply, with and without autoload (medians of 3; loose bound for 2-core CI)."""

    def start_to_reply(**env: str) -> float:
        started = time.perf_counter()
        with _kernel(tmp_path, shared_kernel_python, **env) as kernel:
            kernel.execute("pass")
        return time.perf_counter() - started

    on = sorted(start_to_reply() for _ in range(3))[1]
    off = sorted(start_to_reply(UVEXTRA_NO_AUTOLOAD="1") for _ in range(3))[1]
    print(f"\nkernel start to first reply: autoload {on:.2f} s, opt-out {off:.2f} s, added {on - off:+.3f} s")
    assert on - off < 0.5
