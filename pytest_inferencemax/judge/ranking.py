"""Ranking recipe variants by the bounty's rule (docs/variants.md).

Per curve (suite, stage, ISL, OSL) and variant: the verdict, the share of points that beat the
baseline (decided beats over the variant's points on that curve), the geometric mean of the
tput/GPU ratios, and the accuracy gate. On a curve, variants rank by: qualified first, then the
share, then the geometric mean. Overall they rank by the number of curves they qualify on, then
the mean share, then the geometric mean of all their points' ratios. Where nothing is compared
with a baseline (a stage without a rule, such as the embedded CPU suite), the geometric mean of
tput/GPU itself decides. A variant without points on a curve (pruned, failed) has no row there.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import geometric_mean
from typing import Mapping, Sequence

from pytest_inferencemax.judge.curve import Curve, CurveKey
from pytest_inferencemax.judge.verdict import Verdict


@dataclass(frozen=True)
class VariantCurve:
    """One variant on one curve."""

    variant: str
    curve: CurveKey  # without the variant
    label: str  # the verdict's label: qualified, not qualified, inconclusive, not applicable, incomplete
    qualified: bool
    points: int
    beats: int
    inconclusive: int
    share: float | None  # beats / points; None when nothing is judged against a baseline
    tput_geomean: float | None  # geometric mean of the tput/GPU ratios; None without any
    accuracy: str
    ratios: tuple[float, ...] = ()
    tputs: tuple[float, ...] = ()  # the points' tput/GPU
    tput_per_gpu_geomean: float | None = None  # geometric mean of tput/GPU itself

    @property
    def score(self) -> tuple[int, float, float, float]:
        return (int(self.qualified), self.share if self.share is not None else -1.0, self.tput_geomean or 0.0,
                self.tput_per_gpu_geomean or 0.0)


@dataclass(frozen=True)
class VariantOverall:
    variant: str
    curves_qualified: int
    curves: int
    mean_share: float | None
    tput_geomean: float | None
    tput_per_gpu_geomean: float | None = None

    @property
    def score(self) -> tuple[int, float, float, float]:
        return (self.curves_qualified, self.mean_share if self.mean_share is not None else -1.0,
                self.tput_geomean or 0.0, self.tput_per_gpu_geomean or 0.0)


@dataclass(frozen=True)
class Ranking:
    rows: tuple[VariantCurve, ...]  # by curve, best variant first
    best_per_curve: tuple[tuple[CurveKey, str], ...]
    overall: tuple[VariantOverall, ...]  # best first

    @property
    def best(self) -> str | None:
        return self.overall[0].variant if self.overall else None

    def best_on(self, curve: CurveKey) -> str | None:
        return dict(self.best_per_curve).get(curve)


def rank_variants(curves: Sequence[Curve], verdicts: Mapping[CurveKey, Verdict]) -> Ranking | None:
    """The ranking of the variants of ``curves``; None when no curve has a variant."""
    if not any(c.key.variant for c in curves):
        return None
    rows = []
    for curve in curves:
        v = verdicts.get(curve.key)
        outcomes = [r.outcome for r in v.per_point] if v else []
        judged = v is not None and v.applicable and any(o is not None for o in outcomes)
        ratios = tuple(p.tput_ratio for p in curve.points if p.tput_ratio is not None and p.tput_ratio > 0)
        tputs = tuple(p.mean("tput_per_gpu") for p in curve.points if p.mean("tput_per_gpu") > 0)
        beats = outcomes.count("beats")
        rows.append(VariantCurve(
            variant=curve.key.variant, curve=curve.key.base, label=v.label if v else "not judged",
            qualified=bool(v and v.qualified and not v.incomplete), points=len(curve.points), beats=beats,
            inconclusive=outcomes.count("inconclusive"), share=beats / len(curve.points) if judged else None,
            tput_geomean=geometric_mean(ratios) if ratios else None, accuracy=v.accuracy if v else "", ratios=ratios,
            tputs=tputs, tput_per_gpu_geomean=geometric_mean(tputs) if tputs else None))
    rows.sort(key=lambda r: (r.curve, tuple(-x for x in r.score), r.variant))
    best = []
    for key in sorted({r.curve for r in rows}):
        best.append((key, next(r.variant for r in rows if r.curve == key)))
    overall = []
    for name in sorted({r.variant for r in rows}):
        mine = [r for r in rows if r.variant == name]
        shares = [r.share for r in mine if r.share is not None]
        ratios = [x for r in mine for x in r.ratios]
        tputs = [x for r in mine for x in r.tputs]
        overall.append(VariantOverall(name, sum(r.qualified for r in mine), len(mine),
                                      sum(shares) / len(shares) if shares else None,
                                      geometric_mean(ratios) if ratios else None,
                                      geometric_mean(tputs) if tputs else None))
    overall.sort(key=lambda o: (tuple(-x for x in o.score), o.variant))
    return Ranking(tuple(rows), tuple(best), tuple(overall))
