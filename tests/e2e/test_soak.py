"""Soak: 50 alternating switches cpu ↔ cu128 ↔ pypi ↔ mirror, with the newest uv and with uv 0.9.4.

``mirror`` publishes ``torch 2.9.0`` exactly like ``pypi`` does (same version string, same requirements) but as
another build: the case even the newest uv misses. Every switch runs with ``--repair``; after each one the test
asserts zero drift (and nothing unverified), the right torch *build* on disk, the kernel's own packages (the
stand-in ipykernel, installed outside the lock) still there, and a separate ``uvextra check`` agreeing.

Not in the default run (a few minutes): marked ``soak``. Run it with one command, from the repository root:

    ./uvw run --extra test pytest -m soak -q -s

``UVEXTRA_SOAK_STEPS`` changes the number of switches per uv (default 50).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from support.cli import run_json
from support.venvs import dist_infos, site_packages

pytestmark = pytest.mark.soak

STEPS = int(os.environ.get("UVEXTRA_SOAK_STEPS", "50"))
EXTRAS = ("cpu", "cu128", "pypi", "mirror")
# extra -> (torch dist-info, torch._build of the stand-in)
EXPECTED = {
    "cpu": ("torch-2.9.0+cpu.dist-info", "cpu"),
    "cu128": ("torch-2.9.0+cu128.dist-info", "cu128"),
    "pypi": ("torch-2.9.0.dist-info", "pypi-cu128"),
    "mirror": ("torch-2.9.0.dist-info", "mirror-cpu"),
}
KERNEL = ["comm-0.2.3.dist-info", "ipykernel-7.4.0.dist-info", "tornado-6.5.2.dist-info"]


def sequence(steps: int, seed: int = 16368) -> list[str]:
    """Alternating extras (never the same twice in a row), every transition between two of them included."""
    pairs = [(a, b) for a in EXTRAS for b in EXTRAS if a != b]
    out = ["pypi"]
    for a, b in pairs:  # walk every ordered pair first: 12 transitions
        if out[-1] != a:
            out.append(a)
        out.append(b)
    rng = random.Random(seed)
    while len(out) < steps:
        out.append(rng.choice([e for e in EXTRAS if e != out[-1]]))
    return out[:steps]


def torch_build(venv: Path) -> str | None:
    init = site_packages(venv) / "torch" / "__init__.py"
    for line in init.read_text().splitlines():
        if line.startswith("_build = "):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


@pytest.mark.parametrize("which", ["newest", "0.9.4"])
def test_soak_alternating_switches(which, make_project, make_venv, tmp_path, uv_env, uv_new, request, capsys):
    uv = uv_new if which == "newest" else request.getfixturevalue("uv_old")
    env = dict(uv_env, UVEXTRA_UV=uv)
    project = make_project({e: e for e in EXTRAS})
    venv = make_venv(tmp_path / "kernel-venv", packages=["ipykernel"])
    target = ["--project", str(project), "--python", str(venv / "bin" / "python")]
    steps = sequence(STEPS)
    repaired: dict[str, int] = {}
    changed = 0
    started = time.monotonic()
    for n, extra in enumerate(steps):
        code, report, _ = run_json("switch", extra, "--repair", "--no-probe", *target, env=env, timeout=300)
        where = f"step {n} ({steps[n - 1] if n else '-'} -> {extra}, uv {which})"
        assert code == 0, f"{where}: {report}"
        assert report["uv"]["path"] == uv
        assert [d for d in report["drift"] if d["kind"] != "extraneous"] == [], where
        assert report["unverified"] == [], where
        for name in report["repaired"]:
            key = f"{steps[n - 1] if n else '-'}->{extra}:{name}"
            repaired[key] = repaired.get(key, 0) + 1
        changed += bool(report["changes"]["installed"] or report["changes"]["removed"])
        dist, build = EXPECTED[extra]
        assert dist_infos(venv, "torch") == [dist], where
        assert torch_build(venv) == build, where
        assert [d for d in dist_infos(venv) if d.split("-")[0] in ("comm", "ipykernel", "tornado")] == KERNEL, where
        code, check, _ = run_json("check", *target, env=env, timeout=300)
        assert (code, check["extras"], check["drift"], check["unverified"]) == (0, [extra], [], []), f"{where}: {check}"
    took = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nsoak uv {which} ({report['uv']['version']}): {len(steps)} switches + {len(steps)} checks in "
            f"{took:.1f} s ({took / len(steps):.2f} s per switch+check); {changed} switches changed packages; "
            f"repairs needed (transition:package -> count): {json.dumps(repaired, sort_keys=True)}"
        )
