"""``--compare-to`` in a pytest run: the earlier run checked at collection, before any server starts, and each
finished point compared with it (its comparison kept on its record: the summary, summary.json and report.md
show it).

One rule for the outcome: a regression (results/compare.py) fails the point only with ``--compare-fail``;
without it, it is a warning everywhere (the terminal, the summary's WARNING lines, summary.json's
``warnings``, report.md), never a failure.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plugin.plan_text import POINT_ARG, point_of
from pytest_inferencemax.plugin.variant_runs import expected_configuration
from pytest_inferencemax.results.point_pipeline import PointOutcome
from pytest_inferencemax.results.compare import CompareError, check_identity, compare_to
from pytest_inferencemax.results.compare_record import CompareTo
from pytest_inferencemax.results.identity import EXTERNAL

if TYPE_CHECKING:
    from pytest_inferencemax.plugin.session import BenchSession


def check_compare_to(bench: BenchSession, items: list[pytest.Item]) -> None:
    """``--compare-to`` names a readable run folder with records of the points about to run, measured with the
    same recipe, model and workload (unless ``--compare-any``); else a usage error (exit code 4) names the
    problem and the fix before any server starts."""
    s = bench.settings
    if not s.compare_to:
        return
    expected = {}
    for item in items:
        point, suite = point_of(item), bench.catalog.suite_of(item.path)
        if isinstance(point, Point) and POINT_ARG in item.callspec.params and suite is not None:
            want = expected_configuration(bench, suite, point)
            expected[point.id] = {**want, "recipe": EXTERNAL} if s.server_url else want
    if not expected:
        return
    try:
        check_identity(s.compare_to, bench.catalog.compared_run(), expected, allow_any=bool(s.compare_any))
    except CompareError as exc:
        raise pytest.UsageError(str(exc)) from None


def compare_point(bench: BenchSession, outcome: PointOutcome) -> CompareTo | None:
    """The finished point against ``--compare-to``'s record of it, written into its record (None when that run
    has no such point); says the comparison on the terminal."""
    s, point_id = bench.settings, outcome.record.point_id
    old = bench.catalog.compared_run().get(point_id)
    if old is None:
        bench.progress.line(f"inferencemax: {point_id}: not in {s.compare_to}, nothing to compare")
        return None
    result = compare_to(outcome.record, old, s.compare_to, s.compare_tolerance / 100.0, fail=bool(s.compare_fail))
    bench.progress.line(f"inferencemax: {point_id} vs {s.compare_to}: {result.line()}")
    outcome.record.ours.compare_to = result
    saved = bench.folder.keep(outcome.path, outcome.record.to_json())
    if saved.refused:
        bench.points.not_saved.append(f"{outcome.path}: its comparison with {s.compare_to}: {saved.refused}; {saved.where()}")
    return result
