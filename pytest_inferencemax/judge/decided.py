"""Does a point need more rounds? (``--repeat auto``)

A point's comparison is decided when its stage's rule can say beats or loses without doubt: the
rule's figure for ``beat_baseline_share``; for ``targets``, a target decidedly missed, or all three
decidedly met. A point without a baseline point, or under a stage without a rule, has nothing to
decide.
"""
from __future__ import annotations

from typing import Any

from pytest_inferencemax.judge.curve import curve_point
from pytest_inferencemax.judge.noise import Outcome, decide
from pytest_inferencemax.measure.figures import judged_by
from pytest_inferencemax.plan.rules import BeatBaselineShare, Targets
from pytest_inferencemax.results.record import PointRecord


def open_question(record: PointRecord, rule: Any) -> str | None:
    """What is still undecided about the point's comparison with its baseline, in words; None when decided."""
    _, p, _ = curve_point(record)
    if p.baseline is None:
        return None
    if isinstance(rule, BeatBaselineShare):
        metrics, ties = [rule.metric], False
    elif isinstance(rule, Targets):
        metrics, ties = ["median_e2e", "interactivity", "tput_per_gpu"], True
    else:
        return None
    unsure = []
    for metric in metrics:
        key, attr, higher = judged_by(metric)
        target = float(getattr(p.baseline, attr))
        d = decide(p.mean(key), target, higher, p.stats(key), ties_beat=ties, confidence=p.confidence)
        if d.outcome is Outcome.LOSES and isinstance(rule, Targets):
            return None  # a target decidedly missed: the point does not meet all three, whatever the rest
        if d.outcome is Outcome.INCONCLUSIVE:
            unsure.append(f"{key} {d.words} vs baseline {target:.6g}")
    return "; ".join(unsure) or None
