"""The GitHub Actions matrix of a sweep: one job per (suite, ISL, OSL) group of points.

    python -m pytest_inferencemax.cli.matrix SUITE_DIR... [--stage NAME] [--isl-osl 1024-1024,8192-1024] [--conc 4,8]

Prints ``{"include": [...]}`` on one line, one entry per (suite, ISL, OSL) that keeps at least one
point after the filters, in the order of the arguments and of each suite's workloads. Each entry
carries what a job needs: ``suite`` (the directory to give pytest), ``name``, ``stage``,
``engine``, ``isl``, ``osl``, ``conc`` (the group's concurrencies, ``4,8``), ``points`` and ``k``, a
``pytest -k`` expression selecting exactly that group's points. ``--conc`` replaces every
workload's CONC list exactly as pytest's ``--conc`` does, so give pytest the same value. Bad input
exits with code 2 and one line naming the problem and the fix. See docs/ci.md.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_inferencemax.plan.values import conc_list
from pytest_inferencemax.plan.points import PlanOptions, Point, plan_points
from pytest_inferencemax.plan.suite import SuiteError, load_suite
from pytest_inferencemax.errors import ConfigError

_PAIR = re.compile(r"^\s*(\d+)\s*[-/]\s*(\d+)\s*$")


class MatrixError(ConfigError):
    """Input the matrix cannot be built from; the message names the problem and the fix."""


def parse_isl_osl(text: str) -> tuple[tuple[int, int], ...]:
    """``1024-1024,8192-1024`` -> ((1024, 1024), (8192, 1024)); ``ISL/OSL`` is accepted too."""
    parts = [p for p in text.split(",") if p.strip()]
    pairs = [_PAIR.match(p) for p in parts]
    if not parts or not all(pairs):
        raise MatrixError(f"--isl-osl {text!r} is not a list of ISL-OSL pairs; write e.g. 1024-1024,8192-1024")
    values = tuple((int(m.group(1)), int(m.group(2))) for m in pairs if m)
    if len(set(values)) != len(values):
        raise MatrixError(f"--isl-osl {text!r} names a pair twice; list each ISL-OSL once")
    return values


def parse_conc(text: str) -> tuple[int, ...]:
    """``4,8`` -> (4, 8), with the same rules as pytest's ``--conc``."""
    try:
        return conc_list(text)
    except argparse.ArgumentTypeError as exc:
        raise MatrixError(f"--conc {text!r}: {exc}") from None


def k_expression(suite: str, isl: int, osl: int) -> str:
    """A ``-k`` expression matching the ids ``<suite>-<isl>-<osl>-c<conc>`` and nothing else.

    pytest matches ``-k`` words as substrings of test names such as
    ``test_point[gptoss-1024-1024-c4]``: the leading ``[`` anchors the suite's name at the start of
    the id and the trailing ``-c`` ends the OSL, so 1024-1024 never matches 1024-10240.
    """
    return f"[{suite}-{isl}-{osl}-c"


def group_entry(suite_arg: str, points: Sequence[Point], engine: str) -> dict[str, Any]:
    """The matrix entry of one (suite, ISL, OSL) group."""
    first = points[0]
    return {"suite": suite_arg, "name": first.suite, "stage": first.stage, "engine": engine,
            "isl": first.isl, "osl": first.osl, "conc": ",".join(str(p.conc) for p in points),
            "points": len(points), "k": k_expression(first.suite, first.isl, first.osl)}


def suite_entries(suite_dir: str, options: PlanOptions,
                  isl_osl: tuple[tuple[int, int], ...] | None) -> list[dict[str, Any]]:
    """The entries of one suite directory, in its workloads' order."""
    if not (Path(suite_dir) / "suite.toml").is_file():
        raise MatrixError(f"{suite_dir}: no suite.toml there; pass suite directories such as suites/gptoss")
    try:
        suite = load_suite(Path(suite_dir))
        points = plan_points(suite, options)
    except SuiteError as exc:
        raise MatrixError(str(exc)) from None
    groups: dict[tuple[int, int], list[Point]] = {}
    for point in points:
        if isl_osl is None or (point.isl, point.osl) in isl_osl:
            groups.setdefault((point.isl, point.osl), []).append(point)
    name = Path(suite_dir).as_posix().rstrip("/")
    return [group_entry(name, group, suite.suite.engine) for group in groups.values()]


def build_matrix(suite_dirs: Sequence[str], stage: str | None = None,
                 isl_osl: tuple[tuple[int, int], ...] | None = None,
                 conc: tuple[int, ...] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The ``{"include": [...]}`` matrix; raises :class:`MatrixError` on bad input or no job at all."""
    options = PlanOptions(stage=stage, conc=conc)
    entries = [e for d in suite_dirs for e in suite_entries(d, options, isl_osl)]
    found = {(e["isl"], e["osl"]) for e in entries}
    missing = [f"{i}-{o}" for i, o in isl_osl or () if (i, o) not in found]
    if missing:
        have = sorted({f"{i}-{o}" for d in suite_dirs for i, o in _pairs(d, options)})
        raise MatrixError(f"--isl-osl {','.join(missing)}: no such workload in {' '.join(suite_dirs)}; "
                          f"choose from {','.join(have)}")
    return {"include": entries}


def _pairs(suite_dir: str, options: PlanOptions) -> list[tuple[int, int]]:
    return [(e["isl"], e["osl"]) for e in suite_entries(suite_dir, options, None)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.matrix",
                                description="Print a GitHub Actions matrix: one job per (suite, ISL, OSL).")
    p.add_argument("suites", nargs="+", metavar="SUITE_DIR", help="suite directories, e.g. suites/gptoss")
    p.add_argument("--stage", metavar="NAME", help="stage of every suite (default: each suite's default_stage)")
    p.add_argument("--isl-osl", metavar="LIST", help="keep only these ISL-OSL pairs, e.g. 1024-1024,8192-1024")
    p.add_argument("--conc", metavar="LIST", help="replace every workload's CONC list (as pytest's --conc), e.g. 4,8")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        matrix = build_matrix(args.suites, stage=args.stage,
                              isl_osl=parse_isl_osl(args.isl_osl) if args.isl_osl is not None else None,
                              conc=parse_conc(args.conc) if args.conc is not None else None)
    except MatrixError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(json.dumps(matrix, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
