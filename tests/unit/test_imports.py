"""The package's import graph, read from the source with ``ast``: no cycle, and the layers point one way.

*Module level* means what runs when the module is imported: top-level statements, including those under a
top-level ``if``/``try``, but not those under ``if TYPE_CHECKING:`` (never run) and not those inside functions
(run on first use). See docs/architecture.md for the picture in words.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import uvextra

PACKAGE = Path(uvextra.__file__).parent


def _dotted(path: Path) -> str:
    """``core/verbs.py`` → ``core.verbs``; ``core/__init__.py`` → ``core``; the package's own face → ``__init__``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = sorted(_dotted(p) for p in PACKAGE.rglob("*.py"))
WINGS = ("core", "render", "kernel")  # the engine, the renderers, the kernel side; everything else is a surface
SURFACES_IN_IPYTHON = {"magic", "widgets"}  # the notebook surfaces: only they (and the after-restart glue) use them
IPYTHON_AND_WIDGETS = {"IPython", "ipywidgets"}  # ipykernel: the kernel side asks it for its connection file


def wing(module: str) -> str:
    head = module.split(".", maxsplit=1)[0]
    return head if head in WINGS else "surface"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], *, functions: bool, type_checking: bool) -> Iterator[ast.stmt]:
    """The statements of ``body`` that an import of the module runs (plus, when asked, function bodies and
    ``if TYPE_CHECKING:`` blocks)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if _is_type_checking(node.test):
                if type_checking:
                    yield from _statements(node.body, functions=functions, type_checking=type_checking)
                yield from _statements(node.orelse, functions=functions, type_checking=type_checking)
                continue
            blocks = [node.body, node.orelse]
        elif isinstance(node, ast.Try):
            blocks = [node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)]
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            blocks = [node.body, getattr(node, "orelse", [])]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # A class body runs at import; a function body only when called.
            blocks = [node.body] if functions or isinstance(node, ast.ClassDef) else []
        else:
            blocks = []
        for block in blocks:
            yield from _statements(block, functions=functions, type_checking=type_checking)


def _package_of(module: str) -> list[str]:
    """The package a module's relative imports start from (``core.verbs`` → ``core``; ``core`` → ``core``)."""
    is_package = (PACKAGE / module.replace(".", "/") / "__init__.py").exists() or module == "__init__"
    parts = [] if module == "__init__" else module.split(".")
    return parts if is_package else parts[:-1]


def _targets(module: str, node: ast.stmt) -> set[str]:
    """The package's own modules that an import statement in ``module`` names."""
    found: set[str] = set()
    if isinstance(node, ast.ImportFrom):
        parts = node.module.split(".") if node.module else []
        if node.level:
            base = _package_of(module)[: len(_package_of(module)) - (node.level - 1)]
        elif parts and parts[0] == "uvextra":
            base, parts = [], parts[1:]
        else:
            return found
        where = [*base, *parts]
        # `from . import verbs` names a module; `from .verbs import switch` a name in one
        found = {".".join([*where, alias.name]) for alias in node.names} & set(MODULES)
        if not found:
            found = {".".join(where) or "__init__"}
    elif isinstance(node, ast.Import):
        found |= {a.name.removeprefix("uvextra.") for a in node.names if a.name.startswith("uvextra.")}
    return found & set(MODULES)


@cache
def _tree(module: str) -> ast.Module:
    path = PACKAGE / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE / module.replace(".", "/") / "__init__.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def graph(*, functions: bool = False, type_checking: bool = False) -> dict[str, set[str]]:
    """Which of the package's modules each one imports. Importing ``core.verbs`` runs ``core/__init__`` too, but
    the package faces are lazy (tested below), so an edge goes to the module named, not to its package."""
    return {
        m: {
            t
            for node in _statements(_tree(m).body, functions=functions, type_checking=type_checking)
            for t in _targets(m, node)
        }
        - {m}
        for m in MODULES
    }


def external(module: str, *, functions: bool = False) -> set[str]:
    """Top-level names of the other distributions ``module`` imports."""
    names: set[str] = set()
    for node in _statements(_tree(module).body, functions=functions, type_checking=False):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan), each as a path a → … → a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path_in(sorted(component), edges))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _path_in(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth first: the shortest way back to the start
        v = queue.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return component


# --------------------------------------------------------------------------------------------------- the tests


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .x import A\n"
        "def f():\n    from . import y\ntry:\n    from .z import B\nexcept ImportError:\n    pass\n"
    )

    def names(**kw: bool) -> list[str]:
        return [n.module or n.names[0].name for n in _statements(tree.body, **kw) if isinstance(n, ast.ImportFrom)]

    assert names(functions=False, type_checking=False) == ["typing", "z"]  # what an import of it runs
    assert names(functions=True, type_checking=True) == ["typing", "x", "y", "z"]


