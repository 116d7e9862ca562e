"""pyproject reading, extras validation and secret masking."""

from __future__ import annotations

import pytest

from uvextra.core.errors import UvextraError
from uvextra.core.project import find_project, load_project
from uvextra.core.redact import redact

SEED = """
[project]
name = "moo"
version = "0.1.0"
dependencies = ["numpy"]
[project.optional-dependencies]
cpu = ["torch>=2.8.0"]
cu128 = ["torch>=2.8.0"]
pypi = ["torch>=2.8.0"]
dev-tools = ["ruff"]
[tool.uv]
conflicts = [[{ extra = "cpu" }, { extra = "cu128" }, { extra = "pypi" }]]
[[tool.uv.index]]
name = "pytorch-cpu"
url = "https://alice:s3cr3t-token@example.invalid/whl/cpu"
explicit = true
"""


def test_seed_project_extras_conflicts_and_masked_index(tmp_path):
    (tmp_path / "pyproject.toml").write_text(SEED)
    (tmp_path / "sub" / "dir").mkdir(parents=True)
    assert find_project(tmp_path / "sub" / "dir") == tmp_path
    project = load_project(tmp_path / "sub")
    assert project.extras == ("cpu", "cu128", "pypi", "dev-tools")
    assert project.conflict_sets == (("cpu", "cu128", "pypi"),)
    assert "s3cr3t" not in project.indexes["pytorch-cpu"] and "alice:***@" in project.indexes["pytorch-cpu"]
    assert project.validate_extras(["CU128", "dev_tools"]) == ("cu128", "dev-tools")


def test_unknown_and_conflicting_extras_are_one_line_errors(tmp_path):
    (tmp_path / "pyproject.toml").write_text(SEED)
    project = load_project(tmp_path)
    with pytest.raises(UvextraError, match=r"unknown extra 'cu999'; this project's extras are: cpu, cu128, pypi"):
        project.validate_extras(["cu999"])
    with pytest.raises(UvextraError, match=r"extras cpu and pypi conflict \(conflict set: cpu, cu128, pypi\)"):
        project.validate_extras(["cpu", "pypi"])


def test_malformed_pyproject_names_file_and_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "moo"\nversion = \n')
    with pytest.raises(UvextraError) as err:
        load_project(tmp_path)
    assert "pyproject.toml" in str(err.value) and "line 3" in str(err.value)
    assert "\n" not in str(err.value)


def test_no_project_upward(tmp_path):
    with pytest.raises(UvextraError, match="no pyproject.toml found"):
        find_project(tmp_path)


def test_redact_masks_url_credentials_and_secret_env_values():
    env = {"UV_INDEX_INTERNAL_PASSWORD": "hunter2-secret", "HOME": "/root"}
    text = "GET https://bob:tok3n@host/simple and https://onlytoken@host/x failed; pw hunter2-secret in /root"
    out = redact(text, env)
    assert "tok3n" not in out and "onlytoken" not in out and "hunter2-secret" not in out
    assert "https://bob:***@host/simple" in out and "https://***@host/x" in out and "/root" in out
