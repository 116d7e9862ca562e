"""Which backends an operation aims at (uvextra.core.aim): every branch of the pure function, on fabricated data.

No uv, no venv: a project read from a pyproject.toml written here, what the lock wants per backend and what is
installed as plain mappings. The end-to-end paths through it are in test_scenarios, test_default_groups and
test_project_shapes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from uvextra.core import aim
from uvextra.core.errors import UvextraError
from uvextra.core.project import Project, load_project
from uvextra.core.vocabulary import EXTRA, GROUP, Backend, Selection

CPU, CU128, PYPI = Backend("cpu"), Backend("cu128"), Backend("pypi")

TORCH_PROJECT = """
[project]
name = "moo"
version = "0"
dependencies = ["numpy"]
[project.optional-dependencies]
cpu = ["torch"]
cu128 = ["torch"]
pypi = ["torch"]
plot = ["matplotlib"]
[tool.uv]
conflicts = [[{ extra = "cpu" }, { extra = "cu128" }, { extra = "pypi" }]]
[tool.uv.sources]
torch = [{ index = "pytorch-cpu", extra = "cpu" }, { index = "pytorch-cu128", extra = "cu128" }]
"""

BASE = {"numpy": "2.3.0"}
LOCK = {
    CPU: {**BASE, "torch": "2.9.0+cpu"},
    CU128: {**BASE, "torch": "2.9.0+cu128", "triton": "3.5.0", "nvidia-cublas-cu12": "12.8.4.1"},
    PYPI: {**BASE, "torch": "2.9.0", "triton": "3.5.0", "nvidia-cublas-cu12": "12.8.4.1"},
    Backend("plot"): {**BASE, "matplotlib": "3.10.0"},
}
ASKS = {b: frozenset({"torch"}) for b in (CPU, CU128, PYPI)}


def _project(tmp_path: Path, text: str = TORCH_PROJECT) -> Project:
    (tmp_path / "pyproject.toml").write_text(text)
    return load_project(tmp_path)


def _evidence(installed: dict[str, str], **kw: object) -> aim.Evidence:
    args: dict[str, object] = {"installed": installed, "wanted": LOCK, "base": BASE, "asks": ASKS, **kw}
    return aim.Evidence(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- the values


def test_a_backend_is_a_value_of_name_and_kind():
    cpu_group = Backend("CPU", GROUP)
    assert (cpu_group.name, cpu_group.kind, str(cpu_group), cpu_group.flag) == ("cpu", "group", "cpu", "--group")
    assert cpu_group != Backend("cpu", EXTRA) and cpu_group == Backend("cpu", GROUP)
    assert Backend("cpu") == "cpu" and ["cpu"] == [Backend("cpu", GROUP)]  # a typed name matches by name
    assert len({Backend("cpu", EXTRA), Backend("cpu", GROUP)}) == 2
    assert Backend.asked("CPU", "extra").name == "CPU"  # as typed, resolved by the project later


def test_a_selection_says_what_uv_syncs(tmp_path):
    project = _project(tmp_path)
    selection = Selection((CU128,), no_default_groups=True)
    assert project.selection_args(selection) == ["--extra", "cu128", "--no-default-groups"]
    assert selection.to_dict() == {"extras": ["cu128"], "groups": [], "no_default_groups": True}
    assert project.selection(["CU128"]) == Selection((CU128,), False)


# ---------------------------------------------------------------------------------------------------- said


def test_given_names_are_validated(tmp_path):
    project = _project(tmp_path)
    assert aim.given(project, ["CU128"]) == aim.Aim((CU128,), "given", "given")
    with pytest.raises(UvextraError, match="unknown extra 'cuda'; this project's extras are: cpu, cu128, pypi, plot"):
        aim.given(project, ["cuda"])
    with pytest.raises(UvextraError, match="extras cpu and cu128 conflict"):
        aim.given(project, ["cpu", "cu128"])


def test_auto_picks_by_the_driver_and_says_why(tmp_path):
    project = _project(tmp_path)
    chosen = aim.auto(project, "570.86", rocm=False)
    assert (chosen.backends, chosen.how) == ((CU128,), "auto") and chosen.source.startswith("auto: ")
    assert aim.auto(project, None, rocm=False).backends == (CPU,)


def test_auto_that_cannot_choose_is_one_line(tmp_path):
    project = _project(tmp_path, TORCH_PROJECT.replace("cu128", "gpu").replace("cpu", "small"))
    with pytest.raises(UvextraError, match="^`auto` cannot choose: "):
        aim.auto(project, "570.86", rocm=False)


# ---------------------------------------------------------------------------------------------------- recorded


def _record(tmp_path: Path, **kw: object) -> aim.Recorded:
    args: dict[str, object] = {"project": str(tmp_path), "where": "/v/.uvextra/state.json", **kw}
    return aim.Recorded(**args)  # type: ignore[arg-type]


def test_the_last_switch_is_what_the_record_says(tmp_path):
    project = _project(tmp_path)
    got = aim.from_record(project, _record(tmp_path, extras=(CPU,)))
    assert got == aim.Aim((CPU,), "recorded", "recorded by the last switch (/v/.uvextra/state.json)")


def test_a_switch_that_did_not_finish_is_aimed_at(tmp_path):
    project = _project(tmp_path)
    record = _record(tmp_path, extras=(CPU,), requested=(CU128,), requested_failure="uv sync failed")
    got = aim.from_record(project, record)
    assert got is not None and (got.backends, got.how) == ((CU128,), "requested")
    assert got.source == (
        "asked for by the last switch, which did not finish (uv sync failed); the last successful switch was to cpu"
    )


def test_an_unfinished_switch_that_changed_nothing_keeps_the_last_one(tmp_path):
    project = _project(tmp_path)
    record = _record(tmp_path, extras=(CPU,), requested=(CU128,), requested_changed=False)
    got = aim.from_record(project, record)
    assert got is not None and (got.backends, got.how) == ((CPU,), "recorded")
    assert got.source.endswith("; the switch to cu128 after it did not finish and changed nothing")


def test_an_unfinished_switch_with_no_earlier_one_is_aimed_at_even_unchanged(tmp_path):
    project = _project(tmp_path)
    got = aim.from_record(project, _record(tmp_path, requested=(CU128,), requested_changed=False))
    assert (
        got is not None
        and got.backends == (CU128,)
        and got.source == ("asked for by the last switch, which did not finish")
    )


def test_a_record_of_another_project_or_of_gone_backends_is_not_used(tmp_path):
    project = _project(tmp_path)
    assert aim.from_record(project, _record(tmp_path, project="/elsewhere", extras=(CPU,))) is None
    assert aim.from_record(project, _record(tmp_path, extras=(Backend("rocm"),))) is None
    assert aim.from_record(project, _record(tmp_path, extras=(Backend("cpu", GROUP),))) is None  # another kind
    assert aim.from_record(project, _record(tmp_path)) is None


# ---------------------------------------------------------------------------------------------------- inferred


def test_what_inference_reads(tmp_path):
    project = _project(tmp_path)
    assert aim.to_read(project) == (CPU, CU128, PYPI, Backend("plot"))
    assert aim.needs_base(project, LOCK)  # plot is outside every set: its own packages are those beyond the base
    alone = _project(tmp_path, TORCH_PROJECT.replace('plot = ["matplotlib"]', ""))
    assert not aim.needs_base(alone, LOCK)
    assert aim.needs_base(alone, {CPU: LOCK[CPU]})  # one member readable: the base tells its own packages


def test_no_backends_at_all_checks_the_base(tmp_path):
    project = _project(tmp_path, '[project]\nname = "plain"\nversion = "0"\n')
    assert aim.infer(project, aim.Evidence()) == aim.Aim(
        (), "base", "no extras recorded; checking the base dependencies"
    )


def test_the_extra_whose_own_packages_are_installed_is_inferred(tmp_path):
    got = aim.infer(_project(tmp_path), _evidence({**BASE, "torch": "2.9.0+cu128", "triton": "3.5.0"}))
    assert (got.backends, got.how, got.unknown) == ((CU128,), "inferred", None)
    assert got.source == (
        "inferred: cu128 matches what is installed (cpu: 0 of 1, cu128: 2 of 3, pypi: 1 of 3 of their own "
        "packages installed)"
    )


def test_nothing_installed_is_said_not_guessed(tmp_path):
    got = aim.infer(_project(tmp_path), _evidence(dict(BASE)))
    assert (got.backends, got.unknown) == ((), "none")
    assert "none of cpu, cu128, pypi is installed (their own packages installed: cpu: 0 of 1" in got.source


def test_stray_packages_are_no_evidence(tmp_path):
    got = aim.infer(_project(tmp_path), _evidence({**BASE, "triton": "3.5.0"}))
    assert (got.backends, got.unknown) == ((), "none")
    assert "only stray packages (cu128's triton 3.5.0; pypi's triton 3.5.0), without torch" in got.source


def test_two_extras_matching_equally_are_a_tie(tmp_path):
    lock = {**LOCK, PYPI: dict(LOCK[CU128])}  # pypi pins what cu128 pins … apart from nothing of its own
    got = aim.infer(_project(tmp_path), _evidence({**BASE, "torch": "2.9.0+cu128"}, wanted=lock))
    assert (got.backends, got.unknown) == ((), "tie")
    assert "a tie: cu128 and pypi match what is installed equally well" in got.source


def test_members_that_lock_the_same_versions_are_a_tie(tmp_path):
    same = {b: dict(LOCK[CPU]) for b in (CPU, CU128, PYPI)}
    got = aim.infer(_project(tmp_path), _evidence({**BASE, "torch": "2.9.0+cpu"}, wanted={**LOCK, **same}))
    assert got.unknown == "tie" and "a tie: cpu and cu128 and pypi lock the same versions" in got.source


def test_the_default_group_is_what_a_plain_uv_sync_installs(tmp_path):
    project = _project(
        tmp_path,
        """
