"""How many rounds a point gets (``--repeat N|auto``, ``--repeat-max``, ``--repeat-budget``).

``--repeat N`` runs every point N times. ``--repeat auto`` runs 2 rounds (the fewest that show a
spread), then one more at a time while the point's comparison with its baseline is still open
(its interval, Bonferroni-widened for the repeated looks: results/stats.py, holds the baseline)
(judge/decided.py), until it is decided, the point has ``--repeat-max`` rounds, or the next round
would take this session's time on added rounds past ``--repeat-budget`` minutes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pytest_inferencemax.results.stats import CONFIDENCE, percent, sequential_confidence

AUTO_FIRST = 2


@dataclass
class RoundsPlan:
    repeat: int | str  # rounds per point, or "auto"
    max_rounds: int
    budget_s: float | None = None  # --repeat-budget in seconds
    spent_s: float = 0.0  # this session's time on rounds beyond each point's first AUTO_FIRST

    @property
    def single(self) -> bool:
        return self.repeat == 1

    @property
    def auto(self) -> bool:
        return self.repeat == "auto"

    @property
    def confidence(self) -> float:
        """The intervals' confidence: 95 %, or per look under auto so that all looks together err <= 5 %."""
        return sequential_confidence(self.max_rounds) if self.auto else CONFIDENCE

    def describe(self) -> str:
        if not self.auto:
            return f"{self.repeat} round(s) per point"
        budget = f", {self.budget_s / 60:g} min budget" if self.budget_s is not None else ""
        return (f"auto: {AUTO_FIRST} to {self.max_rounds} rounds per point{budget}, "
                f"{percent(self.confidence)} intervals")

    def stop(self, durations: Sequence[float], open_question: str | None) -> tuple[bool, str | None]:
        """After a round: (stop now, why, for the record). ``durations``: the point's rounds so far."""
        n = len(durations)
        if not self.auto:
            return n >= int(self.repeat), None
        if n > AUTO_FIRST:
            self.spent_s += durations[-1]
        if n < AUTO_FIRST:
            return False, None
        if open_question is None:
            return True, f"decided after {n} rounds"
        if n >= self.max_rounds:
            return True, f"--repeat-max {self.max_rounds} reached, still inconclusive: {open_question}"
        if self.budget_s is not None:
            expected = sum(durations) / n
            if self.spent_s + expected > self.budget_s:
                return True, (f"--repeat-budget {self.budget_s / 60:g} min would be exceeded "
                              f"({self.spent_s / 60:.1f} min spent), still inconclusive: {open_question}")
        return False, None