def test_the_graph_reads_every_module() -> None:
    edges = graph()
    assert {"core.verbs", "kernel.session", "magic", "widgets", "cli", "render.card"} <= set(edges)
    assert "kernel.session" in edges["magic"] and edges["__main__"] == {"cli_quick"}
    assert "core.verbs" not in edges["cli"] and "core.verbs" in graph(functions=True)["cli"]  # imported on use
    assert "core.drift" in edges["core.verbs"] and "render.view" in edges["render.card"]


# Cycles made only by ``if TYPE_CHECKING:`` imports (an annotation names a type of a module that imports this
# one); they never run. Listed so that a new one fails here.
KNOWN_TYPE_ONLY_CYCLES: list[set[str]] = []


def test_no_import_cycle_at_module_level() -> None:
    assert cycles(graph()) == [], "module-level imports form a cycle"


def test_no_import_cycle_with_the_imports_inside_functions() -> None:
    """What runs sooner or later: module level plus every function-level (deferred) import."""
    assert cycles(graph(functions=True)) == []


def test_no_new_type_only_cycle_and_none_through_the_surfaces() -> None:
    for cycle in cycles(graph(functions=True, type_checking=True)):
        assert not set(cycle) & {"kernel.session", "magic", "widgets"}, cycle
        assert set(cycle) in KNOWN_TYPE_ONLY_CYCLES, f"a new cycle through type-only imports: {cycle}"


def test_the_wings_point_one_way() -> None:
    """The engine imports no renderer, no kernel side and no surface; the renderers import only the engine; the
    kernel side imports no surface — at any level, type-only imports included."""
    for module, targets in graph(functions=True, type_checking=True).items():
        wings = {wing(t) for t in targets}
        if wing(module) == "core":
            assert wings <= {"core"}, f"{module} (engine) imports {sorted(t for t in targets if wing(t) != 'core')}"
        elif wing(module) == "render":
            assert wings <= {"core", "render"}, f"{module} (renderer) imports {sorted(targets)}"
        elif wing(module) == "kernel":
            assert wings <= {"core", "render", "kernel"}, f"{module} (kernel side) imports {sorted(targets)}"


def test_the_decisions_are_made_from_data() -> None:
    """The vocabulary stands on nothing; which backends an operation aims at (``core.aim``) and why uv failed
    (``core.uv_failure``) are decided from the values handed in: neither reaches uv's runner, the venv, the lock or
    the record — the verbs gather those."""
    every = graph(functions=True, type_checking=True)
    assert every["core.vocabulary"] <= {"core.names"}, every["core.vocabulary"]
    pure = {"core.vocabulary", "core.names", "core.errors", "core.project", "core.accelerators"}
    assert every["core.aim"] <= pure, every["core.aim"] - pure
    assert every["core.uv_failure"] <= {"core.vocabulary", "core.uv", "core.space"}, every["core.uv_failure"]
    assert not {"core.uv", "core.installed", "core.lock", "core.state"} & every["core.aim"]


def test_only_the_notebook_surfaces_import_ipython() -> None:
    allowed = {*SURFACES_IN_IPYTHON, "after_restart"}
    for module in MODULES:
        if module not in allowed:
            assert not external(module, functions=True) & IPYTHON_AND_WIDGETS, module


def test_the_package_faces_are_lazy() -> None:
    """``uvextra``, ``uvextra.core``, ``uvextra.render`` and ``uvextra.kernel`` import nothing at load: a CLI call
    or ``%load_ext`` pays only for what it uses."""
    edges = graph()
    assert edges["__init__"] == {"core"}  # for __version__: core's face itself imports nothing
    for face in WINGS:
        assert edges[face] == set(), f"{face} imports {edges[face]} at load"


