"""Compare a run's points with a saved run, knowing which direction is better for each figure.

pytest-benchmark compares only timings, and only one way (lower is better); a serving point has
figures where higher is better (throughput, interactivity) and lower is better (latency).

The rule (:data:`~pytest_inferencemax.results.compare_record.RULE`, docs/verdict.md): each side's figure
is the mean of its rounds (``--repeat``), never one round; a change counts as a regression (or an
improvement) only when it is beyond ``--compare-tolerance`` AND, where either side has rounds, the 95 %
interval of the difference lies wholly on that side of zero: Welch's interval of the difference of the
means (results/stats.py) with rounds on both sides, Student's interval of the side with rounds less the
other side's one value (taken as exact, as a baseline's is) with rounds on one side. Beyond the tolerance
but not beyond the noise is "within noise". With one round on both sides the tolerance alone decides.

Two points compare only when they measured the same thing (results/identity.py: recipe, model and
workload); :func:`check_identity` refuses others before a run starts unless asked (``--compare-any``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.measure.figures import BY_KEY, JUDGED
from pytest_inferencemax.results.compare_record import IMPROVED, NOISE, REGRESSED, SAME, CompareTo, FigureChange
from pytest_inferencemax.results.identity import configuration
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.stats import difference_interval, mean_interval
from pytest_inferencemax.results.store import RunFolder

ANY_FIX = "pass --compare-any (ini inferencemax_compare_any) to compare anyway, each comparison then saying what differs"


class CompareError(ResultsError):
    """The run to compare with cannot be read or measured something else; the message says what to pass instead."""


def load_run(path: Path, label: str | None = None) -> dict[str, PointRecord]:
    """Point records of a saved run folder (``<results-dir>/<run-id>``), keyed by point id; ``label`` is how the
    user named it (default: the path)."""
    path = Path(path)
    name = label if label and label != str(path) else None
    name = f"{name} ({path})" if name else str(path)
    if not path.exists():
        raise CompareError(f"--compare-to {name}: no such run folder; give a run folder such as "
                           "results/20261122-101500, or the id of a run under --results-dir")
    if not path.is_dir():
        raise CompareError(f"--compare-to {name}: a file, not a run folder; give the folder that holds it "
                           f"({path.parent})")
    try:
        records = {rec.point_id: rec for rec in RunFolder(path).points()}
    except RecordError as exc:
        raise CompareError(f"--compare-to {name}: {str(exc).splitlines()[0]}") from None
    if not records:
        raise CompareError(f"--compare-to {name}: holds no point results (files <point>.json written by a run); "
                           "give the folder of a run that finished points")
    return records


def identity_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The configuration fields (results/identity.py) whose values differ: ``{field: [old, new]}``."""
    return {k: [old.get(k), new.get(k)] for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)}


def check_identity(label: str, records: Mapping[str, PointRecord], expected: Mapping[str, Mapping[str, Any]],
                   allow_any: bool = False) -> dict[str, dict[str, list[Any]]]:
    """The points about to run (``expected``: point id -> the configuration its record will have) against the
    earlier run's ``records``: what differs, per point in both. Raises :class:`CompareError` when the earlier run
    holds none of the points, or (unless ``allow_any``) when a point in both measured another configuration."""
    common = [p for p in expected if p in records]
    if not common:
        held = ", ".join(sorted(records)[:4]) + (", ..." if len(records) > 4 else "")
        raise CompareError(f"--compare-to {label}: holds none of the {len(expected)} point(s) of this run (it holds "
                           f"{held}); give a run of the same suite, stage and ISL/OSL/CONC")
    differs = {p: d for p in common if (d := identity_differences(configuration(records[p]), expected[p]))}
    if differs and not allow_any:
        point, diff = next(iter(differs.items()))
        fields = "; ".join(f"{k} {_value(a)} there, {_value(b)} here" for k, (a, b) in diff.items())
        more = f" (and {len(differs) - 1} more point(s))" if len(differs) > 1 else ""
        raise CompareError(f"--compare-to {label}: measured another workload or server than this run: {point}: "
                           f"{fields}{more}; compare with a run of the same configuration, or {ANY_FIX}")
    return differs


def _value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rounds(record: PointRecord, figure: str) -> list[float] | None:
    stats = record.ours.rounds.stats(figure) if record.ours.rounds else None
    return [float(v) for v in stats.values] if stats is not None and len(stats.values) >= 2 else None


def _verdict(change: float, low: float | None, high: float | None, tolerance: float, higher: bool) -> str:
    if abs(change) <= tolerance:
        return SAME
    if low is not None and high is not None and low <= 0.0 <= high:
        return NOISE
    return IMPROVED if (change > 0) == higher else REGRESSED


def figure_change(figure: str, new: PointRecord, old: PointRecord, tolerance: float) -> FigureChange:
    """One figure of ``new`` against ``old`` under the module's rule."""
    higher = BY_KEY[figure].higher_is_better
    a, b = _rounds(new, figure), _rounds(old, figure)
    new_v = sum(a) / len(a) if a else float(getattr(new, figure))
    old_v = sum(b) / len(b) if b else float(getattr(old, figure))
    low = high = None
    if a and b:
        d = difference_interval(a, b)
        low, high = d.low, d.high
    elif a:
        iv = mean_interval(a)
        low, high = iv.low - old_v, iv.high - old_v
    elif b:
        iv = mean_interval(b)
        low, high = new_v - iv.high, new_v - iv.low
    change = (new_v - old_v) / old_v if old_v else 0.0
    rel_low, rel_high = (low / old_v, high / old_v) if old_v and low is not None and high is not None else (None, None)
    return FigureChange(figure=figure, higher_is_better=higher, old=old_v, new=new_v,
                        old_rounds=len(b) if b else 1, new_rounds=len(a) if a else 1, change=change,
                        low=rel_low, high=rel_high, verdict=_verdict(change, rel_low, rel_high, tolerance, higher))


def compare(new: PointRecord, old: PointRecord, tolerance: float) -> list[FigureChange]:
    """Each judged figure of ``new`` against ``old`` (``tolerance`` relative, e.g. 0.05)."""
    return [figure_change(figure, new, old, tolerance) for figure in JUDGED]


def compare_to(new: PointRecord, old: PointRecord, run: str, tolerance: float, fail: bool = False) -> CompareTo:
    """``inferencemax.compare_to`` of ``new``: its figures against ``old``'s and what differs in their configurations."""
    return CompareTo(run=run, tolerance=tolerance, changes=compare(new, old, tolerance), fail=fail,
                     differs=identity_differences(configuration(old), configuration(new)))
