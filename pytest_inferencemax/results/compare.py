"""Compare a run's points with a saved run, knowing which direction is better for each figure.

pytest-benchmark compares only timings, and only one way (lower is better); a serving point has
figures where higher is better (throughput, interactivity) and lower is better (latency).

With rounds on both sides (``--repeat``), a change counts only when it lies outside both runs'
noise: Welch's 95 % interval of the difference of the means excludes zero (results/stats.py).
With one round on either side there is no noise to test, so the relative tolerance decides, as
before (``--compare-tolerance``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.stats import Interval, difference_interval
from pytest_inferencemax.results.store import RunFolder

# figure -> True when higher is better
FIGURES: dict[str, bool] = {"tput_per_gpu": True, "median_e2el_ms": False, "interactivity": True}


class CompareError(ResultsError):
    """The run to compare with cannot be read; the message says what to pass instead."""


@dataclass(frozen=True)
class Change:
    figure: str
    old: float
    new: float
    higher_is_better: bool
    tolerance: float  # relative, e.g. 0.05; used when either side has one round
    difference: Interval | None = None  # Welch's interval of new - old, when both sides have rounds

    @property
    def relative(self) -> float:
        return (self.new - self.old) / self.old if self.old else 0.0

    def _side(self) -> int:
        """+1 when the change is better beyond the noise (or tolerance), -1 when worse, 0 otherwise."""
        if self.difference is not None:
            sign = 1 if self.higher_is_better else -1
            if self.difference.low > 0 or self.difference.high < 0:
                return sign if self.difference.low > 0 else -sign
            return 0
        better = self.relative if self.higher_is_better else -self.relative
        return 1 if better > self.tolerance else (-1 if -better > self.tolerance else 0)

    @property
    def regressed(self) -> bool:
        return self._side() < 0

    @property
    def improved(self) -> bool:
        return self._side() > 0

    def describe(self) -> str:
        if self.difference is not None:
            mark = "REGRESSED" if self.regressed else ("improved" if self.improved else "within noise")
            d, base = self.difference, self.old or 1.0
            return (f"{self.figure} {self.old:.4g} -> {self.new:.4g} ({self.relative:+.1%}, 95% CI "
                    f"{d.low / base:+.1%} to {d.high / base:+.1%}, {mark})")
        mark = "REGRESSED" if self.regressed else ("improved" if self.improved else "same")
        return f"{self.figure} {self.old:.4g} -> {self.new:.4g} ({self.relative:+.1%}, {mark})"


def load_run(path: Path) -> dict[str, PointRecord]:
    """Point records of a saved run folder (``<results-dir>/<run-id>``), keyed by point id."""
    path = Path(path)
    if not path.is_dir():
        raise CompareError(f"--compare-to {path}: not a folder; give a run folder such as results/20261122-101500")
    try:
        records = {rec.point_id: rec for rec in RunFolder(path).points()}
    except RecordError as exc:
        raise CompareError(f"--compare-to {path}: {exc}") from None
    if not records:
        raise CompareError(f"--compare-to {path}: no point results in it (files <point>.json written by a run)")
    return records


def _rounds(record: PointRecord, figure: str) -> list[float] | None:
    stats = record.ours.rounds.stats(figure) if record.ours.rounds else None
    return [float(v) for v in stats.values] if stats is not None and len(stats.values) >= 2 else None


def compare(new: PointRecord, old: PointRecord, tolerance: float) -> list[Change]:
    """Each figure of ``new`` against ``old``: the rounds' means and Welch's interval when both have
    rounds, else the two records' figures and the tolerance."""
    changes = []
    for figure, higher in FIGURES.items():
        a, b = _rounds(new, figure), _rounds(old, figure)
        if a is not None and b is not None:
            diff = difference_interval(a, b)
            changes.append(Change(figure, sum(b) / len(b), sum(a) / len(a), higher, tolerance, diff))
        else:
            changes.append(Change(figure, float(getattr(old, figure)), float(getattr(new, figure)), higher, tolerance))
    return changes
