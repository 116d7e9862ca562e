"""Reading a lock (``uvextra.core.lock``) from small ``uv.lock`` and ``pylock.toml`` files written here: sources and
dependencies per package, the one-line errors, the selection for this interpreter, and uv's error in one line.

No uv runs here (``tests/integration/test_lock_with_uv.py`` exports and checks real locks with the real uv); the
selection asks the running interpreter for its markers and tags, as a check does.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from uvextra.core.environment import Environment
from uvextra.core.errors import UvextraError
from uvextra.core.lock import Wanted, first_error, needs_download, read_uv_lock, wanted_from_pylock
from uvextra.core.project import Project, load_project

SHA = hashlib.sha256(b"a wheel").hexdigest()
CPU = "http://127.0.0.1:9/cpu/simple"
PYPI = "http://127.0.0.1:9/pypi/simple"

UV_LOCK = f"""\
version = 1
revision = 3
requires-python = ">=3.10"

[manifest]
overrides = [{{ name = "cuda-bindings", marker = "python_full_version < '3'" }}]

[[package]]
name = "moo"
version = "0.1.0"
source = {{ editable = "." }}

[[package]]
name = "torch"
version = "2.9.0"
source = {{ registry = "{PYPI}/" }}
dependencies = [
    {{ name = "filelock" }},
    {{ name = "nvidia-cublas-cu12", marker = "sys_platform == 'linux'" }},
    {{ name = "pywin32", marker = "sys_platform == 'win32'" }},
]

[[package]]
name = "torch"
version = "2.9.0"
source = {{ registry = "http://user:s3cret@127.0.0.1:9/mirror/simple" }}
dependencies = [{{ name = "filelock" }}]

[[package]]
name = "torch"
version = "2.9.0+cpu"
source = {{ registry = "{CPU}" }}
dependencies = [
    {{ name = "Filelock" }},
    {{ name = "triton", marker = "extra == 'extra-3-moo-cpu'" }},
]

[[package]]
name = "filelock"
version = "3.20.0"
source = {{ registry = "{PYPI}" }}
"""

PYPROJECT = """\
[project]
name = "moo"
version = "0.1.0"
requires-python = ">=3.10"

[project.optional-dependencies]
cpu = ["torch==2.9.0+cpu"]
pypi = ["torch==2.9.0"]

[tool.uv]
conflicts = [[{ extra = "cpu" }, { extra = "pypi" }]]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "moo"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "uv.lock").write_text(UV_LOCK, encoding="utf-8")
    return load_project(root)


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    prefix = tmp_path / "venv"
    prefix.mkdir()
    return Environment(prefix=prefix, python=Path(sys.executable))


def wanted(name: str, version: str, index: str) -> Wanted:
    return Wanted(name, version, "index", index=index)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ uv.lock


def test_each_name_and_version_lists_its_sources_with_credentials_masked(project: Project) -> None:
    info = read_uv_lock(project)
    assert info.sources[("torch", "2.9.0")] == [
        "registry:" + PYPI,
        "registry:http://user:***@127.0.0.1:9/mirror/simple",
    ]
    assert info.sources[("torch", "2.9.0+cpu")] == ["registry:" + CPU]
    assert info.sources[("moo", "0.1.0")] == ["other"]
    assert "s3cret" not in repr(info)


def test_the_same_version_from_two_indexes_is_ambiguous(project: Project) -> None:
    info = read_uv_lock(project)
    assert info.ambiguous("torch", "2.9.0") is True  # the mirror's build has the same version string
    assert info.ambiguous("torch", "2.9.0+cpu") is False
    assert info.ambiguous("numpy", "2.3.0") is False  # not locked at all


def test_dependencies_are_per_source_and_follow_the_targets_markers(project: Project) -> None:
    info = read_uv_lock(project)
    pypi = wanted("torch", "2.9.0", PYPI + "/")  # a trailing slash names the same index
    assert info.deps_for(pypi) == {"filelock", "nvidia-cublas-cu12", "pywin32"}  # without a target: every name
    assert info.deps_for(pypi, {"sys_platform": "linux", "python_version": "3.11"}) == {
        "filelock",
        "nvidia-cublas-cu12",
    }
    assert info.deps_for(pypi, {"sys_platform": "win32", "python_version": "3.11"}) == {"filelock", "pywin32"}
    cpu = wanted("torch", "2.9.0+cpu", CPU)
    # a conflict marker says which backend, not which platform: it always holds; names are normalised
    assert info.deps_for(cpu, {"sys_platform": "linux"}) == {"filelock", "triton"}
    assert info.deps_for(wanted("torch", "2.9.0", "http://127.0.0.1:9/elsewhere/simple")) is None


def test_names_the_project_overrides_are_known(project: Project) -> None:
    assert read_uv_lock(project).adjusted == {"cuda-bindings"}


def test_a_lock_of_the_same_text_is_read_once_and_kept_in_the_venv(project: Project, env: Environment) -> None:
    first = read_uv_lock(project, env)
    assert list((env.state_dir).rglob("uvlock-*")), "no copy kept in the venv"
    assert read_uv_lock(project, env, store=False) == first


