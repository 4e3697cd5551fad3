"""The package shows the pipeline: plan -> serve -> measure and the gate -> results -> judge -> publish, with
plugin/ and cli/ on top; a module imports only from its own stage or the stages below it."""
from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "pytest_inferencemax"
# errors.py and progress.py are used by every stage; plugin and cli are two tops, apart
LAYERS = {"errors": 0, "progress": 0, "plan": 1, "serve": 2, "measure": 3, "gate": 3, "results": 4, "judge": 5,
          "publish": 6, "plugin": 7, "cli": 7}  # measure and the gate: two stages side by side, apart


def imports_of(path: Path) -> list[str]:
    """The pytest_inferencemax modules a file imports (at the top or inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; import from pytest_inferencemax.<stage>"
            if node.module == "pytest_inferencemax":
                found += [f"pytest_inferencemax.{a.name}" for a in node.names if a.name != "__version__"]
            elif node.module and node.module.startswith("pytest_inferencemax."):
                found.append(node.module)
                found += [f"{node.module}.{a.name}" for a in node.names  # a module from its package
                          if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").is_file()]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("pytest_inferencemax.")]
    return found


def stage_of(module_parts: tuple[str, ...]) -> str:
    return module_parts[0].removesuffix(".py")


def test_every_module_lives_in_a_stage_folder():
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", ".")))
    assert top == ["cli", "errors.py", "gate", "judge", "measure", "plan", "plugin", "progress.py", "publish",
                   "results", "serve"]


def test_imports_run_downwards_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = stage_of(path.relative_to(PACKAGE).parts)
        if me == "__init__.py":
            continue
        upward += [f"{path.relative_to(PACKAGE)} imports {module}" for module in imports_of(path)
                   if not (LAYERS[module.split(".")[1]] < LAYERS[me] or module.split(".")[1] == me)]
    assert upward == []


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of ``graph`` (module -> the modules it imports), as the modules around it, found once
    (depth-first search; a back edge closes a cycle)."""
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_import_cycle_finder_finds_one():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_anywhere_in_the_package():
    """Not even through an import inside a function (a lazy import is still a circle: each module needs the
    other to be whole)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    assert import_cycles(graph) == []


# Functions allowed over 60 lines (docstring included), each until it is split: the schedule's one coroutine (its
# phases share the loop's state), one point's measurement, and the share rule's judging of a curve.
LONG_FUNCTIONS = {("measure/loadgen.py", "run_load"), ("measure/runner.py", "measure_point"),
                  ("judge/verdict.py", "_judge_share")}


def test_no_function_is_over_60_lines_outside_the_allowlist():
    long, seen = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                seen.add((where, node.name))
                if (where, node.name) not in LONG_FUNCTIONS:
                    long.append(f"{where}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
    assert LONG_FUNCTIONS <= seen, f"no longer over 60 lines, drop from the allowlist: {LONG_FUNCTIONS - seen}"


def test_every_package_folder_is_a_regular_package():
    """A folder without ``__init__.py`` imports in the working tree (a namespace package) but a wheel built by
    setuptools' find_packages leaves it out: the gate/ package once had none."""
    folders = [d for d in PACKAGE.rglob("*") if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))]
    assert [str(d.relative_to(PACKAGE)) for d in folders if not (d / "__init__.py").is_file()] == []