[project]
name = "persisted"
version = "0"
[dependency-groups]
pypi = ["torch"]
cpu = ["torch"]
[tool.uv]
default-groups = ["pypi"]
conflicts = [[{ group = "pypi" }, { group = "cpu" }]]
[tool.uv.sources]
torch = [{ index = "pytorch-cpu", group = "cpu" }]
""",
    )
    pypi, cpu = Backend("pypi", GROUP), Backend("cpu", GROUP)
    lock = {pypi: {"torch": "2.9.0"}, cpu: {"torch": "2.9.0+cpu"}}
    got = aim.infer(project, aim.Evidence(installed={}, wanted=lock))
    assert (got.backends, got.unknown) == ((pypi,), None)
    assert "pypi is the project's default ([tool.uv] default-groups), what `uv sync` installs" in got.source
    off = aim.infer(project, aim.Evidence(installed={}, wanted=lock), no_default_groups=True)
    assert (off.backends, off.unknown) == ((), "none")  # under --no-default-groups nothing is synced unasked


def test_an_unreadable_backend_is_named_and_judged_without(tmp_path):
    lock = {CPU: LOCK[CPU], Backend("plot"): LOCK[Backend("plot")]}
    unreadable = {CU128: "no wheel for this Python", PYPI: "the index is unreachable"}
    got = aim.infer(_project(tmp_path), _evidence({**BASE, "torch": "2.9.0+cpu"}, wanted=lock, unreadable=unreadable))
    assert got.backends == (CPU,)  # the one readable member: its own packages are those beyond the base
    assert got.unreadable == (("cu128", "no wheel for this Python"), ("pypi", "the index is unreachable"))


def test_a_set_none_of_which_can_be_read_is_said(tmp_path):
    unreadable = {b: "offline" for b in (CPU, CU128, PYPI)}
    got = aim.infer(_project(tmp_path), _evidence(dict(BASE), wanted={}, unreadable=unreadable))
    assert got.backends == () and got.unknown is None
    assert "none of cpu, cu128, pypi can be read here" in got.source


def test_a_loose_backend_is_inferred_when_all_its_own_packages_are_installed(tmp_path):
    installed = {**BASE, "torch": "2.9.0+cpu", "matplotlib": "3.10.0"}
    got = aim.infer(_project(tmp_path), _evidence(installed))
    assert got.backends == (CPU, Backend("plot"))
    assert got.source.endswith("plot (outside every conflict set) is installed (1 of its own packages)")


def test_loose_backends_only_none_installed_checks_the_base(tmp_path):
    project = _project(
        tmp_path, '[project]\nname = "p"\nversion = "0"\n[project.optional-dependencies]\nplot = ["x"]\n'
    )
    got = aim.infer(project, aim.Evidence(installed={}, wanted={Backend("plot"): {"x": "1"}}, base={}))
    assert (got.backends, got.how) == ((), "base")
    assert got.source == (
        "no extras recorded, and none outside a conflict set is installed; checking the base dependencies"
    )
    found = aim.infer(project, aim.Evidence(installed={"x": "1"}, wanted={Backend("plot"): {"x": "1"}}, base={}))
    assert (found.backends, found.how) == ((Backend("plot"),), "inferred")


def test_what_a_backend_asks_for_itself(tmp_path):
    data = {
        "project": {"optional-dependencies": {"CPU": ["torch>=2", "numpy"]}},
        "dependency-groups": {"cpu": ["Torch_Vision==0.24", {"include-group": "dev"}]},
    }
    got = aim.asks_for(data, [CPU, Backend("cpu", GROUP), CU128])
    assert got == {CPU: {"torch", "numpy"}, Backend("cpu", GROUP): {"torch-vision"}, CU128: set()}
