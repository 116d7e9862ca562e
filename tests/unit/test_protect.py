"""What a switch may remove (``uvextra.core.protect``), on fabricated ``.dist-info`` folders read the way a scan reads
them: the kernel's closure (requirements followed through extras and markers), what is the project's, and the split.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.markers import default_environment

from uvextra.core.installed import Installed, read_dist_info
from uvextra.core.protect import KERNEL_ROOTS, SEED_PACKAGES, kernel_closure, project_owned, removable

ENV_311 = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.7"}


def installed(tmp_path: Path, *packages: tuple[str, str, list[str]]) -> dict[str, Installed]:
    """``{name: Installed}`` as a scan finds them: one ``.dist-info`` per (name, version, Requires-Dist lines)."""
    out: dict[str, Installed] = {}
    site = tmp_path / "site-packages"
    for name, version, requires in packages:
        folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir(parents=True)
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {line}" for line in requires]
        (folder / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "RECORD").write_text(f"{folder.name}/METADATA,,\n", encoding="utf-8")
        dist = read_dist_info(folder)
        assert dist is not None
        out[dist.name] = dist
    return out


# ------------------------------------------------------------------------------------------------ kernel_closure


def test_the_closure_is_the_installed_roots_and_what_they_require_transitively(tmp_path: Path) -> None:
    found = installed(
        tmp_path,
        ("ipykernel", "7.1.0", ["tornado>=6.2", "comm>=0.1.1", "jupyter-client>=8"]),
        ("tornado", "6.5.2", []),
        ("comm", "0.2.3", ["traitlets>=4"]),
        ("traitlets", "5.14.3", []),
        ("torch", "2.9.0", ["filelock", "sympy"]),
        ("filelock", "3.20.0", []),
    )
    # jupyter-client is required but not installed: not followed, not in the closure
    assert kernel_closure(found, ENV_311) == {"ipykernel", "tornado", "comm", "traitlets"}


def test_no_root_installed_means_an_empty_closure(tmp_path: Path) -> None:
    found = installed(tmp_path, ("torch", "2.9.0", ["filelock"]), ("filelock", "3.20.0", []))
    assert kernel_closure(found, ENV_311) == set()


def test_roots_are_given_in_any_spelling_and_may_be_chosen(tmp_path: Path) -> None:
    found = installed(tmp_path, ("Jupyter_Server", "2.17.0", ["anyio"]), ("anyio", "4.11.0", []))
    assert kernel_closure(found, ENV_311) == {"jupyter-server", "anyio"}  # a default root, PEP 503-normalised
    assert kernel_closure(found, ENV_311, roots=("ANYIO",)) == {"anyio"}


def test_the_default_roots_are_the_kernel_its_widgets_uvextra_and_a_server(tmp_path: Path) -> None:
    assert {"ipykernel", "ipywidgets", "uvextra", "jupyter-server", "jupyterlab", "notebook"} <= set(KERNEL_ROOTS)
    found = installed(tmp_path, *((root, "1.0", []) for root in KERNEL_ROOTS))
    assert kernel_closure(found, ENV_311) == set(KERNEL_ROOTS)


def test_extras_a_requirement_asks_for_are_followed_and_others_are_not(tmp_path: Path) -> None:
    found = installed(
        tmp_path,
        ("jupyter-server", "2.17.0", ["jupyter-events>=0.11"]),
        ("jupyter-events", "0.12.0", ["jsonschema[format-nongpl]>=4.18"]),
        (
            "jsonschema",
            "4.25.1",
            ["attrs>=22.2", 'fqdn; extra == "format-nongpl"', 'webcolors>=24.6; extra == "format"'],
        ),
        ("attrs", "25.4.0", []),
        ("fqdn", "1.5.1", []),
        ("webcolors", "24.11.1", []),
    )
    closure = kernel_closure(found, ENV_311)
    assert {"jsonschema", "attrs", "fqdn"} <= closure
    assert "webcolors" not in closure  # only the `format` extra asks for it; nobody asked for that extra


def test_an_extra_asked_for_later_is_followed_too(tmp_path: Path) -> None:
    # jsonschema is reached first without extras (from ipykernel), then with one (from jupyter-events)
    found = installed(
        tmp_path,
        ("ipykernel", "7.1.0", ["jsonschema"]),
        ("jupyter-server", "2.17.0", ["jupyter-events"]),
        ("jupyter-events", "0.12.0", ["jsonschema[format-nongpl]"]),
        ("jsonschema", "4.25.1", ['fqdn; extra == "format-nongpl"']),
        ("fqdn", "1.5.1", []),
    )
    assert "fqdn" in kernel_closure(found, ENV_311)


@pytest.mark.parametrize(("python", "kept"), [("3.11", False), ("3.9", True)])
def test_markers_are_evaluated_for_the_target_interpreter(tmp_path: Path, python: str, kept: bool) -> None:
    found = installed(
        tmp_path,
        ("ipykernel", "7.1.0", ['importlib-metadata>=4.8.3; python_version < "3.10"']),
        ("importlib-metadata", "8.7.0", []),
    )
    closure = kernel_closure(found, {**ENV_311, "python_version": python})
    assert ("importlib-metadata" in closure) is kept


@pytest.mark.parametrize(("platform", "kept"), [("linux", False), ("darwin", True)])
def test_the_target_interpreters_platform_decides_too(tmp_path: Path, platform: str, kept: bool) -> None:
    found = installed(tmp_path, ("ipykernel", "7.1.0", ['appnope; sys_platform == "darwin"']), ("appnope", "0.1.4", []))
    assert ("appnope" in kernel_closure(found, {**ENV_311, "sys_platform": platform})) is kept


def test_an_unreadable_requirement_is_skipped_and_the_rest_followed(tmp_path: Path) -> None:
    found = installed(tmp_path, ("ipykernel", "7.1.0", ["not a requirement !!", "comm"]), ("comm", "0.2.3", []))
    assert kernel_closure(found, ENV_311) == {"ipykernel", "comm"}


def test_a_requirement_cycle_ends(tmp_path: Path) -> None:
    found = installed(tmp_path, ("ipykernel", "7.1.0", ["a"]), ("a", "1", ["b"]), ("b", "1", ["a", "ipykernel"]))
    assert kernel_closure(found, ENV_311) == {"ipykernel", "a", "b"}


# ------------------------------------------------------------------------------------------------ project_owned


def test_owned_is_what_the_lock_locks_and_what_uvextra_recorded_normalised() -> None:
    assert project_owned(["Torch", "torch_vision"], ["nvidia.cublas-cu12"]) == {
        "torch",
        "torch-vision",
        "nvidia-cublas-cu12",
    }


def test_the_venvs_seed_is_never_the_projects_even_when_locked_or_recorded() -> None:
    assert SEED_PACKAGES == {"pip", "setuptools", "wheel"}
    assert project_owned(["pip", "Setuptools", "torch"], ["wheel"]) == {"torch"}


def test_nothing_locked_and_nothing_recorded_owns_nothing() -> None:
    assert project_owned([], []) == set()


# ------------------------------------------------------------------------------------------------ removable


def test_unwanted_packages_of_the_project_are_removed_foreign_ones_kept() -> None:
    remove, foreign = removable(
        installed=["torch", "nvidia-cublas-cu12", "requests", "numpy", "pip"],
        wanted={"torch", "numpy"},
        kernel=set(),
        owned={"torch", "nvidia-cublas-cu12"},
    )
    assert (remove, foreign) == (["nvidia-cublas-cu12"], ["pip", "requests"])


def test_the_kernels_closure_is_in_neither_list() -> None:
    remove, foreign = removable(
        installed=["ipykernel", "tornado", "torch", "old-thing"],
        wanted={"torch"},
        kernel={"ipykernel", "tornado"},
        owned={"tornado", "old-thing"},  # the lock may lock tornado too: the kernel still keeps it
    )
    assert (remove, foreign) == (["old-thing"], [])


def test_exact_removes_whatever_is_not_wanted_except_the_kernels_closure() -> None:
    remove, foreign = removable(
        installed=["requests", "ipykernel", "torch", "pip"],
        wanted={"torch"},
        kernel={"ipykernel"},
        owned=set(),
        exact=True,
    )
    assert (remove, foreign) == (["pip", "requests"], [])


def test_both_lists_are_sorted_and_empty_when_everything_is_wanted() -> None:
    remove, foreign = removable(["c", "a", "b", "z", "y"], wanted=set(), kernel=set(), owned={"c", "a", "b"})
    assert (remove, foreign) == (["a", "b", "c"], ["y", "z"])
    assert removable(["a", "b"], wanted={"a", "b"}, kernel=set(), owned={"a"}) == ([], [])
