"""Statistics over a point's rounds: the interval of a mean, the interval of a change between runs,
and how many rounds would decide a comparison. scipy does the statistics; this module only says
which test is used and in what words.

Method (docs/verdict.md): each round of a point is one measurement of each figure; across rounds a
figure's 95 % confidence interval is Student's t interval of the mean, ``mean ± t(0.975, n-1) · s / √n``
(``scipy.stats.t``), which assumes the round-to-round spread is roughly normal and the rounds
independent. A baseline is a published number without a spread, so a ratio's interval is the
figure's interval divided by it. ``--repeat auto`` looks at the interval after every round and
stops at the first decided look; to keep its chance of a wrong decision at 5 % over all looks, its
intervals are Bonferroni-widened (:func:`sequential_confidence`). Two runs' rounds are compared with Welch's t interval of the
difference of their means (``scipy.stats.ttest_ind(equal_var=False)``), which does not assume the
two runs are equally noisy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

CONFIDENCE = 0.95


def percent(confidence: float) -> str:
    """0.95 -> "95%", 0.9875 -> "98.75%"."""
    return f"{confidence * 100:.4g}%"


def method(confidence: float) -> str:
    return f"Student t {percent(confidence)} confidence interval of the mean over rounds (scipy.stats.t)"


def sequential_confidence(max_rounds: int, overall: float = CONFIDENCE) -> float:
    """The per-look confidence of ``--repeat auto``: it looks after rounds 2 .. ``max_rounds`` and stops at
    the first decided look, so each look's error is ``(1 - overall) / looks`` (Bonferroni), keeping the
    chance of any wrong decision over all looks at or below ``1 - overall``."""
    looks = max(max_rounds - 1, 1)
    return 1.0 - (1.0 - overall) / looks


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval (``low == high == mean`` for one value: no interval)."""

    mean: float
    low: float
    high: float
    n: int
    stdev: float | None  # sample standard deviation (n - 1); None for one value


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Student's t interval of the mean of ``values`` (at least one)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("no values")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1, None)
    from scipy import stats  # imported here: reading a run folder should not load scipy

    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if sd == 0.0:
        return Interval(mean, mean, mean, n, 0.0)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return Interval(mean, float(low), float(high), n, sd)


def difference_interval(new: Sequence[float], old: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Welch's t interval of ``mean(new) - mean(old)`` (each side at least two values)."""
    if len(new) < 2 or len(old) < 2:
        raise ValueError("Welch's interval needs at least two rounds on each side")
    from scipy import stats

    diff = math.fsum(new) / len(new) - math.fsum(old) / len(old)
    if all(v == new[0] for v in new) and all(v == old[0] for v in old):
        return Interval(diff, diff, diff, len(new) + len(old), 0.0)
    ci = stats.ttest_ind(list(map(float, new)), list(map(float, old)), equal_var=False).confidence_interval(confidence)
    return Interval(diff, float(ci.low), float(ci.high), len(new) + len(old), None)


def rounds_to_decide(values: Sequence[float], target: float, confidence: float = CONFIDENCE,
                     limit: int = 1000) -> int | None:
    """The smallest round count whose interval would exclude ``target`` if the mean and spread of
    ``values`` held; None when no count up to ``limit`` would (the target lies at the mean)."""
    iv = mean_interval(values, confidence)
    if iv.stdev is None:
        return None
    gap = abs(iv.mean - target)
    if iv.stdev == 0.0:
        return iv.n if gap > 0 else None
    from scipy import stats

    for n in range(max(iv.n, 2), limit + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * iv.stdev / math.sqrt(n) < gap:
            return n
    return None
