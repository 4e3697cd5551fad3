"""Every third-party module the package imports is a declared dependency: a core one, or a module of an
optional extra imported through ``errors.import_extra`` (which says which extra to install), so that
``pip install pytest-inferencemax`` alone never gives a plugin that crashes on an import."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest

from pytest_inferencemax.errors import MissingExtraError, import_extra

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pytest_inferencemax"
# lm-eval task files: lm-eval itself loads them (inside the [eval] extra's own process), never the plugin
LM_EVAL_TASK_FILES = PACKAGE / "gate" / "accuracy_tasks"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[ ;<>=!~\[]", r.strip())[0]) for r in requirements}


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CORE = _requirement_names(PROJECT["dependencies"])
EXTRAS = {name: _requirement_names(reqs) for name, reqs in PROJECT["optional-dependencies"].items()}
DISTRIBUTIONS = md.packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions that provide a top-level module (its own name when none is installed)."""
    top = module.partition(".")[0]
    return {_norm(d) for d in DISTRIBUTIONS.get(top, [])} or {_norm(top)}


def third_party_imports() -> list[tuple[str, int, str, str | None]]:
    """(file, line, module, extra named by import_extra or None) for every import of a third-party module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                modules = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [(node.module, None)]
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_extra"
                  and len(node.args) >= 2 and all(isinstance(a, ast.Constant) for a in node.args[:2])):
                modules = [(node.args[0].value, node.args[1].value)]
            for module, extra in modules:
                top = module.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "pytest_inferencemax":
                    found.append((rel, node.lineno, module, extra))
    return found


def test_every_third_party_import_is_declared():
    problems = []
    for rel, line, module, via_extra in third_party_imports():
        dists = distributions(module)
        if dists & CORE:
            continue
        owners = sorted(name for name, reqs in EXTRAS.items() if dists & reqs)
        where = f"{rel}:{line}: {module}"
        if not owners:
            problems.append(f"{where} is not declared in pyproject.toml (dependencies or an extra)")
        elif via_extra is not None and via_extra not in owners:
            problems.append(f"{where} is imported as extra [{via_extra}], but pyproject declares it in {owners}")
        elif via_extra is None and not Path(ROOT / rel).is_relative_to(LM_EVAL_TASK_FILES):
            problems.append(f"{where} belongs to the extra(s) {owners}: import it with "
                            f"errors.import_extra({module!r}, {owners[0]!r}, '<what needs it>')")
    assert not problems, "\n".join(problems)


def test_the_check_sees_the_imports_it_must_see():
    """The walker finds plain, from-, function-level and import_extra imports (a check that saw none would pass)."""
    seen = {(rel.rsplit("/", 1)[-1], module) for rel, _, module, _ in third_party_imports()}
    assert ("stats.py", "scipy") in seen  # a function-level `from scipy import stats`
    assert ("smollm2.py", "torch") in seen  # through import_extra
    assert ("precise_client.py", "msgspec.json") in seen  # a module-level from-import
    assert "scipy" in CORE and "lm-eval" in EXTRAS["eval"] and "torch" in EXTRAS["cpu"]


def test_a_missing_extra_names_the_extra_and_the_command():
    with pytest.raises(MissingExtraError) as err:
        import_extra("no_such_module_here", "eval", "the accuracy gate")
    message = str(err.value)
    assert "the accuracy gate needs 'no_such_module_here'" in message
    assert "pip install 'pytest-inferencemax[eval]'" in message
    assert import_extra("json", "eval", "x").dumps([1]) == "[1]"  # an installed module comes back as itself
