"""Is a point's comparison with its baseline decided, given the noise of its rounds?

A point beats its baseline figure when the whole interval of its mean over rounds (95 %; wider under
``--repeat auto``, results/stats.py) lies on the
better side of it, loses when the whole interval lies on the worse side, and is inconclusive when
the interval holds it (docs/verdict.md). With one round there is no interval: the point beats or
loses by its one figure, as the bounty's runner judges, labelled "1 round: not tested for noise".
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pytest_inferencemax.results.rounds import FigureStats
from pytest_inferencemax.results.stats import CONFIDENCE, percent, rounds_to_decide

SINGLE_ROUND = "1 round: not tested for noise"


class Outcome(str, Enum):
    BEATS = "beats"
    LOSES = "loses"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    words: str  # our side: "1234" (one round) or "mean 1234 (95% CI 1200 to 1260, 3 rounds)"
    tested: bool  # decided against the rounds' interval (False: one round, not tested for noise)
    rounds_needed: int | None = None  # inconclusive: the round count that would decide it if the spread held


def decide(value: float, target: float, higher_is_better: bool, stats: FigureStats | None = None, *,
           ties_beat: bool = False, confidence: float = CONFIDENCE) -> Decision:
    """Our figure (one round's ``value``, or ``stats`` over rounds) against the baseline's ``target``.
    Ties do not beat (stage 1) unless ``ties_beat`` (stage 2's targets are met at equality); an
    interval touching the target is inconclusive."""
    if stats is None or len(stats.values) < 2:
        if ties_beat and value == target:
            return Decision(Outcome.BEATS, f"{value:.6g}", tested=False)
        better = value > target if higher_is_better else value < target
        return Decision(Outcome.BEATS if better else Outcome.LOSES, f"{value:.6g}", tested=False)
    low, high = float(stats.low), float(stats.high)
    words = (f"mean {float(stats.mean):.6g} ({percent(confidence)} CI {low:.6g} to {high:.6g}, "
             f"{len(stats.values)} rounds)")
    above, below = low > target, high < target
    if above or below:
        beats = above if higher_is_better else below
        return Decision(Outcome.BEATS if beats else Outcome.LOSES, words, tested=True)
    needed = rounds_to_decide([float(v) for v in stats.values], target, confidence)
    return Decision(Outcome.INCONCLUSIVE, words, tested=True, rounds_needed=needed)


def what_would_decide(decision: Decision, rounds: int) -> str:
    """In words: how many rounds would decide an inconclusive comparison, if the spread held."""
    if decision.rounds_needed is None:
        return "more rounds would hardly decide it: the mean sits on the baseline (over 1000 rounds needed)"
    more = max(decision.rounds_needed - rounds, 1)
    return f"about {more} more round(s) ({decision.rounds_needed} in all) if the spread holds"
