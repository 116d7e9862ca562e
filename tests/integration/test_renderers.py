"""The notebook's renderings of a Report: the static HTML card, Markdown and plain text (no widgets, no kernel)."""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cli import project_on
from support.localindex import IndexServer
from uvextra.core.cuda_probe import ProbeResult
from uvextra.core.drift import Drift, Unverified
from uvextra.core.report import Change, Report
from uvextra.core.vocabulary import KernelState, RestartPlan, StaleModule
from uvextra.render.card import ReportView, render_error, render_html, render_progress
from uvextra.render.markdown import render_markdown
from uvextra.render.text import render_plain


def _text(markup: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    inline = re.sub(r"</?(code|b|span)\b[^>]*>", "", markup)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def _switch_report(**kw: object) -> Report:
    report = Report(
        command="switch",
        project="/p/moo",
        project_name="moo",
        environment="/p/moo/.venv",
        python="/p/moo/.venv/bin/python",
        uv={"path": "/usr/bin/uv", "version": "0.13.9"},
        extras=["cu128"],
        extras_source="given",
        available_extras=["cpu", "cu128", "pypi"],
        conflict_sets=[["cpu", "cu128", "pypi"]],
    )
    report.changes.installed = [
        Change("torch", "2.9.0+cpu", "2.9.0+cu128"),
        Change("triton", None, "3.5.0"),
        Change("nvidia-cublas-cu12", None, "12.8.4.1"),
    ]
    report.changes.removed = [Change("old-thing", "1.0", None)]
    report.log = ["Resolved 10 packages in 3ms", " - torch==2.9.0+cpu", " + torch==2.9.0+cu128"]
    report.elapsed_s = 1.25
    for key, value in kw.items():
        setattr(report, key, value)
    return report


LOCAL = Drift(
    "torch",
    "local-version",
    "2.9.0+cpu",
    "2.9.0",
    "installed 2.9.0+cpu, the lock wants 2.9.0 from pytorch-pypi; PEP 440 `==` lets the local part slip",
)
BUILD = Drift("numpy", "build", "2.3.4", "2.3.4", "installed wheel is tagged py3-none-any, the locked wheel is …")
EXTRA = Drift("leftover", "extraneous", "0.1", None, "installed, but not in the lock for these extras")
NO_GPU = ProbeResult(
    torch_version="2.9.0+cu128",
    cuda_version="12.8",
    cuda_available=False,
    verdict="not available: CUDA 12.8 build but no NVIDIA driver on this machine",
)
GPU_OK = ProbeResult(
    torch_version="2.9.0+cu128",
    cuda_version="12.8",
    cuda_available=True,
    state="available",
    devices=[{"name": "NVIDIA H100", "capability": "sm_90"}],
    verdict="CUDA available: 1× NVIDIA H100 (sm_90), driver 580.65.06",
)
CPU = ProbeResult(
    torch_version="2.9.0+cpu",
    cuda_available=False,
    state="cpu",
    verdict="CPU build of torch (2.9.0+cpu); CUDA not expected",
)
# the probe decides the state with the selected extras: a CPU build under a CUDA extra is unavailable
CPU_UNDER_CUDA = ProbeResult(
    torch_version="2.9.0+cpu",
    cuda_available=False,
    verdict="not available: CPU build of torch installed (2.9.0+cpu) while extra cu128 is selected",
)


def test_card_shows_extras_changes_and_a_clean_drift_line() -> None:
    text = _text(render_html(_switch_report(probe=GPU_OK)))
    assert "switched to cu128" in text
    assert "✓ matches the lock" in text
    assert "torch 2.9.0+cpu → 2.9.0+cu128" in text
    assert "+2 −1 packages" in text
    assert "none — installed packages match the lock" in text
    assert "uv output (3 lines)" in text  # the log sits behind a disclosure
    quiet = _switch_report(kernel_protected=["uvextra"])
    quiet.changes.installed, quiet.changes.removed, quiet.changes.kept = [], [], ["uvextra", "leftover"]
    text = _text(render_html(quiet))
    assert "changes no packages changed kept, though not in the lock: leftover drift" in text
    assert "protected 1 package the kernel needs, kept uvextra" in text  # a count; the names behind <details>
    hub = _switch_report(kernel_protected=[f"pkg{i}" for i in range(120)])
    markup = render_html(hub)
    assert re.search(
        r'<details class="uvextra-protected"><summary[^>]*>120 packages the kernel needs, kept</summary>'
        r"<div[^>]*>pkg0, pkg1, .*pkg119</div></details>",
        markup,
    )
    assert "protected    120 packages the kernel needs, kept: pkg0, pkg1, pkg2, pkg3, pkg4, pkg5, … (114 more)" in (
        render_plain(hub)
    )


def test_drift_table_has_one_badge_per_kind_and_words_for_the_extraneous() -> None:
    report = _switch_report(
        drift=[LOCAL, BUILD, EXTRA], unverified=[Unverified("filelock", "3.20.0", "locked from more than one index")]
    )
    markup = render_html(report, live=True)
    assert re.search(r'class="uvextra-badge uvextra-kind-local-version"[^>]*>local-version</span>', markup)
    assert re.search(r'class="uvextra-badge uvextra-kind-build"[^>]*>build</span>', markup)
    assert re.search(r'class="uvextra-badge uvextra-kind-unverified"[^>]*>unverified</span>', markup)
    text = _text(markup)
    assert "✗ 2 packages differ from the lock" in text
    assert "torch local-version 2.9.0+cpu → 2.9.0" in text
    assert "PEP 440 `==` lets the local part slip" in text
    assert "leftover 0.1 (not in the lock; not an error)" in text
    assert "click Reinstall to reinstall exactly these packages" in text  # the live card's wording
    static = _text(render_html(report))
    # no button in a saved notebook: the cell run again gives one
    assert "click Reinstall on the card to reinstall numpy torch (run this cell again for a live card)" in static


@pytest.mark.parametrize(
    ("probe", "extras", "state", "label"),
    [
        (GPU_OK, ["cu128"], "ok", "CUDA ✓"),
        (NO_GPU, ["cu128"], "bad", "CUDA ✗"),
        (CPU, ["cpu"], "neutral", "CPU"),
        (CPU_UNDER_CUDA, ["cu128"], "bad", "CUDA ✗"),
    ],
)
def test_cuda_verdict_badge_is_green_red_or_grey_with_its_why(
    probe: ProbeResult, extras: list[str], state: str, label: str
) -> None:
    markup = render_html(_switch_report(probe=probe, extras=extras))
    badge = re.search(
        r'<span class="uvextra-badge uvextra-verdict uvextra-verdict-(\w+)" style="([^"]*)">([^<]*)<', markup
    )
    assert badge is not None
    assert (badge.group(1), html_lib.unescape(badge.group(3))) == (state, label)
    colour = {"ok": "#067647", "bad": "#b42318", "neutral": "#667085"}[state]
    assert colour in badge.group(2)
    assert probe.verdict in _text(markup)


def test_kernel_state_says_restart_needed_and_how() -> None:
    stale = [
        StaleModule("torch", "torch", "2.9.0+cpu", "2.9.0+cu128", "imported as 2.9.0+cpu, the disk now has 2.9.0+cu128")
    ]
    server = KernelState(
        stale, RestartPlan("server", "restart through the Jupyter server", url="http://x/", _token="s3cr3t-token")
    )
    live = _text(render_html(_switch_report(), server, live=True))
    assert "⟳ restart needed — restart the kernel (the Restart kernel button) to use what is on disk" in live
    assert "torch: imported as 2.9.0+cpu, the disk now has 2.9.0+cu128" in live
    manual = KernelState(stale, RestartPlan("manual", "nothing would start it again: restart it yourself"))
    assert "nothing would start it again: restart it yourself" in _text(render_html(_switch_report(), manual))
    fresh = KernelState([], server.restart)
    assert "✓ no imported module is stale" in _text(render_html(_switch_report(), fresh))
    for rendering in (
        render_html(_switch_report(), server),
        render_markdown(_switch_report(), server),
        render_plain(_switch_report(), server),
        repr(server.restart),
    ):
        assert "s3cr3t-token" not in rendering


def test_interrupted_and_failed_reports_say_what_state_the_environment_is_in() -> None:
    interrupted = _switch_report(
        interrupted=True,
        drift=[LOCAL],
        failure="interrupted: uv was stopped before it finished; the environment was checked again",
    )
    text = _text(render_html(interrupted))
    assert "■ interrupted — uv was stopped; below is the environment as it is now" in text
    assert "torch local-version" in text
    failed = _text(render_html(_switch_report(failure="uv sync failed (exit 2): no solution")))
    assert "✗ failed: uv sync failed (exit 2): no solution" in failed


def test_everything_is_escaped_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", "hunter2hunter2")
    report = _switch_report(warnings=["index https://user:hunter2hunter2@host/simple <script>alert(1)</script>"])
    report.log.append("GET https://alice:pw@host/x hunter2hunter2")
    for rendering in (render_html(report), render_markdown(report), render_plain(report)):
        assert "hunter2hunter2" not in rendering
        assert ":pw@" not in rendering
    markup = render_html(report)
    assert "<script>" not in markup and "&lt;script&gt;" in markup


def test_markdown_and_plain_text_carry_the_same_facts() -> None:
    stale = KernelState(
        [StaleModule("torch", "torch", "2.9.0+cpu", "2.9.0", "imported as 2.9.0+cpu, the disk now has 2.9.0")],
        RestartPlan("exit", "its restarter starts it again"),
    )
    report = _switch_report(drift=[LOCAL], probe=NO_GPU)
    md = render_markdown(report, stale)
    assert "| `torch` | **local-version** | 2.9.0+cpu | 2.9.0 |" in md
    assert "| CUDA | 🔴 not available: CUDA 12.8 build but no NVIDIA driver on this machine |" in md
    assert "⟳ restart needed" in md
    plain = render_plain(report, stale)
    assert re.search(r"^drift +1 package differs from the lock:$", plain, re.M)
    assert re.search(r"^kernel +restart needed — restart the kernel to use what is on disk$", plain, re.M)
    assert "torch: imported as 2.9.0+cpu, the disk now has 2.9.0" in plain
    key_column = {
        line.index(line.split()[1]) for line in plain.splitlines() if line.startswith(("project", "drift", "kernel"))
    }
    assert len(key_column) == 1  # the kernel line is aligned with render_text's rows
    view = ReportView(report, stale)
    assert view._repr_markdown_() == md and repr(view) == plain and "uvextra-report" in view._repr_html_()


def test_progress_and_error_lines() -> None:
    log = [f"line {i}" for i in range(1000)]
    text = _text(render_progress("switching to cu128", 3.21, log, waiting="another uvextra is changing /v"))
    assert "▶ switching to cu128 · 3.2 s" in text
    assert "line 999" in text and "uv output (1000 lines)" in text and "(last 400 of 1000 lines)" in text
    assert "another uvextra is changing /v" in text
    assert _text(render_error("unknown extra 'x'; this project's extras are: cpu")) == (
        "uvextra: unknown extra 'x'; this project's extras are: cpu"
    )


def test_card_reads_without_styles(tmp_path: Path) -> None:
    """Where a viewer strips inline styles (GitHub), every badge still says its meaning in words."""
    report = _switch_report(drift=[LOCAL], probe=NO_GPU)
    bare = re.sub(r'\sstyle="[^"]*"', "", render_html(report))
    text = _text(bare)
    for words in ("✗ 1 package differs from the lock", "local-version", "CUDA ✗", "not available"):
        assert words in text


# ------------------------------------------------------------------------ real switches, their cards


@pytest.fixture
def real_switch(
    index_root: Path,
    tmp_path: Path,
    uv_new: str,
    uv_env: dict[str, str],
    make_venv: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[IndexServer, Path, Path]]:
    """(server, project, python): a project on its own index server, and a venv holding two packages that are not
    the project's (``tornado``, ``comm``, installed by hand), uv and its cache set for core.switch."""
    server = IndexServer(index_root).start()
    env = dict(uv_env, UVEXTRA_UV=uv_new, UV_CACHE_DIR=str(tmp_path / "cache"), UV_HTTP_RETRIES="0")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        project = project_on(server, tmp_path / "project", uv_new, env)
        venv = make_venv(tmp_path / "venv", packages=["tornado", "comm"], indexes=("kernelish",))
        yield server, project, venv / "bin" / "python"
    finally:
        server.stop()


def _details(markup: str, css: str) -> tuple[str, str]:
    """The (summary, content) of the ``<details class=css>`` disclosure, as a reader sees them."""
    found = re.search(rf'<details class="{css}"><summary[^>]*>(.*?)</summary>(.*?)</details>', markup)
    assert found is not None, markup
    return _text(found.group(1)), _text(found.group(2))


def test_the_card_of_a_real_switch_names_every_removal_and_keeps_the_foreign_behind_a_disclosure(
    real_switch: tuple[IndexServer, Path, Path],
) -> None:
    from uvextra.core import verbs as core

    _server, project, python = real_switch
    assert core.switch(["cu128"], project, python, probe=False).clean
    report = core.switch(["cpu"], project, python, probe=False)
    assert report.clean, report.to_dict()
    removed = {c.name for c in report.changes.removed}
    assert {"nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "triton"} <= removed, report.changes.removed
    assert set(report.changes.kept_foreign) == {"comm", "tornado"}, report.changes.kept_foreign
    markup = render_html(report, live=True)
    line = re.search(r'<div class="uvextra-removed"[^>]*>(.*?)</div>', markup)
    assert line is not None, markup
    # every removal named, with the version it had, on the card itself (not only "−3")
    assert _text(line.group(1)) == "removed: " + ", ".join(f"{c.name} {c.old}" for c in report.changes.removed)
    for change in report.changes.removed:
        assert f"{change.name} {change.old}" in _text(line.group(1))
    # what is not the project's: a count at a glance, the names one click away
    summary, names = _details(markup, "uvextra-foreign")
    assert summary == f"{len(report.changes.kept_foreign)} packages not from this project, kept"
    assert names.split(", ") == report.changes.kept_foreign
    outside = re.sub(r'<details class="uvextra-foreign">.*?</details>', "", markup)
    assert "tornado" not in _text(outside)  # behind the disclosure only


def test_the_card_of_a_switch_whose_index_is_down_shows_uvs_words_and_offers_no_reinstall(
    real_switch: tuple[IndexServer, Path, Path],
) -> None:
    from uvextra.core import verbs as core

    server, project, python = real_switch
    server.stop()
    report = core.switch(["cu128"], project, python, probe=False)
    assert report.failure_kind == "network", report.to_dict()
    assert report.errors, "premise: the lock's packages are missing, which a Reinstall would otherwise offer to fix"
    assert report.uv_error and f"127.0.0.1:{server.port}" in report.uv_error
    markup = render_html(report, live=True)
    text = _text(markup)
    shown = _text(re.sub(r"<details.*?</details>", "", markup, flags=re.S))  # uv's whole output stays folded
    for line in report.uv_error.splitlines():  # uv's own error text, every line of it, on the card — once
        assert " ".join(line.split()) in text, (line, text)
        assert shown.count(" ".join(line.split())) == 1, (line, shown)
    assert f"127.0.0.1:{server.port}" in text
    assert "✗ failed:" in text
    assert "nothing changed; retry when the index is reachable" in text
    assert "Reinstall" not in text and "uvextra repair" not in text  # no repair that can only fail again
    # what the failed switch never installed is one line, not a "missing" row per package
    missing = [d for d in report.errors if d.kind == "missing"]
    assert missing and f"{len(missing)} package{'s' if len(missing) > 1 else ''} of the lock not installed" in text
    assert "missing" not in text, text
    # the same report with the index reachable would be offered one: the card's wording is what changes
    offered = _text(render_html(dataclasses.replace(report, failure=None, failure_kind=None, uv_error=None), live=True))
    assert "click Reinstall" in offered


def test_a_notebook_says_what_to_do_in_a_notebooks_words() -> None:
    """The card, its Markdown and its text (all shown in a notebook) name ``%uvextra`` and Reinstall; the CLI's
    own text keeps the CLI's commands."""
    from uvextra.render.text import render_text

    drifted = _switch_report(drift=[LOCAL])
    unknown = _switch_report(extras=["cuda"], extras_unknown=["cuda"])
    for render in (lambda r: _text(render_html(r)), render_markdown, render_plain):
        said = render(drifted)
        assert "click Reinstall on the card to reinstall torch (run this cell again for a live card)" in said, said
        assert "uvextra repair" not in said
        said = render(unknown)
        assert "run `%uvextra cpu " in said and "uvextra switch" not in said, said
    assert "run `uvextra repair` to reinstall torch" in render_text(drifted)
    assert "`uvextra switch cpu | cu128 | pypi`" in render_text(unknown)
