"""The README's first command: `uvextra demo` tells the whole story offline and ends clean."""

from __future__ import annotations

import re

from support.cli import run_cli


def test_demo_catches_the_drift_uv_misses_and_repairs_it(uv_env, tmp_path):
    proc = run_cli("demo", "--dir", tmp_path / "demo", env=uv_env, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"Checked \d+ packages", out)  # uv's own answer to the switch to the mirror's build…
    assert "torch  build  2.9.0 → 2.9.0" in out  # …and what uvextra sees
    assert re.search(r"^  torch  files  2\.9\.0\+cpu → 2\.9\.0\+cpu$", out, re.M)  # the install cut short, caught
    assert re.search(r"^repaired +torch: was \d+ of \d+ files missing; reinstalled, every file there now$", out, re.M)
    assert "demo: a half-installed torch (files missing, metadata whole) caught and reinstalled" in out
    assert re.search(r"^repaired +torch$", out, re.M)
    assert re.search(r"^CUDA +not available: CUDA 12.8 build but no NVIDIA driver on this machine$", out, re.M)
    assert out.rstrip().endswith("demo: drift caught and repaired — the environment matches the lock")