def test_no_lock_says_how_to_make_one(project: Project) -> None:
    project.lockfile.unlink()
    with pytest.raises(UvextraError) as caught:
        read_uv_lock(project)
    assert str(caught.value) == (
        f"no uv.lock in {project.lock_root}; run `uv lock --project {project.lock_root}`, then run uvextra again"
    )


def test_a_lock_that_is_not_toml_names_the_file_and_line(project: Project) -> None:
    project.lockfile.write_text('version = 1\n[[package]]\nname = "torch\n', encoding="utf-8")
    with pytest.raises(UvextraError) as caught:
        read_uv_lock(project)
    message = str(caught.value)
    assert message.startswith(f"{project.lockfile}: invalid TOML: ") and "line 3" in message, message
    assert message.endswith("; regenerate it with `uv lock`") and "\n" not in message


def test_packages_that_are_not_a_list_are_refused_in_one_line(project: Project) -> None:
    project.lockfile.write_text('version = 1\n[package]\nname = "torch"\n', encoding="utf-8")
    with pytest.raises(UvextraError) as caught:
        read_uv_lock(project)
    assert str(caught.value) == f"{project.lockfile}: [[package]] is not a list; regenerate it with `uv lock`"


# ------------------------------------------------------------------------------------------------ pylock export


def pylock(*packages: str) -> str:
    return 'lock-version = "1.0"\ncreated-by = "uv"\nrequires-python = ">=3.10"\n\n' + "\n".join(packages)


TORCH_WHEEL = f"""\
[[packages]]
name = "torch"
version = "2.9.0+cpu"
index = "http://user:s3cret@127.0.0.1:9/cpu/simple"
wheels = [{{ name = "torch-2.9.0+cpu-py3-none-any.whl", url = "http://127.0.0.1:9/cpu/files/torch-2.9.0%2Bcpu-py3-none-any.whl", size = 7, hashes = {{ sha256 = "{SHA}" }} }}]
"""
WINDOWS_ONLY = f"""\
[[packages]]
name = "pywin32"
version = "311"
marker = "sys_platform == 'win32'"
index = "{PYPI}"
wheels = [{{ name = "pywin32-311-py3-none-any.whl", url = "http://127.0.0.1:9/pypi/files/pywin32-311-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
"""
EDITABLE = """\
[[packages]]
name = "moo"
directory = { path = ".", editable = true }
"""


def test_the_export_selects_what_this_interpreter_installs(project: Project, env: Environment) -> None:
    if sys.platform == "win32":
        pytest.skip("the windows-only package is the one left out")
    got = wanted_from_pylock(pylock(TORCH_WHEEL, WINDOWS_ONLY, EDITABLE), project, env)
    assert sorted(got) == ["moo", "torch"]
    torch = got["torch"]
    assert (torch.version, torch.kind, torch.index) == ("2.9.0+cpu", "index", "http://user:***@127.0.0.1:9/cpu/simple")
    assert (torch.wheel, torch.wheel_hash, torch.wheel_tags, torch.wheel_size) == (
        "torch-2.9.0+cpu-py3-none-any.whl",
        SHA,
        ("py3-none-any",),
        7,
    )
    assert torch.source_label == "index http://user:***@127.0.0.1:9/cpu/simple"
    moo = got["moo"]
    assert (moo.kind, moo.location) == ("editable", str(project.root))
    assert moo.source_label == f"editable {project.root}"


def test_an_export_that_is_not_a_pylock_is_one_line_asking_for_a_report(project: Project, env: Environment) -> None:
    with pytest.raises(UvextraError) as caught:
        wanted_from_pylock('lock-version = "1.0"\n[[packages]]\nversion = "1"\n', project, env)
    message = str(caught.value)
    assert message.startswith("uv's pylock export could not be read (") and "\n" not in message
    assert message.endswith("); report this with your uv version")


# ------------------------------------------------------------------------------------------------ uv's words


def test_uvs_error_is_its_first_error_line_and_the_causes_after_it() -> None:
    stderr = """\
Using CPython 3.11.7
   Resolved 12 packages in 3ms
error: Failed to fetch: `http://127.0.0.1:9/cpu/simple/torch/`
  Caused by: Request failed after 0 retries
  Caused by: error sending request
  Caused by: tcp connect error
  Caused by: Connection refused (os error 111)
"""
    assert first_error(stderr) == (
        "error: Failed to fetch: `http://127.0.0.1:9/cpu/simple/torch/` Caused by: Request failed after 0 retries "
        "Caused by: error sending request Caused by: tcp connect error"
    )


def test_without_an_error_line_uvs_first_lines_are_its_error() -> None:
    assert first_error("\n  warning: something odd\n  more\n") == "warning: something odd more"
    assert first_error("") == ""


@pytest.mark.parametrize(
    ("message", "download"),
    [
        ("error: Failed to download distributions to compute missing hashes", True),
        ("error: Network connectivity is disabled, but a remote requirement was requested", True),
        ("error: ... because the network was disabled", True),
        ("error: No solution found when resolving dependencies", False),
    ],
)
def test_an_export_that_needs_a_download_is_recognised(message: str, download: bool) -> None:
    assert needs_download(message) is download
