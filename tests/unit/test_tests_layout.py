"""The tests' own layout, read with ``ast``: every test module sits in its tier's folder, and helpers come from the
harness package ``tests/support`` — never from ``conftest`` or from another test module (which would tie tiers
together and register fixtures twice).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "e2e")


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_test_module_is_in_a_tier_folder() -> None:
    misplaced = sorted(
        str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py") if p.relative_to(TESTS).parts[0] not in TIERS
    )
    assert misplaced == [], f"put these in tests/unit, tests/integration or tests/e2e: {misplaced}"
    assert not list(TESTS.glob("*/conftest.py")), "fixtures live in tests/conftest.py only"
    assert (TESTS / "support" / "__init__.py").is_file(), "the harness is the package tests/support"
    names = sorted(p.name for p in TESTS.rglob("test_*.py"))
    twice = sorted({n for n in names if names.count(n) > 1})
    assert twice == [], f"pytest imports test modules by their file name: one of each, please: {twice}"


def test_helpers_come_from_the_support_package_not_from_tests_or_conftest() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        if ".venv" in path.parts:
            continue
        bad = {m for m in _imported_modules(path) if m == "conftest" or m.startswith("test_")}
        if bad:
            offenders[str(path.relative_to(TESTS))] = sorted(bad)
    assert offenders == {}, f"move what these import into tests/support/: {offenders}"
