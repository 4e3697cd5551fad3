"""Early pruning (``--prune``): can a variant's curve still qualify, given the points it finished?

A point is lost for the rule when it cannot count whatever the rest does: it has no baseline
point, failed requests or an invalid workload, or it is below its baseline beyond the noise: with
rounds, its interval lies wholly on the worse side (judge/noise.py); with one round, it is worse
than the baseline by more than the margin (``--prune-margin``, 5 % by default), so that a point
just under the baseline, which more rounds might turn, does not prune. A curve is pruned when the
points that could still count are too few for the rule:

* ``beat_baseline_share``: ``(planned - lost) / planned < min_share``;
* ``targets``: ``planned - lost < min_points`` (lost: a target missed beyond the noise);
* ``none``: never.

The AMD and accuracy conditions are not used here: the gate already stops a server whose accuracy
fails before its points run.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

from pytest_inferencemax.judge.curve import CurvePoint
from pytest_inferencemax.judge.noise import Outcome, decide
from pytest_inferencemax.measure.figures import judged_by
from pytest_inferencemax.plan.rules import BeatBaselineShare, Targets


def _beyond_noise(p: CurvePoint, metric: str, margin: float) -> str | None:
    """Why ``p`` is worse than its baseline on ``metric`` beyond the noise; None when it is not."""
    key, attr, higher = judged_by(metric)
    target = float(getattr(p.baseline, attr))
    if p.n_rounds > 1:
        d = decide(p.mean(key), target, higher, p.stats(key), confidence=p.confidence, ties_beat=True)
        return f"{key} {d.words} vs {target:.6g}" if d.outcome is Outcome.LOSES else None
    ours = p.mean(key)
    worse = (target - ours) / target if higher else (ours - target) / target
    return f"{key} {ours:.6g} vs {target:.6g} ({-worse:+.1%})" if worse > margin else None


def lost(p: CurvePoint, rule: Any, margin: float) -> str | None:
    """Why the finished point cannot count for ``rule`` any more; None when it still might."""
    if p.baseline is None:
        return "no baseline point"
    if p.failed_requests or p.invalid:
        return f"{p.failed_requests} failed requests" if p.failed_requests else "invalid workload"
    metrics = [rule.metric] if isinstance(rule, BeatBaselineShare) else ["median_e2e", "interactivity", "tput_per_gpu"]
    for metric in metrics:
        if why := _beyond_noise(p, metric, margin):
            return why
    return None


def prune_reason(rule: Any, planned: int, finished: Sequence[CurvePoint], margin: float) -> str | None:
    """Why the curve (``planned`` points, ``finished`` of them done) can no longer qualify; None if it can."""
    if not isinstance(rule, (BeatBaselineShare, Targets)) or planned <= 0:
        return None
    losses = [(p.conc, why) for p in finished if (why := lost(p, rule, margin))]
    could = planned - len(losses)
    named = "; ".join(f"CONC {c}: {why}" for c, why in losses)
    if isinstance(rule, BeatBaselineShare):
        if Fraction(could, planned) >= Fraction(str(rule.min_share)):
            return None
        needed = math.ceil(Fraction(str(rule.min_share)) * planned)
        return (f"{len(losses)} of {planned} points lost beyond the noise ({named}): at most {could} can beat the "
                f"baseline, {needed} must (min_share {rule.min_share:.0%})")
    if could >= rule.min_points:
        return None
    return (f"{len(losses)} of {planned} points miss a target beyond the noise ({named}): at most {could} can meet "
            f"all three, {rule.min_points} must")
