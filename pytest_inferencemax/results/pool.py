"""Pool a point's rounds into the point's record (``--repeat``, and merge of several runs' rounds).

The point's record is its median round's record (by tput/GPU; the lower middle for an even count),
so each reference key holds a figure one real run produced, with :class:`RoundsSummary` added:
each judged figure per round, the mean and its interval, and the same as ratios to the baseline
point when the stage has one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.measure.figures import JUDGED
from pytest_inferencemax.results.rounds import FigureStats, RoundsSummary
from pytest_inferencemax.results.stats import CONFIDENCE, mean_interval, method

# what the summary keeps per round beyond the judged figures
_ALSO = ("output_throughput",)


def figure_stats(values: Sequence[float], confidence: float = CONFIDENCE) -> FigureStats:
    iv = mean_interval(values, confidence)
    return FigureStats(values=list(values), mean=iv.mean, low=iv.low, high=iv.high, stdev=iv.stdev)


def _baseline_values(record: PointRecord) -> dict[str, float] | None:
    cmp = record.comparison
    if cmp is None or cmp.figures is None:
        return None
    f = cmp.figures
    return {"tput_per_gpu": float(f.tput_per_gpu), "median_e2el_ms": float(f.median_e2e_ms),
            "interactivity": float(f.median_intvty)}


def representative(records: Sequence[PointRecord]) -> int:
    """The index of the median round by tput/GPU (the lower middle of an even count)."""
    order = sorted(range(len(records)), key=lambda i: (float(records[i].tput_per_gpu), i))
    return order[(len(records) - 1) // 2]


def pool_rounds(records: Sequence[PointRecord], files: Sequence[str], *, durations: Sequence[float] = (),
                stopped: str | None = None, sources: Sequence[str] | None = None,
                confidence: float = CONFIDENCE) -> PointRecord:
    """The point's record from its rounds' records (in round order) and their files (relative to the
    run folder), with ``confidence`` intervals. Raises ValueError for rounds of different points."""
    if not records:
        raise ValueError("no rounds to pool")
    ids = {r.point_id for r in records}
    if len(ids) > 1:
        raise ValueError(f"rounds of different points cannot be pooled: {sorted(ids)}")
    pick = representative(records)
    point = records[pick].model_copy(deep=True)
    figures = {k: figure_stats([float(getattr(r, k)) for r in records], confidence) for k in (*JUDGED, *_ALSO)}
    base = _baseline_values(records[pick])
    ratios = None
    if base is not None:
        ratios = {k: figure_stats([float(getattr(r, k)) / base[k] for r in records], confidence) for k in JUDGED}
    telemetry = point.ours.telemetry
    if telemetry is not None and telemetry.series:  # the round's series, as seen from the run folder
        telemetry.series = str(Path(files[pick]).parent / Path(telemetry.series).name)
    point.ours.rounds = RoundsSummary(
        n=len(records), method=method(confidence), confidence=confidence, representative=pick + 1, files=list(files),
        durations_s=[round(float(d), 3) for d in durations], statuses=[r.status for r in records],
        failed=[r.failed for r in records], figures=figures, ratios=ratios, stopped=stopped,
        sources=list(sources) if sources else None)
    return point