def test_the_cli_front_door_loads_only_what_python_starts_with() -> None:
    """``uvextra check`` enters through ``cli_quick``, which answers a repeated clean check before anything else is
    imported (issue 20's start-up): at load it imports only modules Python's own start-up has loaded, and no
    ``typing`` comes in through the package faces."""
    assert graph()["cli_quick"] == set()
    assert external("cli_quick") <= {"__future__", "marshal", "os", "sys"}
    code = (
        "import sys, uvextra.cli_quick; print(sorted(m for m in ('typing', 'dataclasses', 'pathlib', 'argparse',"
        " 'json', 'tomllib', 'enum', 'uvextra.cli', 'uvextra.core.verbs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_controller_is_imported_by_the_surfaces_and_imports_none() -> None:
    every = graph(functions=True, type_checking=True)
    assert "kernel.session" in graph()["magic"]  # the magic builds a Session when it loads
    assert "kernel.session" in every["widgets"] and "magic" not in every["widgets"]
    assert not every["kernel.session"] & (SURFACES_IN_IPYTHON | {"cli", "after_restart"}), every["kernel.session"]
    assert not external("kernel.session", functions=False) & {*IPYTHON_AND_WIDGETS, "ipykernel"}


def test_nothing_core_side_imports_a_notebook_surface() -> None:
    """Only the package's IPython entry points and the after-restart glue reach the magic or the widgets."""
    allowed = {"__init__", "after_restart", *SURFACES_IN_IPYTHON}
    for module, targets in graph(functions=True, type_checking=True).items():
        if module not in allowed:
            assert not targets & SURFACES_IN_IPYTHON, f"{module} imports {targets & SURFACES_IN_IPYTHON}"


def test_the_controller_is_usable_without_ipython(tmp_path: Path) -> None:
    """In a fresh interpreter: importing the controller and running an action loads neither IPython nor
    ipywidgets (and no surface of uvextra)."""
    script = (
        "import json, sys\n"
        "from uvextra.kernel.session import Action, Outcome, Session\n"
        "after_import = sorted(sys.modules)\n"
        "s = Session(object())\n"
        "def call(progress):\n"
        "    raise RuntimeError('no project here')\n"
        "o = s.execute(Action('a title', call))\n"
        "print(json.dumps({'import': after_import, 'run': sorted(sys.modules), 'error': o.error,\n"
        "                  'last': s.last is o, 'outcome': isinstance(o, Outcome)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    for when in ("import", "run"):
        loaded = set(got[when])
        assert not {m for m in loaded if m.split(".")[0] in ("IPython", "ipywidgets", "ipykernel")}, when
        assert not loaded & {"uvextra.magic", "uvextra.widgets", "uvextra.cli"}, when
    assert "uvextra.core.verbs" not in got["import"]  # the core comes with the first action, not with the import
    assert got["error"].startswith("unexpected RuntimeError: no project here") and got["last"] and got["outcome"]


def test_the_probes_parse_and_judge_run_no_process() -> None:
    """collect → parse → judge: only ``core.cuda_probe`` starts and waits for the child; parsing its output and
    judging it are pure (unit-tested without a process), and neither reaches back to the collector."""
    every = graph(functions=True, type_checking=True)
    for module in ("core.probe_child", "core.probe_verdict"):
        assert not external(module, functions=True) & {"subprocess", "tempfile", "select"}, module
        assert "core.cuda_probe" not in every[module], module
    assert {"core.probe_child", "core.probe_verdict"} <= every["core.cuda_probe"]


def test_the_renderers_draw_the_verdict_and_the_flavour_without_judging() -> None:
    """The verdict's state and the build flavour are decided in the core: no renderer reads extras' names, torch
    versions or the probe's child on its own."""
    judges = {"core.accelerators", "core.flavour", "core.cuda_probe", "core.probe_child", "core.probe_verdict"}
    for module, targets in graph(functions=True).items():
        if wing(module) == "render":
            assert not targets & judges, f"{module} imports {sorted(targets & judges)}"


def _writes_into_a_report(tree: ast.Module) -> list[int]:
    """The lines where code sets a report's field or grows one of its lists (``report.x = …``,
    ``made.report.warnings.extend(…)``, ``report.changes.kept += …``)."""

    def through_a_report(node: ast.expr) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
            if (isinstance(node, ast.Attribute) and node.attr == "report") or (
                isinstance(node, ast.Name) and node.id == "report"
            ):
                return True
        return False

    lines = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [
                t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])
            ]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("append", "extend", "insert", "update", "setdefault", "pop", "remove", "clear"):
                targets = [ast.Attribute(value=node.func.value, attr="_")]
        lines += [node.lineno for t in targets if isinstance(t, ast.Attribute) and through_a_report(t)]
    return sorted(lines)


def test_the_verbs_assemble_their_report_once_and_nobody_patches_it() -> None:
    """Each verb builds its Report once, from what its helpers returned; surfaces pass what they know in (the verbs'
    ``remarks=``), and nothing anywhere writes into a report after it was made."""
    assert _writes_into_a_report(ast.parse("report.warnings.append('x')\nmade.report.failure = None\n")) == [1, 2]
    assert _writes_into_a_report(ast.parse("sofar.warnings.append('x')\nreport = f()\nprint(report.warnings)\n")) == []
    patched = {m: _writes_into_a_report(_tree(m)) for m in MODULES if m != "core.report"}
    assert {m: lines for m, lines in patched.items() if lines} == {}
