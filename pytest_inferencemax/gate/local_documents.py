"""Documents every machine has, for accuracy gates that must run offline (the embedded suite, CI).

``builtin_documents``: the Zen of Python, then standard modules' docstrings, read from CPython's sources
with ``ast`` (nothing imported or printed). ``write_jsonl``: documents as wikitext-style ``{"page": text}``
lines, the local file format of the stock-style ``wikitext_local`` task."""
from __future__ import annotations

import ast
import codecs
import importlib.util
import json
from pathlib import Path

from pytest_inferencemax.errors import AccuracyError

BUILTIN_MODULES = ("argparse", "json", "re", "statistics", "configparser", "fileinput", "shelve", "wave", "timeit")


def builtin_documents(n: int = 8) -> list[str]:
    """The first ``n`` builtin documents (the Zen, then BUILTIN_MODULES' docstrings, in that order).
    Deterministic for a given Python version."""
    def _module_ast(name: str) -> ast.Module:
        if (spec := importlib.util.find_spec(name)) is None or not (spec.origin or "").endswith(".py"):
            raise AccuracyError(f"the standard module {name!r} has no Python source here")
        return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))

    if not 1 <= n <= 1 + len(BUILTIN_MODULES):
        raise AccuracyError(f"builtin documents: n must be 1..{1 + len(BUILTIN_MODULES)}, got {n}")
    zen = next(node.value.value for node in _module_ast("this").body
               if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "s")
    docs = [codecs.decode(zen, "rot13")]
    for name in BUILTIN_MODULES[: n - 1]:
        if not (doc := ast.get_docstring(_module_ast(name), clean=True)):
            raise AccuracyError(f"the standard module {name!r} has no docstring in this Python")
        docs.append(doc)
    return docs


def parse_builtin(source: str) -> int | None:
    """``builtin`` -> 8, ``builtin:N`` -> N, anything else -> None."""
    head, _, count = source.partition(":")
    if head != "builtin":
        return None
    if count and not count.isdigit():
        raise AccuracyError(f"dataset {source!r}: write builtin or builtin:N with N a number of documents")
    return int(count or 8)


def write_jsonl(docs: list[str], path: Path) -> Path:
    """Write documents as wikitext-style lines ``{"page": text}``."""
    Path(path).write_text("".join(json.dumps({"page": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return Path(path)
