"""The package shows the pipeline: plan -> serve -> measure -> results -> judge -> publish, with
plugin/ and cli/ on top; a module imports only from its own stage or the stages below it."""
from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "pytest_inferencemax"
# errors.py and progress.py are used by every stage; plugin and cli are two tops, apart
LAYERS = {"errors": 0, "progress": 0, "plan": 1, "serve": 2, "measure": 3, "results": 4, "judge": 5, "publish": 6,
          "plugin": 7, "cli": 7}


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
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("pytest_inferencemax.")]
    return found


def stage_of(module_parts: tuple[str, ...]) -> str:
    return module_parts[0].removesuffix(".py")


def test_every_module_lives_in_a_stage_folder():
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", ".")))
    assert top == ["cli", "errors.py", "judge", "measure", "plan", "plugin", "progress.py", "publish", "results",
                   "serve"]


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
