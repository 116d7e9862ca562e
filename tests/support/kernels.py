"""Throwaway kernel venvs for the autoload, notebook and browser tests — never the dev venv.

A notebook that runs ``%uvextra`` changes the kernel's own environment, so these tests start kernels from a fresh
venv of their own:

* uvextra goes in as a real wheel, built offline from this checkout (``uv build --no-build-isolation`` with the
  dev venv's hatchling), so its shared-data lands where a user's install puts it:
  ``<venv>/etc/ipython/startup/90-uvextra.py``;
* its dependencies and ipykernel are *not* installed again (no network): a ``.pth`` file puts the running
  interpreter's site-packages on the venv's ``sys.path``, just before the venv's own. Only what is inside the
  venv's own site-packages is "installed" for uv and for uvextra, so a switch never touches the linked packages,
  and what a switch installs (the demo's stand-in ``typing-extensions``, say) cannot replace what the kernel
  itself runs on. (In a user's venv it can: see ``test_demo_keeps_the_kernel_restartable`` in test_notebooks.py.)

``write_kernelspec`` writes a kernelspec for such a venv (for jupyter_client and for JupyterLab).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_FILE = "90-uvextra.py"
LINK_PTH = "_uvextra_test_link.pth"


def _run(cmd: list[str], env: Mapping[str, str], cwd: Path | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(
        cmd, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def build_uvextra_wheel(uv: str, out_dir: Path, env: Mapping[str, str]) -> Path:
    """The uvextra wheel of this checkout, built offline with the running interpreter's hatchling."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            uv,
            "build",
            "--wheel",
            "--no-build-isolation",
            "--offline",
            "--python",
            sys.executable,
            "--out-dir",
            str(out_dir),
            str(ROOT),
        ],
        env,
        cwd=ROOT,
    )
    wheels = sorted(out_dir.glob("uvextra-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one uvextra wheel in {out_dir}, found {wheels}")
    return wheels[0]


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:  # type: ignore[type-arg]
    """Terminate a server started by a test, killing it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def venv_site_packages(venv: Path) -> Path:
    return next(Path(venv).glob("lib/python3*/site-packages"))


def _linked_paths() -> list[str]:
    # The running interpreter's site-packages (dev venv or CI's env): ipykernel, ipywidgets, uv, packaging, …
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    purelib = sysconfig.get_paths()["purelib"]
    if purelib not in paths and Path(purelib).is_dir():
        paths.append(purelib)
    return paths


def make_kernel_venv(path: Path, wheel: Path, uv: str, env: Mapping[str, str], *, install: bool = True) -> Path:
    """A fresh venv at ``path`` that can run a kernel, with ``wheel`` (uvextra) installed; returns its python."""
    path = Path(path).absolute()
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(path)], env)
    own = str(venv_site_packages(path))
    # A .pth line that starts with "import" is executed; the venv's own site-packages is on sys.path by then.
    line = f"import sys; i = sys.path.index({own!r}); sys.path[i:i] = {_linked_paths()!r}\n"
    (venv_site_packages(path) / LINK_PTH).write_text(line, encoding="utf-8")
    python = path / "bin" / "python"
    if install:
        install_wheel(python, wheel, uv, env)
    return python


def install_wheel(python: Path, wheel: Path, uv: str, env: Mapping[str, str]) -> None:
    _run([uv, "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)], env)


def uninstall(python: Path, uv: str, env: Mapping[str, str], name: str = "uvextra") -> None:
    _run([uv, "pip", "uninstall", "--python", str(python), name], env)


def kernel_env(venv_python: Path, base: Mapping[str, str], home: Path, **extra: str) -> dict[str, str]:
    """Environment of a kernel process: no inherited venv, a private IPython dir (no user startup files), and
    ``FORCE_COLOR=1`` ``CLICOLOR_FORCE=1`` as ipykernel sets them (``extra`` may override)."""
    env = {
        k: v
        for k, v in base.items()
        if k
        not in (
            "VIRTUAL_ENV",
            "UV_PROJECT_ENVIRONMENT",
            "UV_PYTHON",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "UVEXTRA_NO_AUTOLOAD",
            "JPY_PARENT_PID",
            "JPY_SESSION_NAME",
        )
    }
    env["PATH"] = f"{Path(venv_python).parent}{os.pathsep}{env.get('PATH', '')}"
    env["IPYTHONDIR"] = str(home / "ipython")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences debugpy's frozen-modules warning on stderr
    env.update({"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"})  # ipykernel sets both in every kernel it runs
    env.update(extra)
    return env


def write_kernelspec(
    kernels_dir: Path, name: str, python: Path, env: Mapping[str, str] | None = None, display_name: str | None = None
) -> Path:
    """``kernels_dir/name/kernel.json`` starting ipykernel with ``python`` (``env`` is merged by the launcher)."""
    folder = Path(kernels_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, object] = {
        "argv": [str(python), "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name or f"Python ({name})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    if env:
        spec["env"] = dict(env)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder


class Kernel:
    """A real kernel started from a kernelspec, driven through jupyter_client (what a notebook server does)."""

    def __init__(self, kernels_dir: Path, name: str) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(
            kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)])
        )
        self.client = None
        self._log = None

    def start(self, timeout: float = 60) -> Kernel:
        import tempfile

        self._log = tempfile.TemporaryFile(mode="w+", prefix="kernel-log-")
        self.manager.start_kernel(stdout=self._log, stderr=subprocess.STDOUT)
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            output = self.log()
            self.stop()
            raise RuntimeError(f"{exc}; the kernel's output:\n{output}") from None
        return self

    def log(self) -> str:
        """What the kernel process wrote to its stdout/stderr (not what it sent to the frontend)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def execute(self, code: str, timeout: float = 60) -> dict[str, object]:
        """Run ``code``; returns ``{"stdout", "stderr", "error" (ename or None), "page" (pager text), "data"}``."""
        assert self.client is not None, "start() first"
        out: dict[str, list[str]] = {"stdout": [], "stderr": [], "data": []}
        error: list[str] = []

        def hook(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]].append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out["data"].append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error.append(content["ename"] + ": " + content["evalue"])

        reply = self.client.execute_interactive(code, output_hook=hook, timeout=timeout)
        page = "".join(
            p.get("data", {}).get("text/plain", "")
            for p in reply["content"].get("payload", [])
            if p.get("source") == "page"
        )
        if reply["content"]["status"] == "error" and not error:
            error.append(reply["content"].get("ename", "error") + ": " + reply["content"].get("evalue", ""))
        return {
            "stdout": "".join(out["stdout"]),
            "stderr": "".join(out["stderr"]),
            "error": error[0] if error else None,
            "page": page,
            "data": "\n".join(out["data"]),
        }

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=True)
        self.manager.cleanup_resources()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
