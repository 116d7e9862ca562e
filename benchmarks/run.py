#!/usr/bin/env python3
"""uvextra benchmarks: every figure next to uv itself (or the usual workaround), measured in the same run.

    python benchmarks/run.py            # full run, about 4 minutes; writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # small sizes, few repeats, under a minute; prints only

Options: ``--only B1,B5`` runs some cases, ``--out FILE`` writes the markdown there (a quick run writes nothing
unless asked), ``--keep`` keeps the work folder. Each figure is the median of repeated runs after a warm-up; the
uvextra side and the uv side are interleaved run by run so that both see the same machine.

Everything is built here, offline: real wheels (``build_wheel`` of the test harness, ``tests/support/localindex.py``)
served as PEP 503 indexes on 127.0.0.1, real ``uv``, real venvs, a real IPython and real Jupyter kernels. The large
B5 wheels are cached in ``~/.cache/uvextra-bench`` (``$UVEXTRA_BENCH_CACHE``) so reruns are fast; the per-run work
folder (venvs, uv's cache) lives beside it and is removed at the end. Benchmarks are not tests: nothing fails on a time.

Cases (see issue 5):
  B1  drift check in-process on a synced env (the seed project)  vs  a no-op ``uv sync --dry-run --extra X``
  B2  full switch (sync + check + state), no probe                vs  bare ``uv sync --extra X``, same switch
  B3  drift check on a synthetic lock + env of N packages         vs  itself: cost per package
  B4  ``%load_ext uvextra``; kernel start with the auto-load      vs  IPython alone / the kernel without it
  B5  repair of a stale torch build in a 27-package torch-shaped env
                                                                  vs  ``rm -rf .venv && uv sync``, ``uv sync --reinstall``
  B6  check with the CUDA probe run in parallel                   vs  the check alone (and the probe alone)
  B7  `python -m uvextra check --json`, the whole process          vs  a no-op ``uv sync --dry-run``, the whole process
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:
    import uvextra  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the test harness: wheels, indexes, projects

from support import localindex as li  # noqa: E402

RESULTS = HERE / "RESULTS.md"
CASES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
# What would send uv (or IPython / Jupyter) somewhere other than the folders this run made.
_DROPPED_ENV = (
    "VIRTUAL_ENV",
    "UV_PYTHON",
    "UV_PROJECT_ENVIRONMENT",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_OFFLINE",
    "UV_FROZEN",
    "UV_LOCKED",
    "UV_PROJECT",
    "UV_SYSTEM_PYTHON",
    "UV_LINK_MODE",
    "UV_COMPILE_BYTECODE",
    "UVEXTRA_UV",
    "UVEXTRA_NO_AUTOLOAD",
    "UVEXTRA_FAKE_TORCH_CRASH",
    "UVEXTRA_FAKE_TORCH_HANG",
    "UVEXTRA_FAKE_GPU",
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",  # users' interpreters cache bytecode: B4 and B6 import from .pyc after the warm-up
)


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Config:
    quick: bool
    repeats: int  # timed runs per case (after `warmup` untimed ones)
    warmup: int
    b3_sizes: tuple[int, ...]
    b4_shell_runs: int  # fresh processes for %load_ext
    b4_kernel_runs: int  # kernel starts per side
    b5_repeats: int
    b5_torch_mb: float  # installed size of the stand-in torch's big file
    b5_nvidia_mb: tuple[float, ...]  # one nvidia-* stub per entry
    b5_torch_files: int  # small modules inside torch besides the big file


FULL = Config(
    quick=False,
    repeats=9,
    warmup=2,
    b3_sizes=(100, 1000, 5000),
    b4_shell_runs=9,
    b4_kernel_runs=7,
    b5_repeats=5,
    b5_torch_mb=80,
    b5_nvidia_mb=(30, 24, 18, 14, 12, 10),
    b5_torch_files=1500,
)
QUICK = Config(
    quick=True,
    repeats=3,
    warmup=1,
    b3_sizes=(100, 300, 1000),
    b4_shell_runs=3,
    b4_kernel_runs=1,
    b5_repeats=1,
    b5_torch_mb=3,
    b5_nvidia_mb=(1.5, 1, 1, 0.5, 0.5, 0.5),
    b5_torch_files=100,
)


# ------------------------------------------------------------------------------------------------ results


@dataclass
class Row:
    case: str  # "B1" … "B7"
    what: str
    ours: float | None  # ms (median)
    base_label: str
    base: float | None  # ms (median)
    figure: str  # the ratio / delta against the baseline
    target: str
    met: bool | None  # None: not judged (n/a)
    note: str = ""


@dataclass
class Results:
    cfg: Config
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def detail(self, text: str) -> None:
        self.details.append(text)


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


def spread(samples: Sequence[float]) -> str:
    ms = sorted(s * 1000.0 for s in samples)
    return f"median {fmt_ms(statistics.median(ms))}, min {fmt_ms(ms[0])}, max {fmt_ms(ms[-1])}, n={len(ms)}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if abs(ms) >= 100:
        return f"{ms:,.0f}"
    if abs(ms) >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "n/a"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    cfg: Config,
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int | None = None,
    warmup: int | None = None,
    setup: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Run every function once per round (after its own untimed ``setup``), rounds after untimed warm-up rounds."""
    repeats = cfg.repeats if repeats is None else repeats
    warmup = cfg.warmup if warmup is None else warmup
    setup = setup or {}
    out: dict[str, list[float]] = {k: [] for k in fns}
    for n in range(warmup + repeats):
        names = list(fns) if n % 2 == 0 else list(reversed(fns))  # alternate who goes first
        for name in names:
            if name in setup:
                setup[name]()
            elapsed = timed(fns[name])
            if n >= warmup:
                out[name].append(elapsed)
    return out


# ------------------------------------------------------------------------------------------------ the bench


def uv_clean_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in _DROPPED_ENV and not k.startswith(("UV_INDEX_", "PIP_"))
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


