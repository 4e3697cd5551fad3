"""Compare a run's points with a saved run, knowing which direction is better for each figure.

pytest-benchmark compares only timings, and only one way (lower is better); a serving point has
figures where higher is better (throughput, interactivity) and lower is better (latency).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.results.record import PointRecord, RecordError
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
    tolerance: float  # relative, e.g. 0.05

    @property
    def relative(self) -> float:
        return (self.new - self.old) / self.old if self.old else 0.0

    @property
    def regressed(self) -> bool:
        worse = -self.relative if self.higher_is_better else self.relative
        return worse > self.tolerance

    @property
    def improved(self) -> bool:
        better = self.relative if self.higher_is_better else -self.relative
        return better > self.tolerance

    def describe(self) -> str:
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


def compare(new: PointRecord, old: PointRecord, tolerance: float) -> list[Change]:
    """Each figure of ``new`` against ``old``."""
    return [Change(figure, float(getattr(old, figure)), float(getattr(new, figure)), higher, tolerance)
            for figure, higher in FIGURES.items()]
