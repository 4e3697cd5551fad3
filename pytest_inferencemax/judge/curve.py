"""Curves: one stage's points for one ISL/OSL, sorted by CONC, with their baseline points.

A curve is built from the point records (:class:`~pytest_inferencemax.results.record.PointRecord`);
a record's baseline comparison carries the baseline's figures at its point, so any baseline
file works.
AMD's existing points (an optional second table) are attached with :func:`attach_amd`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Iterable

from pytest_inferencemax.gate.at_load import AccuracyAtLoad
from pytest_inferencemax.judge.baseline import BaselinePoint, BaselineTable
from pytest_inferencemax.results.record import AccuracyStatus, PointRecord
from pytest_inferencemax.results.rounds import FigureStats, RoundsSummary



@dataclass(frozen=True, order=True)
class CurveKey:
    suite: str
    stage: str
    isl: int
    osl: int
    variant: str = ""  # the recipe variant ("": the suite's recipe, no variants)

    @property
    def slug(self) -> str:
        """A file-name-safe name, e.g. ``gptoss-s1-1024-1024`` (``gptoss-s1-1024-1024-bs32`` for a variant)."""
        tail = f"-{self.variant}" if self.variant else ""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.suite}-{self.stage}-{self.isl}-{self.osl}{tail}")

    @property
    def title(self) -> str:
        tail = f", variant {self.variant}" if self.variant else ""
        return f"{self.suite}, stage {self.stage}, ISL {self.isl} / OSL {self.osl}{tail}"

    @property
    def base(self) -> "CurveKey":
        """The same curve without its variant: what variants are ranked on."""
        return CurveKey(self.suite, self.stage, self.isl, self.osl)


@dataclass(frozen=True)
class CurvePoint:
    conc: int
    point_id: str
    tput_per_gpu: float  # total_token_throughput / divisor, as recorded
    divisor: float  # inferencemax.tput_per_gpu_divisor
    median_e2e_ms: float
    interactivity: float  # tok/s/user
    tput_ratio: float | None  # > 1 is better; None without a baseline point
    e2e_ratio: float | None  # < 1 is better
    intvty_ratio: float | None  # > 1 is better
    baseline: BaselinePoint | None
    accuracy_status: AccuracyStatus
    failed_requests: int = 0
    invalid: bool = False  # its token counts show it did not run the workload it names (token_check.failures)
    rounds: RoundsSummary | None = None  # --repeat: the rounds' figures and intervals; None for one round
    measured: bool = True  # False: no request succeeded, so its figures (0 in the record) do not exist
    accuracy_at_load: AccuracyAtLoad | None = None  # --accuracy-at: the stage's task at this point's CONC
    request_throughput: float = 0.0  # completed requests per second
    request_goodput: float | None = None  # --goodput: requests within every SLO per second (None without SLOs)

    @property
    def failed_at_load(self) -> bool:
        """The accuracy task failed (or could not run) at this point's own load: the point never counts."""
        return bool(self.accuracy_at_load and self.accuracy_at_load.failed)

    @property
    def median_e2e_s(self) -> float:
        return self.median_e2e_ms / 1000.0

    @property
    def n_rounds(self) -> int:
        return self.rounds.n if self.rounds else 1

    @property
    def confidence(self) -> float:
        """The confidence of the point's intervals (0.95, or wider per look under --repeat auto)."""
        return float(self.rounds.confidence) if self.rounds else 0.95

    def stats(self, figure: str) -> FigureStats | None:
        """A figure's statistics over the rounds (record key: tput_per_gpu, median_e2el_ms, interactivity)."""
        return self.rounds.stats(figure) if self.rounds else None

    def mean(self, figure: str) -> float:
        """The rounds' mean of a figure, or the one round's figure."""
        s = self.stats(figure)
        if s is not None:
            return float(s.mean)
        return {"tput_per_gpu": self.tput_per_gpu, "median_e2el_ms": self.median_e2e_ms,
                "interactivity": self.interactivity}[figure]


@dataclass(frozen=True)
class Curve:
    key: CurveKey
    points: tuple[CurvePoint, ...]  # sorted by CONC
    baseline_name: str | None = None  # the record's baseline group, e.g. b200_baseline_nv1126
    baseline_note: str | None = None  # which table, or why there is none
    amd_points: tuple[BaselinePoint, ...] = ()  # AMD's existing points at this ISL/OSL, by CONC
    amd_source: str | None = None  # None: no AMD table was given, so the AMD check is "not checked"
    notes: tuple[str, ...] = ()

    @property
    def concs(self) -> tuple[int, ...]:
        return tuple(p.conc for p in self.points)

    @property
    def divisors(self) -> tuple[float, ...]:
        return tuple(sorted({p.divisor for p in self.points}))

    def amd_at(self, conc: int) -> BaselinePoint | None:
        return next((a for a in self.amd_points if a.conc == conc), None)


def curve_key(rec: PointRecord) -> CurveKey:
    """The curve a record's point lies on."""
    o = rec.ours
    return CurveKey(o.suite, o.stage, o.isl, o.osl, o.variant or "")


