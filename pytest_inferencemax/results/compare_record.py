"""``inferencemax.compare_to`` of a point record: the point against the same point of an earlier run
(``--compare-to``), as results/compare.py judged it. Kept on the record, so that the summary, summary.json
and report.md say what the terminal said."""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import Field

from pytest_inferencemax.plan.part import Part

Number = Union[int, float]

REGRESSED, IMPROVED, SAME, NOISE = "regressed", "improved", "same", "within noise"

RULE = ("each side's figure is the mean of its rounds (its one value with one round); a change is regressed or "
        "improved only when it is beyond the tolerance and, where either side has rounds, the 95% interval of the "
        "difference (Welch's with rounds on both sides, else Student's of the side with rounds, the other's value "
        "taken as exact) lies wholly on that side of zero; beyond the tolerance inside that interval: within noise")


class FigureChange(Part):
    """One judged figure: this run's against the earlier run's."""

    figure: str
    higher_is_better: bool
    old: Number  # the earlier run's: the mean of its rounds, or its one value
    new: Number  # this run's, the same way
    old_rounds: int = 1
    new_rounds: int = 1
    change: Number  # (new - old) / old
    low: Optional[Number] = None  # the 95% interval of (new - old) / old, when either side has rounds
    high: Optional[Number] = None
    verdict: str  # regressed, improved, same (within the tolerance), within noise (beyond it, not beyond the noise)

    @property
    def regressed(self) -> bool:
        return self.verdict == REGRESSED

    @property
    def improved(self) -> bool:
        return self.verdict == IMPROVED

    @property
    def relative(self) -> float:
        return float(self.change)

    def describe(self) -> str:
        """``tput_per_gpu 70.01 -> 67.7 (-3.3%, 95% CI -9.1% to +2.5%, 1 vs 2 rounds, same)``."""
        mark = self.verdict.upper() if self.regressed else self.verdict
        ci = f", 95% CI {self.low:+.1%} to {self.high:+.1%}" if self.low is not None and self.high is not None else ""
        rounds = f", {self.old_rounds} vs {self.new_rounds} rounds" if max(self.old_rounds, self.new_rounds) > 1 else ""
        return f"{self.figure} {self.old:.4g} -> {self.new:.4g} ({self.change:+.1%}{ci}{rounds}, {mark})"


class CompareTo(Part):
    """``inferencemax.compare_to``: how the point compares with the same point of ``--compare-to``'s run."""

    run: str  # the earlier run's folder
    tolerance: Number  # relative, e.g. 0.05 (--compare-tolerance)
    rule: str = RULE
    differs: dict[str, list[Any]] = Field(default_factory=dict)  # identity fields that differ: [earlier, this]
    changes: list[FigureChange]
    fail: bool = False  # --compare-fail: a regression fails the point; otherwise it is a warning

    @property
    def regressed(self) -> list[FigureChange]:
        return [c for c in self.changes if c.regressed]

    def differences(self) -> str:
        """``num_prompts 10 -> 4; model 'smollm2' -> 'calibration'`` (earlier -> this run), '' when none."""
        return "; ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in self.differs.items())

    def line(self) -> str:
        """Every figure's change, and what differs between the two points' configurations."""
        text = "; ".join(c.describe() for c in self.changes)
        return text + (f" [not the same configuration: {self.differences()}]" if self.differs else "")

    def warning(self) -> str | None:
        """What the summary warns about: a regression that does not fail the point (no --compare-fail)."""
        if not self.regressed or self.fail:
            return None
        return self.regression()

    def regression(self) -> str:
        return (f"regressed vs {self.run}: " + "; ".join(c.describe() for c in self.regressed)
                + (f" [not the same configuration: {self.differences()}]" if self.differs else ""))


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