class Bench:
    """The shared pieces: the work folder, uv, the seed indexes and their server, venv helpers."""

    def __init__(self, cfg: Config, cache_root: Path, keep: bool, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.say = say
        self.keep = keep
        self.cache_root = cache_root
        cache_root.mkdir(parents=True, exist_ok=True)
        for old in cache_root.glob("work-*"):  # left behind by a run that was killed (a day ago or more)
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > 86_400:
                    shutil.rmtree(old, ignore_errors=True)
        self.work = Path(tempfile.mkdtemp(prefix="work-", dir=cache_root))
        # This process is the benchmark's own: uvextra's core reads os.environ for uv, so clean it here.
        clean = uv_clean_environ()
        clean["UV_CACHE_DIR"] = str(self.work / "uv-cache")
        for key in set(os.environ) - set(clean):
            del os.environ[key]
        os.environ.update(clean)
        from uvextra.core.uv import find_uv

        self.uv = find_uv()
        self.python = sys.executable
        self._stack = contextlib.ExitStack()
        self._seed_server: li.IndexServer | None = None

    def close(self) -> None:
        self._stack.close()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            self.say(f"kept the work folder {self.work}")

    # -- uv
    def uv_run(
        self,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        venv: Path | None = None,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if venv is not None:
            env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        env.update(extra_env or {})
        proc = subprocess.run(
            [self.uv.path, *map(os.fspath, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"uv {' '.join(map(os.fspath, args))} exited {proc.returncode}: {proc.stderr[-800:]}")
        return proc

    def venv(self, name: str) -> Path:
        path = self.work / "venvs" / name
        self.uv_run("venv", "--quiet", "--python", self.python, path)
        return path

    # -- the seed project (astral-sh/uv#16368's shape, on the demo indexes)
    @property
    def seed_server(self) -> li.IndexServer:
        if self._seed_server is None:
            root = self.work / "seed-indexes"
            li.build_demo_indexes(root, kernelish=True)
            self._seed_server = self._stack.enter_context(li.IndexServer(root))
        return self._seed_server

    def seed_project(self, name: str, extras: Sequence[str] = ("cpu", "cu128", "pypi")) -> Path:
        server = self.seed_server
        path = self.work / "projects" / name
        li.write_project(
            path,
            {e: server.simple_url(e) for e in extras},
            extras=tuple(extras),
            default_index=server.simple_url("pypi"),
        )
        self.uv_run("lock", "--quiet", cwd=path)
        return path


def py(venv: Path) -> str:
    return str(venv / "bin" / "python")


def site_packages(venv: Path) -> Path:
    return sorted(venv.glob("lib/python3*/site-packages"))[0]


def installed_versions(venv: Path) -> dict[str, str]:
    out = {}
    for d in site_packages(venv).glob("*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].partition("-")
        out[name.lower()] = version
    return out


def torch_build_label(venv: Path) -> str:
    for line in (site_packages(venv) / "torch" / "__init__.py").read_text().splitlines():
        if line.startswith("_build"):
            return line.split("=", 1)[1].strip().strip("'\"")
    return "?"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# ------------------------------------------------------------------------------------------------ B1


def case_b1(b: Bench, res: Results) -> None:
    """The drift check on an already-synced seed env, in-process, against a no-op `uv sync --dry-run`."""
    from uvextra.core import verbs as core

    project = b.seed_project("b1")
    venv = b.venv("b1")
    report = core.switch(["pypi"], project, py(venv), probe=False)
    require(report.failure is None and report.clean, f"B1 setup switch failed: {report.failure} {report.drift}")

    def ours() -> None:
        r = core.check(project, py(venv))
        require(r.clean and r.extras == ["pypi"], f"B1 check not clean: {r.drift}")

    def uv_dry_run() -> None:
        b.uv_run("sync", "--dry-run", "--extra", "pypi", cwd=project, venv=venv)

    out = b.uv_run("sync", "--dry-run", "--extra", "pypi", cwd=project, venv=venv)
    require("Would make no changes" in out.stderr + out.stdout, f"B1 baseline is not a no-op: {out.stderr}")
    t = interleaved(b.cfg, {"ours": ours, "uv": uv_dry_run}, repeats=b.cfg.repeats * 2)
    a, u = median_ms(t["ours"]), median_ms(t["uv"])
    res.rows.append(
        Row(
            "B1",
            "drift check, in-process, synced seed env (pypi extra, 7 packages)",
            a,
            "`uv sync --dry-run --extra pypi` (no-op)",
            u,
            ratio(a, u),
            "≤ 1.5×",
            a / u <= 1.5,
        )
    )
    res.detail(f"B1 check: {spread(t['ours'])}; uv sync --dry-run: {spread(t['uv'])}")


# ------------------------------------------------------------------------------------------------ B2


def case_b2(b: Bench, res: Results) -> None:
    """A whole switch without the probe against bare `uv sync --extra X` doing the same switch, wheels cached."""
    from uvextra.core import verbs as core

    project = b.seed_project("b2")
    ours_venv, uv_venv = b.venv("b2-uvextra"), b.venv("b2-uv")
    # A kernel's venv: ipykernel (a stand-in, with tornado and comm) installed outside the lock, which uvextra keeps
    # (`sync --inexact` + `uv pip uninstall` of the rest: two uv runs when something must go).
    kernel_venv = b.venv("b2-kernel")
    b.uv_run(
        "pip",
        "install",
        "--quiet",
        "--python",
        py(kernel_venv),
        "--index-url",
        b.seed_server.simple_url(li.KERNELISH_INDEX),
        "ipykernel",
    )

    def ours(extra: str, venv: Path) -> Callable[[], None]:
        def run() -> None:
            r = core.switch([extra], project, py(venv), probe=False)
            require(r.failure is None and not r.errors, f"B2 switch {extra} failed: {r.failure} {r.drift}")

        return run

    def bare(extra: str, venv: Path) -> Callable[[], None]:
        def run() -> None:
            b.uv_run("sync", "--extra", extra, cwd=project, venv=venv)

        return run

    sides = {"ours": (ours, ours_venv), "kernel": (ours, kernel_venv), "uv": (bare, uv_venv)}
    for extra in ("cpu", "pypi", "cpu"):  # fill uv's cache and uvextra's export cache
        for make, venv in sides.values():
            make(extra, venv)()
    # One round: cpu→pypi then pypi→cpu on each side; the order of the sides rotates.
    t: dict[str, list[float]] = {f"{side} {d}": [] for side in sides for d in ("cpu→pypi", "pypi→cpu")}
    names = list(sides)
    for n in range(1 + b.cfg.repeats):
        for side in names[n % 3 :] + names[: n % 3]:
            make, venv = sides[side]
            up, down = timed(make("pypi", venv)), timed(make("cpu", venv))
            if n:
                t[f"{side} cpu→pypi"].append(up)
                t[f"{side} pypi→cpu"].append(down)
    for venv in (uv_venv, ours_venv, kernel_venv):
        require(installed_versions(venv)["torch"] == "2.9.0+cpu", f"B2: {venv.name} did not switch torch")
    require("ipykernel" in installed_versions(kernel_venv), "B2: the kernel's ipykernel was not kept")
    rows = (
        ("ours", "cpu→pypi", ""),
        ("ours", "pypi→cpu", ""),
        ("kernel", "pypi→cpu", " in a kernel's venv (ipykernel outside the lock, kept)"),
    )
    for side, direction, where in rows:
        a, u = median_ms(t[f"{side} {direction}"]), median_ms(t[f"uv {direction}"])
        res.rows.append(
            Row(
                "B2",
                f"switch {direction}{where} (sync + check + state, no probe)",
                a,
                "bare `uv sync --extra X`, same switch, cached wheels",
                u,
                f"{a - u:+.1f} ms ({ratio(a, u)})",
                "≤ +50 ms",
                a - u <= 50,
            )
        )
    for key, times in t.items():
        res.detail(f"B2 {key}: {spread(times)}")
    res.detail(
        "B2: bare `uv sync` is exact — in a kernel's venv it uninstalls ipykernel and everything else the "
        "lock lacks; uvextra keeps the kernel's closure, so there it runs `uv sync --inexact` and then "
        "`uv pip uninstall` for what must go (in a venv without a kernel, one exact `uv sync`)"
    )


# ------------------------------------------------------------------------------------------------ B3

_SYNTH_INDEX = "http://127.0.0.1:9/simple/"  # never contacted: it only has to look like a registry URL


@dataclass
class Synthetic:
    n: int
    project_root: Path
    env_prefix: Path
    pylock_text: str


_BINARY_TAGS = (
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp311-cp311-manylinux_2_17_aarch64",
    "cp311-cp311-macosx_11_0_arm64",
    "cp311-cp311-win_amd64",
)
_README = (
    "An example package of the benchmark's synthetic environment. It is shaped like a typical PyPI "
    "project's metadata: a summary, project URLs, classifiers, requirements and a long description.\n\n"
)


def make_synthetic(root: Path, n: int, seed: int = 5) -> Synthetic:
    """A lock (uv.lock + its pylock export) and a matching env of ``n`` packages, written the way uv writes them.

    Shaped like real projects: 30 % of the packages are binary (an sdist and four platform wheels in the lock,
    one of which fits this interpreter), the rest pure (an sdist and one ``py3-none-any`` wheel); every METADATA
    has ~25 header lines and a ~3 KB description; RECORD lists 10–60 files; 0–3 dependencies each.
    """
    rng = random.Random(seed * 100_003 + n)
    root.mkdir(parents=True, exist_ok=True)
    prefix = root / "venv"
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (prefix / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    names = [f"pkg-{i:05d}" for i in range(n)]
    deps = {
        name: sorted(rng.sample(names[i + 1 :], min(len(names) - i - 1, rng.randint(0, 3))))
        for i, name in enumerate(names)
    }
    files_base = _SYNTH_INDEX.rsplit("/simple/", 1)[0] + "/files/"
    pylock = ['lock-version = "1.0"', 'created-by = "uv"', 'requires-python = ">=3.11"', ""]
    uvlock = ["version = 1", "revision = 3", 'requires-python = ">=3.11"', ""]
    for i, name in enumerate(names):
        version = f"1.{i % 7}.{i}"
        dist = name.replace("-", "_")
        binary = rng.random() < 0.3
        tags = _BINARY_TAGS if binary else ("py3-none-any",)
        wheels = [
            (
                f"{dist}-{version}-{tag}.whl",
                hashlib.sha256(f"{dist}{version}{tag}".encode()).hexdigest(),
                rng.randint(10_000, 5_000_000),
            )
            for tag in tags
        ]
        sdist = (f"{dist}-{version}.tar.gz", hashlib.sha256(f"{dist}{version}sdist".encode()).hexdigest())
        pylock += [
            "[[packages]]",
            f'name = "{name}"',
            f'version = "{version}"',
            f'index = "{_SYNTH_INDEX}"',
            f'sdist = {{ url = "{files_base}{sdist[0]}", upload-time = 2025-01-01T00:00:00Z, '
            f'size = 123456, hashes = {{ sha256 = "{sdist[1]}" }} }}',
            "wheels = [",
        ]
        pylock += [
            f'    {{ url = "{files_base}{w}", upload-time = 2025-01-01T00:00:00Z, size = {size}, '
            f'hashes = {{ sha256 = "{h}" }} }},'
            for w, h, size in wheels
        ]
        pylock += ["]", ""]
        uvlock += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "{version}"',
            f'source = {{ registry = "{_SYNTH_INDEX}" }}',
        ]
        if deps[name]:
            uvlock += ["dependencies = ["] + [f'    {{ name = "{d}" }},' for d in deps[name]] + ["]"]
        uvlock += [
            f'sdist = {{ url = "{files_base}{sdist[0]}", hash = "sha256:{sdist[1]}", size = 123456, '
            'upload-time = "2025-01-01T00:00:00.000Z" }',
            "wheels = [",
        ]
        uvlock += [
            f'    {{ url = "{files_base}{w}", hash = "sha256:{h}", size = {size}, '
            'upload-time = "2025-01-01T00:00:00.000Z" },'
            for w, h, size in wheels
        ]
        uvlock += ["]", ""]
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        meta = [
            "Metadata-Version: 2.4",
            f"Name: {name}",
            f"Version: {version}",
            f"Summary: synthetic package {i} of the uvextra benchmarks",
            f"Author-email: Dev {i} <dev{i}@example.org>",
            "License-Expression: MIT",
            "Project-URL: Homepage, https://example.org/",
            f"Project-URL: Source, https://example.org/{name}",
            f"Project-URL: Issues, https://example.org/{name}/i",
            "Classifier: Development Status :: 5 - Production/Stable",
            "Classifier: Intended Audience :: Developers",
            "Classifier: License :: OSI Approved :: MIT License",
            "Classifier: Operating System :: OS Independent",
            "Classifier: Programming Language :: Python :: 3",
            "Classifier: Programming Language :: Python :: 3.11",
            "Classifier: Programming Language :: Python :: 3.12",
            "Classifier: Topic :: Software Development",
            "Requires-Python: >=3.9",
        ]
        meta += [f"Requires-Dist: {d}>=1.0" for d in deps[name]]
        meta += [
            "Provides-Extra: test",
            'Requires-Dist: pytest>=8; extra == "test"',
            "Description-Content-Type: text/markdown",
        ]
        body = f"# {name}\n\n" + _README * 10
        (info / "METADATA").write_text("\n".join(meta) + "\n\n" + body)
        tag = next(t for t in tags if "x86_64" in t or t == "py3-none-any")
        interp, abi, plats = tag.split("-")
        (info / "WHEEL").write_text(
            f"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: {str(not binary).lower()}\n"
            + "".join(f"Tag: {interp}-{abi}-{p}\n" for p in plats.split("."))
        )
        (info / "INSTALLER").write_text("uv\n")
        (info / "REQUESTED").write_text("")
        record = [
            f"{dist}/m{j}.py,sha256={hashlib.sha256(f'{name}{j}'.encode()).hexdigest()[:43]},{100 + j}"
            for j in range(rng.randint(10, 60))
        ]
        record += [
            f"{dist}-{version}.dist-info/{f}" + (",," if f == "RECORD" else f",sha256={sdist[1][:43]},99")
            for f in ("INSTALLER", "METADATA", "REQUESTED", "WHEEL", "RECORD")
        ]
        (info / "RECORD").write_text("\n".join(record) + "\n")
    project = root / "project"
    project.mkdir(exist_ok=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "synthetic"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )
    (project / "uv.lock").write_text("\n".join(uvlock))
    text = "\n".join(pylock)
    (root / "pylock.toml").write_text(text)
    return Synthetic(n, project, prefix, text)


def synthetic_check(
    s: Synthetic, *, recorded: bool, prepare: bool = True
) -> tuple[Callable[[], object], dict[str, list[float]]]:
    """``core._check_into`` minus the `uv export` call (which uvextra caches on disk by the lock's content)."""
    from uvextra.core.drift import classify
    from uvextra.core.environment import Environment, interpreter_info
    from uvextra.core.installed import scan
    from uvextra.core.lock import read_uv_lock, wanted_from_pylock
    from uvextra.core.project import load_project
    from uvextra.core.protect import kernel_closure
    from uvextra.core.state import Provenance, State, load_state, save_state

    env = Environment(prefix=s.env_prefix, python=Path(sys.executable))
    project = load_project(s.project_root)
    pylock_file = s.project_root.parent / "pylock.toml"
    if prepare and recorded:  # what a switch leaves behind: a provenance record per package
        wanted = wanted_from_pylock(s.pylock_text, project, env)
        installed = scan(env)
        state = State(extras=[], project=str(project.root))
        for name, w in wanted.items():
            state.packages[name] = Provenance(
                version=installed[name].version,
                source=w.kind,
                index=w.index,
                wheel=w.wheel,
                sha256=w.wheel_hash,
                fingerprint=installed[name].fingerprint,
            )
        require(save_state(env, state), "B3: cannot write the synthetic state")
    elif prepare:
        shutil.rmtree(env.state_dir, ignore_errors=True)
    stages: dict[str, list[float]] = {k: [] for k in ("state", "wanted", "scan", "protect", "uv.lock", "classify")}

    def run() -> None:
        t0 = time.perf_counter()
        state = load_state(env)
        t1 = time.perf_counter()
        wanted = wanted_from_pylock(pylock_file.read_text(encoding="utf-8"), project, env)
        t2 = time.perf_counter()
        installed = scan(env)
        t3 = time.perf_counter()
        protected = kernel_closure(installed, interpreter_info(str(env.python)).marker_env)
        t4 = time.perf_counter()
        lock = read_uv_lock(project, env)
        t5 = time.perf_counter()
        drift, unverified = classify(wanted, installed, records=state.packages, lock=lock, protected=protected)
        t6 = time.perf_counter()
        for key, a, z in (
            ("state", t0, t1),
            ("wanted", t1, t2),
            ("scan", t2, t3),
            ("protect", t3, t4),
            ("uv.lock", t4, t5),
            ("classify", t5, t6),
        ):
            stages[key].append(z - a)
        require(len(wanted) == s.n and len(installed) == s.n, "B3: synthetic sizes do not match")
        require(not drift and not unverified, f"B3: synthetic env drifts: {drift[:3]} {unverified[:3]}")
        require(len(state.packages) == (s.n if recorded else 0), "B3: state not read")

    return run, stages


_COLD_SCRIPT = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import run as bench
args = json.loads(sys.argv[2])
s = bench.Synthetic(args["n"], Path(args["project"]), Path(args["prefix"]), "")
check, stages = bench.synthetic_check(s, recorded=args["recorded"], prepare=False)
t = time.perf_counter()
check()
print(json.dumps({"t": time.perf_counter() - t, "stages": {k: v[0] for k, v in stages.items()}}))
"""


def cold_check(s: Synthetic, recorded: bool) -> tuple[float, dict[str, float]]:
    """The first check in a new process (nothing parsed yet): what a fresh kernel's first check costs."""
    args = json.dumps({"n": s.n, "project": str(s.project_root), "prefix": str(s.env_prefix), "recorded": recorded})
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_SCRIPT, str(HERE), args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    require(proc.returncode == 0, f"B3 cold check failed: {proc.stderr[-600:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["t"], data["stages"]


def case_b3(b: Bench, res: Results) -> None:
    """Cost per package of the drift check on synthetic locks and envs: repeated (in a kernel) and first."""
    sizes = b.cfg.b3_sizes
    warm: dict[int, float] = {}
    cold: dict[int, float] = {}
    for n in sizes:
        synth = make_synthetic(b.work / f"synthetic-{n}", n)
        w, c = [], []
        for recorded in (True, False):
            run, stages = synthetic_check(synth, recorded=recorded)
            reps = b.cfg.repeats if n <= 1000 else max(3, b.cfg.repeats // 2)
            t = interleaved(b.cfg, {"check": run}, repeats=reps)
            w.append(median_ms(t["check"]))
            parts = ", ".join(f"{k} {fmt_ms(median_ms(v[-reps:]))}" for k, v in stages.items())
            mode = "with provenance records" if recorded else "no records (first check ever)"
            res.detail(f"B3 n={n:,} {mode}, repeated check: {spread(t['check'])}; stages (ms): {parts}")
            cold_runs = [cold_check(synth, recorded) for _ in range(1 if b.cfg.quick else 2 if n > 1000 else 3)]
            c.append(statistics.median(r[0] for r in cold_runs) * 1000)
            first = cold_runs[0][1]
            res.detail(
                f"B3 n={n:,} {mode}, first check in a new process: {spread([r[0] for r in cold_runs])}; "
                "stages (ms): " + ", ".join(f"{k} {fmt_ms(v * 1000)}" for k, v in first.items())
            )
        warm[n], cold[n] = max(w), max(c)
    first_marginal = None
    for i, n in enumerate(sizes):
        what = f"drift check, synthetic lock + env of {n:,} packages, repeated (a kernel's later checks)"
        figure = f"{warm[n] / n * 1000:.0f} µs/pkg"
        if i == 0:
            res.rows.append(Row("B3", what, warm[n], "itself: cost per package", None, figure, "—", None))
            continue
        prev = sizes[i - 1]
        marginal = (warm[n] - warm[prev]) / (n - prev) * 1000
        figure += f"; +{marginal:.0f} µs per added package ({prev:,}→{n:,})"
        target, met = "—", None
        if first_marginal is None:
            first_marginal = marginal
        else:
            figure += f" vs +{first_marginal:.0f} ({sizes[0]:,}→{sizes[1]:,})"
            target, met = "linear (≤ 1.5× the first step's cost per package)", marginal <= 1.5 * max(first_marginal, 1)
        if n == 1000:
            target = "≤ 150 ms" + ("; " + target if met is not None else "")
            met = warm[n] <= 150 and met is not False
        res.rows.append(Row("B3", what, warm[n], f"itself at {prev:,} packages", warm[prev], figure, target, met))
    for n in sizes:
        if n == 1000 or n == sizes[-1]:
            first = f"{cold[n] / n * 1000:.0f} µs/pkg"
            res.rows.append(
                Row(
                    "B3",
                    f"drift check, synthetic lock + env of {n:,} packages, first check in a new "
                    "process (nothing parsed yet)",
                    cold[n],
                    "the repeated check",
                    warm[n],
                    f"{first} ({ratio(cold[n], warm[n])} the repeated check)",
                    "≤ 150 ms" if n == 1000 else "—",
                    (cold[n] <= 150) if n == 1000 else None,
                )
            )
    res.detail(
        "B3 figures are the slower of two states: with provenance records (as after a switch) and without "
        "(as on the very first check). Timed: state.json, the pylock export read with packaging, the dist-info "
        "scan, the kernel closure, uv.lock, classify; the `uv export` itself is cached on disk by uvextra. "
        "Shape: 30 % binary packages (sdist + 4 platform wheels in both locks), ~25-line METADATA with a "
        "3 KB description, RECORD of 10–60 files, 0–3 dependencies each."
    )


# ------------------------------------------------------------------------------------------------ B4

_SHELL_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t1 = time.perf_counter()
error = None
if sys.argv[1] == "load":
    import io, contextlib
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            shell.run_line_magic("load_ext", "uvextra")
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
t2 = time.perf_counter()
ok = "uvextra" in shell.extension_manager.loaded and "uvextra" in shell.magics_manager.magics["line"]
if sys.argv[1] == "load" and not ok and error is None:
    error = (buf.getvalue().strip().splitlines() or ["not loaded"])[-1]
print(json.dumps({"shell": t1 - t0, "load": t2 - t1, "ok": ok, "error": error}))
"""


def _overlay_venv(b: Bench, name: str) -> Path:
    """A venv that sees this interpreter's packages (and uvextra) but has its own sys.prefix/etc/ipython."""
    venv = b.venv(name)
    import site as _site

    parent_sites = [p for p in _site.getsitepackages() if Path(p).is_dir()]
    lines = [f"import site; site.addsitedir({p!r})" for p in parent_sites]
    (site_packages(venv) / "_uvextra_bench_overlay.pth").write_text("\n".join(lines) + "\n")
    return venv


def case_b4(b: Bench, res: Results) -> None:
    ipython_dir = b.work / "ipython"
    ipython_dir.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        IPYTHONDIR=str(ipython_dir),
        JUPYTER_CONFIG_DIR=str(b.work / "jupyter-config"),
        JUPYTER_DATA_DIR=str(b.work / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(b.work / "jupyter-runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    # --- %load_ext uvextra in a fresh process each time (cold imports), against IPython alone in that process.
    shell_venv = _overlay_venv(b, "b4-shell")  # no startup file: IPython alone, then the magic
    samples: list[dict] = []
    for n in range(1 + b.cfg.b4_shell_runs):
        proc = subprocess.run(
            [py(shell_venv), "-c", _SHELL_SCRIPT, "load"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"B4 shell run failed: {proc.stderr[-600:]}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        if n:
            samples.append(data)
    loaded = all(s["ok"] for s in samples)
    shell_ms = statistics.median(s["shell"] for s in samples) * 1000
    if loaded:
        load_ms = statistics.median(s["load"] for s in samples) * 1000
        res.rows.append(
            Row(
                "B4",
                "`%load_ext uvextra` in a running IPython (fresh process, cold imports)",
                load_ms,
                "IPython alone: import + `InteractiveShell.instance()`",
                shell_ms,
                f"+{load_ms:.1f} ms ({ratio(shell_ms + load_ms, shell_ms)})",
                "≤ 15 ms",
                load_ms <= 15,
            )
        )
    else:
        why = next((s["error"] for s in samples if s["error"]), "not loaded")
        res.rows.append(
            Row(
                "B4",
                "`%load_ext uvextra` in a running IPython (fresh process, cold imports)",
                None,
                "IPython alone: import + `InteractiveShell.instance()`",
                shell_ms,
                "n/a",
                "≤ 15 ms",
                None,
                note=f"the extension does not load yet: {why}",
            )
        )
    res.detail(
        "B4 %load_ext: "
        + "; ".join(f"shell {s['shell'] * 1000:.0f} ms + load {s['load'] * 1000:.1f} ms" for s in samples)
    )

    # --- kernel start: auto-load on (the startup file where the wheel installs it) vs off (no such file).
    startup = sorted((REPO / "jupyter-config" / "ipython" / "startup").glob("*uvextra*.py"))
    off_venv, on_venv = _overlay_venv(b, "b4-kernel-off"), _overlay_venv(b, "b4-kernel-on")
    extra_args: list[str] = []
    # Timers around the startup files (IPython runs them in name order): the auto-load's own cost, measured inside
    # the kernel, free of the ±50 ms noise of whole kernel starts.
    for venv in (off_venv, on_venv):
        dest = venv / "etc" / "ipython" / "startup"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "00-bench-t0.py").write_text("import builtins, time\nbuiltins._bench_t0 = time.perf_counter()\n")
        (dest / "99-bench-t1.py").write_text(
            "import builtins, time\nbuiltins._bench_dt = time.perf_counter() - builtins._bench_t0\n"
        )
    if startup:
        dest = on_venv / "etc" / "ipython" / "startup"
        shutil.copy2(startup[0], dest / startup[0].name)
        how = f"startup file `{startup[0].relative_to(REPO)}` in the venv's etc/ipython/startup"
    else:
        extra_args = ["--InteractiveShellApp.extensions=uvextra"]
        how = "no startup file yet: `--InteractiveShellApp.extensions=uvextra`"
    kernels = b.work / "kernels"
    for name, venv, more in (("bench-off", off_venv, []), ("bench-on", on_venv, extra_args)):
        spec = kernels / name
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [py(venv), "-m", "ipykernel_launcher", "-f", "{connection_file}", *more],
                    "display_name": name,
                    "language": "python",
                    "env": {
                        k: env[k]
                        for k in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")
                    },
                }
            )
        )
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    runtime.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {}

    def start(name: str) -> Callable[[], None]:
        def run() -> None:
            from jupyter_client.kernelspec import KernelSpecManager
            from jupyter_client.manager import KernelManager

            km = KernelManager(
                kernel_name=name,
                kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
                connection_file=str(runtime / f"kernel-{name}-{time.monotonic_ns()}.json"),
            )
            t0 = time.perf_counter()
            km.start_kernel(env=dict(env))
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=120)
                t1 = time.perf_counter()
                kc.execute_interactive("pass", timeout=60)
                t2 = time.perf_counter()
                reply = kc.execute_interactive(
                    "",
                    timeout=60,
                    user_expressions={
                        "x": "'uvextra' in get_ipython().extension_manager.loaded",
                        "dt": "__import__('builtins')._bench_dt",
                    },
                )
                loaded = reply["content"]["user_expressions"]["x"]["data"]["text/plain"] == "True"
                dt = float(reply["content"]["user_expressions"]["dt"]["data"]["text/plain"])
                state.setdefault(f"{name}-startup", []).append(dt)  # type: ignore[union-attr]
                state.setdefault(f"{name}-first-execute", []).append(t2 - t0)  # type: ignore[union-attr]
                state.setdefault(f"{name}-loaded", []).append(loaded)  # type: ignore[union-attr]
                state["t"] = t1 - t0
            finally:
                kc.stop_channels()
                km.shutdown_kernel(now=True)

        return run

    # Time only start → kernel_info reply; the verification above runs in the same call but is not counted.
    t: dict[str, list[float]] = {"off": [], "on": []}
    for n in range(1 + b.cfg.b4_kernel_runs):
        for side in ("off", "on") if n % 2 == 0 else ("on", "off"):
            start(f"bench-{side}")()
            if n:
                t[side].append(float(state["t"]))  # type: ignore[arg-type]
    on_loaded = all(state.get("bench-on-loaded", [False]))  # type: ignore[arg-type]
    off_loaded = any(state.get("bench-off-loaded", [True]))  # type: ignore[arg-type]
    require(not off_loaded, "B4: uvextra is loaded in the kernel without the auto-load; the baseline is wrong")
    a, u = median_ms(t["on"]), median_ms(t["off"])
    fe_on = median_ms(state["bench-on-first-execute"][1:])  # type: ignore[index]
    fe_off = median_ms(state["bench-off-first-execute"][1:])  # type: ignore[index]
    note = "" if on_loaded else "the startup file ran but the extension did not load (magic not importable yet)"
    inside_on = median_ms(state["bench-on-startup"][1:])  # type: ignore[index]
    inside_off = median_ms(state["bench-off-startup"][1:])  # type: ignore[index]
    added = inside_on - inside_off
    res.rows.append(
        Row(
            "B4",
            "kernel start → `kernel_info` reply, auto-load on",
            a,
            "the same kernel without the auto-load",
            u,
            f"{a - u:+.1f} ms ({ratio(a, u)}); measured inside the kernel: {added:+.1f} ms",
            "≤ +15 ms",
            (added <= 15) if on_loaded else None,
            note=note,
        )
    )
    res.detail(
        f"B4 kernel ({how}): on {spread(t['on'])}; off {spread(t['off'])}; "
        f"start → first execute reply: on {fmt_ms(fe_on)} ms, off {fmt_ms(fe_off)} ms; "
        f"uvextra loaded in the 'on' kernel: {on_loaded}. Kernel starts vary by ±50 ms here, so the target is "
        f"judged on the startup files' own time inside the kernel (timers before and after them): on "
        f"{fmt_ms(inside_on)} ms, off {fmt_ms(inside_off)} ms"
    )


# ------------------------------------------------------------------------------------------------ B5

# 19 small dependencies of a torch env (names and versions shaped like the real ones) and their file counts.
_B5_SMALL = (
    ("filelock", "3.20.0", 8),
    ("typing-extensions", "4.15.0", 2),
    ("sympy", "1.14.0", 300),
    ("mpmath", "1.3.0", 80),
    ("networkx", "3.5", 250),
    ("jinja2", "3.1.6", 30),
    ("markupsafe", "3.0.3", 8),
    ("fsspec", "2025.9.0", 60),
    ("setuptools", "80.9.0", 150),
    ("numpy", "2.3.4", 200),
    ("pillow", "12.0.0", 60),
    ("packaging", "25.0", 20),
    ("tqdm", "4.67.1", 30),
    ("requests", "2.32.5", 20),
    ("urllib3", "2.5.0", 40),
    ("idna", "3.11", 10),
    ("certifi", "2025.10.5", 5),
    ("charset-normalizer", "3.4.4", 20),
    ("pyyaml", "6.0.3", 20),
)
_B5_NVIDIA = (
    "nvidia-cublas-cu12",
    "nvidia-cudnn-cu12",
    "nvidia-cusparse-cu12",
    "nvidia-cufft-cu12",
    "nvidia-nccl-cu12",
    "nvidia-cuda-runtime-cu12",
)
_B5_TRITON_FILES = 200
_B5_FORMAT = 3  # bump when the wheels below change


def _payload(size_mb: float, seed: str) -> str:
    """Random text of ``size_mb`` MB (base64 of random bytes: deflate keeps ~3/4 of it)."""
    n = int(size_mb * 1_000_000)
    raw = random.Random(seed).randbytes(n * 3 // 4 + 3)
    return base64.b64encode(raw).decode("ascii")[:n]


def _modules(pkg: str, count: int, seed: str) -> dict[str, str]:
    rng = random.Random(seed)
    files = {f"{pkg}/__init__.py": f'"""Stand-in {pkg} for the uvextra benchmarks."""\n'}
    for i in range(max(0, count - 1)):
        body = "".join(f"X{j} = {rng.getrandbits(64)}\n" for j in range(rng.randint(10, 60)))
        files[f"{pkg}/_part/m{i:04d}.py"] = body
    return files


def build_b5_indexes(cfg: Config, cache_root: Path, say: Callable[[str], None]) -> tuple[Path, dict[str, object]]:
    """The torch-shaped indexes (cached by shape): ``pypi`` (a CUDA torch 2.9.0 + 26 dependencies) and ``mirror``
    (a CPU torch 2.9.0: same version string, same requirements, other files)."""
    shape = {
        "format": _B5_FORMAT,
        "torch_mb": cfg.b5_torch_mb,
        "nvidia_mb": list(cfg.b5_nvidia_mb),
        "torch_files": cfg.b5_torch_files,
        "small": [list(s) for s in _B5_SMALL],
    }
    key = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_root / f"b5-indexes-{key}"
    if not (root / ".complete").exists():
        for old in cache_root.glob("b5-indexes-*"):  # one shape of each mode is enough on disk
            if (
                old != root
                and json.loads((old / ".complete").read_text() if (old / ".complete").exists() else "{}").get(
                    "torch_mb", -1
                )
                == cfg.b5_torch_mb
            ):
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        say(f"building the B5 wheels into {root} (once) …")
        pypi, mirror = root / "pypi", root / "mirror"
        requires = (
            [f"{name}==12.8.0" for name in _B5_NVIDIA]
            + ["triton==3.5.0"]
            + [f"{name}>={version}" for name, version, _ in _B5_SMALL if name not in ("numpy",)]
        )
        for index, label, cuda in ((pypi, "pypi-cu128", "12.8"), (mirror, "mirror-cpu", None)):
            files = li.torch_files("2.9.0", cuda, build_label=label)
            for path, text in _modules("torch", cfg.b5_torch_files, f"torch-{label}").items():
                files.setdefault(path, text)  # keep the stand-in's own torch/__init__.py
            files["torch/lib/libtorch_stub.so.txt"] = _payload(cfg.b5_torch_mb, f"torch-{label}")
            li.build_wheel(index, "torch", "2.9.0", files, requires, extra_metadata="Requires-Python: >=3.10")
        for i, (name, mb) in enumerate(zip(_B5_NVIDIA, cfg.b5_nvidia_mb, strict=True)):
            mod = "nvidia/" + name.removeprefix("nvidia-").removesuffix("-cu12").replace("-", "_")
            files = {f"{mod}/__init__.py": "", f"{mod}/lib/lib{i}.so.txt": _payload(mb, name)}
            li.build_wheel(pypi, name, "12.8.0", files)
        li.build_wheel(pypi, "triton", "3.5.0", _modules("triton", _B5_TRITON_FILES, "triton"))
        for name, version, count in _B5_SMALL:
            li.build_wheel(pypi, name, version, _modules(name.replace("-", "_"), count, name))
        (root / ".complete").write_text(json.dumps(shape))
    return root, shape


def case_b5(b: Bench, res: Results) -> None:
    """Repairing a stale torch build vs what users do today: rebuild the venv, or reinstall everything."""
    from uvextra.core import verbs as core

    root, _shape = build_b5_indexes(b.cfg, b.cache_root, b.say)
    server = b._stack.enter_context(li.IndexServer(root))
    project = b.work / "projects" / "b5"
    li.write_project(
        project,
        {"pypi": server.simple_url("pypi"), "mirror": server.simple_url("mirror")},
        extras=("pypi", "mirror"),
        default_index=server.simple_url("pypi"),
        extra_deps=("numpy",),
    )
    b.uv_run("lock", "--quiet", cwd=project)
    ours_venv = b.venv("b5-uvextra")
    uv_venv = b.work / "venvs" / "b5-uv"
    ours_py = py(ours_venv)

    def make_stale() -> None:
        # pypi's CUDA build installed and recorded, then the mirror selected: uv keeps the pypi build (same
        # version string) — the stale state uvextra reports as build drift.
        r = core.switch(["pypi"], project, ours_py, probe=False, repair=True)
        require(r.failure is None and r.clean, f"B5 setup (switch pypi) failed: {r.failure} {r.drift}")
        require(torch_build_label(ours_venv) == "pypi-cu128", "B5 setup: torch is not pypi's build")
        r = core.switch(["mirror"], project, ours_py, probe=False)
        require(
            r.failure is None and [(d.package, d.kind) for d in r.errors] == [("torch", "build")],
            f"B5 setup: expected build drift of torch only, got {r.drift} {r.failure}",
        )

    def repair() -> None:
        r = core.repair(project, ours_py, probe=False)
        require(r.failure is None and r.clean and r.repaired == ["torch"], f"B5 repair: {r.failure} {r.drift}")

    rebuild_cmd = f"rm -rf {uv_venv} && {b.uv.path} sync --quiet --extra mirror --python {b.python}"

    def rebuild() -> None:
        env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(uv_venv))
        proc = subprocess.run(["sh", "-c", rebuild_cmd], cwd=project, env=env, capture_output=True, text=True)
        require(proc.returncode == 0, f"B5 rm -rf && uv sync failed: {proc.stderr[-500:]}")

    def reinstall() -> None:
        b.uv_run("sync", "--quiet", "--reinstall", "--extra", "mirror", cwd=project, venv=uv_venv)

    start = time.perf_counter()
    rebuild()  # downloads everything once into this run's uv cache
    first_download = time.perf_counter() - start
    n_pkgs = len(installed_versions(uv_venv))
    files = [f for f in site_packages(uv_venv).rglob("*") if f.is_file()]
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    torch_files = sum(1 for f in (site_packages(uv_venv) / "torch").rglob("*") if f.is_file())
    modes = (
        ("hardlink", "uv's default: links from its cache on the same disk"),
        ("copy", "`UV_LINK_MODE=copy`, as in Docker images with a cache mount (uv's docs advise it)"),
    )
    for mode, how in modes:
        if mode == "copy":
            os.environ["UV_LINK_MODE"] = "copy"  # for uvextra's uv runs and the baselines alike
        try:
            t = interleaved(
                b.cfg,
                {"repair": repair, "rebuild": rebuild, "reinstall": reinstall},
                repeats=b.cfg.b5_repeats,
                warmup=1,
                setup={"repair": make_stale},
            )
        finally:
            os.environ.pop("UV_LINK_MODE", None)
        require(torch_build_label(ours_venv) == "mirror-cpu", "B5: repair did not install the mirror's build")
        require(torch_build_label(uv_venv) == "mirror-cpu", "B5: the baseline did not install the mirror's build")
        a = median_ms(t["repair"])
        for key, label in (
            ("rebuild", "`rm -rf .venv && uv sync --extra mirror`"),
            ("reinstall", "`uv sync --reinstall --extra mirror`"),
        ):
            u = median_ms(t[key])
            res.rows.append(
                Row(
                    "B5",
                    f"repair of a stale torch build, {n_pkgs}-package torch-shaped env "
                    f"({size_mb:,.0f} MB), uv link mode: {mode}",
                    a,
                    label,
                    u,
                    f"{u / a:.1f}× faster",
                    "≥ 10× faster",
                    u / a >= 10,
                )
            )
        res.detail(
            f"B5 {mode} ({how}): repair {spread(t['repair'])}; rm -rf + sync {spread(t['rebuild'])}; "
            f"--reinstall {spread(t['reinstall'])}"
        )
    wheel_mb = sum(p.stat().st_size for p in root.rglob("*.whl")) / 1e6
    res.detail(
        f"B5 env: {n_pkgs} packages, {len(files):,} files, {size_mb:,.0f} MB installed (torch: "
        f"{torch_files:,} files, nvidia-* stubs {', '.join(f'{x:g}' for x in b.cfg.b5_nvidia_mb)} MB); wheels "
        f"{wheel_mb:,.0f} MB. Stale state: pypi's torch 2.9.0 recorded, then the `mirror` extra selected (its own "
        "CPU build, also named 2.9.0, same requirements): uv keeps the old build; uvextra reports build drift "
        "and `repair` runs `uv sync --inexact --frozen --reinstall-package torch`. The local index answers "
        "uv's revalidation with 304 like real indexes do, so no side downloads again. First sync with a cold "
        f"cache (downloads over 127.0.0.1): {first_download * 1000:,.0f} ms"
    )


# ------------------------------------------------------------------------------------------------ B6

# What the probe's child imports (uvextra/probe.py's child script), then torch: the floor of any probe that asks a
# fresh interpreter. The inner timer isolates `import torch` alone.
_PROBE_IMPORTS = "import json, os, sys, traceback, warnings"
_IMPORT_SCRIPT = f"{_PROBE_IMPORTS}; import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"


def case_b6(b: Bench, res: Results) -> None:
    """The CUDA probe started in parallel with the check, against the check alone and the probe alone."""
    from uvextra.core import verbs as core
    from uvextra.core.cuda_probe import start_probe

    project = b.seed_project("b6")
    venv = b.venv("b6")
    r = core.switch(["pypi"], project, py(venv), probe=False)
    require(r.failure is None and r.clean, f"B6 setup switch failed: {r.failure}")
    import_inside: list[float] = []

    def with_probe() -> None:
        rep = core.check(project, py(venv), probe=True)
        require(rep.probe is not None and rep.probe.torch_version == "2.9.0", f"B6 probe failed: {rep.probe}")

    def without() -> None:
        core.check(project, py(venv), probe=False)

    def probe_alone() -> None:
        with start_probe(py(venv), selected_extras=["pypi"]) as handle:
            result = handle.result()
        require(result.torch_version == "2.9.0", f"B6 probe alone failed: {result}")

    def probe_imports() -> None:
        # What the probe's child must do before it can answer: start an interpreter, import what it imports.
        out = subprocess.run([py(venv), "-I", "-c", _IMPORT_SCRIPT], capture_output=True, text=True, check=True)
        import_inside.append(float(out.stdout.strip()))

    t = interleaved(
        b.cfg,
        {"with": with_probe, "without": without, "probe": probe_alone, "imports": probe_imports},
        repeats=b.cfg.repeats * 2,
    )
    a, u = median_ms(t["with"]), median_ms(t["without"])
    p, imp = median_ms(t["probe"]), median_ms(t["imports"])
    inside = statistics.median(import_inside[-len(t["imports"]) :]) * 1000
    res.rows.append(
        Row(
            "B6",
            "check with the CUDA probe in parallel (stand-in torch)",
            a,
            "the check alone",
            u,
            f"{a - u:+.1f} ms (the probe's own import: {fmt_ms(imp)} ms; the probe alone: {fmt_ms(p)} ms)",
            "adds ≤ the probe's own import time",
            a - u <= imp,
        )
    )
    res.detail(
        f"B6 check+probe: {spread(t['with'])}; check alone: {spread(t['without'])}; probe alone: "
        f"{spread(t['probe'])}; the probe's own import (a fresh `python -I` importing what the probe "
        f"imports: `{_PROBE_IMPORTS}; import torch`): "
        f"{spread(t['imports'])}, of which `import torch` itself {fmt_ms(inside)} ms"
    )


# ------------------------------------------------------------------------------------------------ B7

B7_PAIRS = 10  # interleaved pairs (issue 13): the median of each side


def case_b7(b: Bench, res: Results) -> None:
    """The CLI's own cost: a whole ``python -m uvextra check --json`` process against a no-op ``uv sync --dry-run``
    on the same project and env (what a terminal user or a script pays per call: start-up, imports, the check; from
    the second call on, a repeated clean check is answered by ``uvextra.cli_quick``)."""
    import uvextra

    project = b.seed_project("b7")
    venv = b.venv("b7")
    from uvextra.core import verbs as core

    report = core.switch(["pypi"], project, py(venv), probe=False)
    require(report.failure is None and report.clean, f"B7 setup switch failed: {report.failure} {report.drift}")
    # Both sides find the env the same way (UV_PROJECT_ENVIRONMENT, from the project folder); uvextra is run by the
    # interpreter running the benchmarks, from where this process imported it.
    env = dict(
        os.environ, UV_PROJECT_ENVIRONMENT=str(venv), PYTHONPATH=str(Path(uvextra.__file__).resolve().parent.parent)
    )
    ours_cmd = [sys.executable, "-m", "uvextra", "check", "--json"]
    uv_cmd = [b.uv.path, "sync", "--dry-run", "--extra", "pypi"]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=project, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
        )

    def ours() -> None:
        proc = run(ours_cmd)
        require(proc.returncode == 0, f"B7 uvextra check exited {proc.returncode}: {proc.stderr[-500:]}")
        data = json.loads(proc.stdout)
        require(data["clean"] and data["extras"] == ["pypi"], f"B7 check not clean: {data.get('drift')}")

    def uv_dry_run() -> None:
        proc = run(uv_cmd)
        require(
            proc.returncode == 0 and "Would make no changes" in proc.stderr + proc.stdout,
            f"B7 baseline is not a no-op: {proc.stderr[-500:]}",
        )

    # The warm-up rounds write the interpreter's bytecode (.pyc, as an installed package's first run does) and
    # uvextra's caches in the venv; the timed rounds then measure what every later call costs.
    t = interleaved(b.cfg, {"ours": ours, "uv": uv_dry_run}, repeats=B7_PAIRS if not b.cfg.quick else 3, warmup=2)
    a, u = median_ms(t["ours"]), median_ms(t["uv"])
    res.rows.append(
        Row(
            "B7",
            "`python -m uvextra check --json`, whole process, synced seed env (pypi extra)",
            a,
            "`uv sync --dry-run --extra pypi` (no-op), whole process",
            u,
            ratio(a, u),
            "≤ 3×",
            a / u <= 3,
        )
    )
    res.detail(
        f"B7 `python -m uvextra check --json`: {spread(t['ours'])}; `uv sync --dry-run`: {spread(t['uv'])} "
        f"(pairs interleaved, each side's median; bytecode cached after the warm-up)"
    )
    cached = sorted(p.name.split("-", 1)[0] for p in (venv / ".uvextra" / "exports").iterdir())
    res.detail(
        "B7 what a later call reads instead of recomputing: " + ", ".join(cached) + " (.uvextra/exports/, "
        "content-addressed) and scan.json; a repeated clean check reads only its quick-* entry (uvextra.cli_quick: "
        "the last answer and the identity of everything it read, every RECORD file stat'ed again)"
    )


# ------------------------------------------------------------------------------------------------ report


def machine_lines(b: Bench | None) -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    versions = []
    for mod in ("IPython", "ipykernel", "jupyter_client", "packaging"):
        with contextlib.suppress(Exception):
            versions.append(f"{mod} {__import__(mod).__version__}")
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    uv = f"uv {b.uv.version} ({b.uv.path})" if b else "uv ?"
    load = ""
    with contextlib.suppress(OSError):
        load = " (load average at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + ")"
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}{load}",
        f"- Python {platform.python_version()}; {uv}; {', '.join(versions)}",
        f"- uvextra {__import__('uvextra').__version__}" + (f" at commit {commit}" if commit else ""),
    ]


def render(res: Results, machine: list[str], elapsed: float) -> str:
    cfg = res.cfg
    mode = "quick" if cfg.quick else "full"
    out = [
        f"# uvextra benchmarks ({mode} run, {time.strftime('%Y-%m-%d')})",
        "",
        "`python benchmarks/run.py" + (" --quick" if cfg.quick else "") + "` — every figure is measured in the same "
        f"run as its baseline: median of {cfg.repeats}+ runs after {cfg.warmup} warm-up(s), sides interleaved.",
        "",
        *machine,
        "",
        "| # | what | uvextra (ms) | compared with | that (ms) | figure | target | met |",
        "|---|---|---:|---|---:|---|---|---|",
    ]
    for r in res.rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "**no**")
        what = r.what + (f" — {r.note}" if r.note else "")
        out.append(
            f"| {r.case} | {what} | {fmt_ms(r.ours)} | {r.base_label} | {fmt_ms(r.base)} | {r.figure} | "
            f"{r.target} | {met} |"
        )
    out += ["", "Details:", ""]
    out += [f"- {d}" for d in res.details]
    if res.errors:
        out += ["", "Errors:", ""] + [f"- {e}" for e in res.errors]
    out += ["", f"Whole run: {elapsed:.0f} s."]
    return "\n".join(out) + "\n"


def run(
    cfg: Config, only: Sequence[str], cache_root: Path, keep: bool, say: Callable[[str], None] = print
) -> tuple[Results, str]:
    started = time.perf_counter()
    res = Results(cfg)
    bench = Bench(cfg, cache_root, keep, say)
    funcs = {"B1": case_b1, "B2": case_b2, "B3": case_b3, "B4": case_b4, "B5": case_b5, "B6": case_b6, "B7": case_b7}
    try:
        for case in CASES:
            if case not in only:
                continue
            say(f"{case} …")
            t0 = time.perf_counter()
            try:
                funcs[case](bench, res)
            except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
                res.errors.append(f"{case}: {type(exc).__name__}: {exc}")
                res.rows.append(Row(case, f"{case} failed (see Errors)", None, "", None, "error", "", None))
                traceback.print_exc()
            say(f"{case} done in {time.perf_counter() - t0:.1f} s")
        machine = machine_lines(bench)
    finally:
        bench.close()
    return res, render(res, machine, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (under a minute)")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases, e.g. B1,B3")
    parser.add_argument("--out", type=Path, help=f"write the markdown here (default for a full run: {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (venvs, projects, uv cache)")
    args = parser.parse_args(argv)
    only = [c.strip().upper() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(only) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    cache_root = Path(os.environ.get("UVEXTRA_BENCH_CACHE") or Path.home() / ".cache" / "uvextra-bench")
    cfg = QUICK if args.quick else FULL

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    res, text = run(cfg, only, cache_root.absolute(), args.keep, say)
    print(text)
    out = args.out or (RESULTS if not cfg.quick and set(only) == set(CASES) else None)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        say(f"wrote {out}")
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