def curve_point(rec: PointRecord) -> tuple[CurveKey, CurvePoint, list[str]]:
    """One record as a curve point, its curve's key, and anything odd about it."""
    o, key = rec.ours, curve_key(rec)
    tput, divisor = float(rec.tput_per_gpu), float(o.tput_per_gpu_divisor)
    notes: list[str] = []
    total = rec.total_token_throughput
    if divisor > 0 and not math.isclose(tput, total / divisor, rel_tol=1e-6):
        notes.append(f"{o.point}: tput_per_gpu {tput:.6g} is not total_token_throughput {total:.6g} / "
                     f"divisor {divisor:g}")
    cmp = rec.comparison
    base = None
    if cmp is not None and cmp.figures is not None:
        try:
            base = BaselinePoint(isl=o.isl, osl=o.osl, conc=o.conc, median_e2e_ms=cmp.figures.median_e2e_ms,
                                 median_intvty=cmp.figures.median_intvty, tput_per_gpu=cmp.figures.tput_per_gpu)
        except ValueError as exc:
            notes.append(f"{o.point}: baseline group {cmp.group!r} unusable ({exc}); treated as no baseline")
    ratios: list[float | None] = [None, None, None]
    # no successful request: the record's zeros are no figures (shown as n/a, not drawn); the verdict still
    # counts the point as lost, through its ratios of 0 and its failed requests
    measured = rec.completed > 0 or bool(o.rounds)
    if base is not None:
        ours = (tput, float(rec.median_e2el_ms), float(rec.interactivity))
        theirs = (base.tput_per_gpu, base.median_e2e_ms, base.median_intvty)
        recorded = (cmp.tput_ratio, cmp.e2e_ratio, cmp.intvty_ratio)
        ratios = [float(r) if r is not None else a / b for r, a, b in zip(recorded, ours, theirs)]
    return key, CurvePoint(
        conc=o.conc, point_id=o.point, tput_per_gpu=tput, divisor=divisor, median_e2e_ms=float(rec.median_e2el_ms),
        interactivity=float(rec.interactivity), tput_ratio=ratios[0], e2e_ratio=ratios[1], intvty_ratio=ratios[2],
        baseline=base, accuracy_status=rec.accuracy_status, invalid=bool(rec.invalid), rounds=o.rounds,
        # failed requests within the stage's failure_rule (max_rate) do not count against the point
        failed_requests=(max(rec.failed, rec.num_prompts - rec.completed, sum(o.rounds.failed) if o.rounds else 0)
                         if rec.failures_count or (o.rounds and sum(o.rounds.failed)) else 0),
        measured=measured, accuracy_at_load=o.accuracy_at_load, request_throughput=float(rec.request_throughput),
        request_goodput=float(rec.request_goodput) if o.goodput is not None and rec.request_goodput is not None else None,
    ), notes


def build_curves(records: Iterable[PointRecord]) -> list[Curve]:
    """Curves per (suite, stage, ISL, OSL), sorted by key; points sorted by CONC.

    A CONC measured twice keeps the later record (records come in the order points finished).
    """
    points: dict[CurveKey, dict[int, CurvePoint]] = {}
    notes: dict[CurveKey, list[str]] = {}
    names: dict[CurveKey, tuple[str | None, str | None]] = {}
    for rec in records:
        key, pt, odd = curve_point(rec)
        bucket = points.setdefault(key, {})
        curve_notes = notes.setdefault(key, [])
        curve_notes.extend(odd)
        if pt.conc in bucket:
            curve_notes.append(f"CONC {pt.conc} was measured more than once; the later record is used")
        bucket[pt.conc] = pt
        group = rec.comparison.group if rec.comparison else None
        prev_group, prev_note = names.get(key, (None, None))
        names[key] = (prev_group or group, prev_note or rec.baseline_note)
    curves = []
    for key in sorted(points):
        pts = tuple(points[key][c] for c in sorted(points[key]))
        divisors = {p.divisor for p in pts}
        extra = [f"points divide by different tput_per_gpu divisors {sorted(divisors)}"] if len(divisors) > 1 else []
        curves.append(Curve(key=key, points=pts, baseline_name=names[key][0], baseline_note=names[key][1],
                            notes=tuple(notes[key] + extra)))
    return curves


def attach_amd(curve: Curve, table: BaselineTable, model_key: str) -> Curve:
    """The curve with AMD's existing points of ``table`` for the same model and ISL/OSL."""
    amd = sorted((p for p in table.models.get(model_key, ())
                  if (p.isl, p.osl) == (curve.key.isl, curve.key.osl)), key=lambda p: p.conc)
    source = f"{table.source.title} ({table.path.name}, model {model_key})"
    notes = curve.notes if amd else curve.notes + ((f"{source} has no point at ISL {curve.key.isl} / "
                                                   f"OSL {curve.key.osl}"),)
    return replace(curve, amd_points=tuple(amd), amd_source=source, notes=notes)
