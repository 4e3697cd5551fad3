"""Curves: one stage's points for one ISL/OSL, sorted by CONC, with their baseline points.

A curve is built from the point records as the plugin writes them (docs/metrics.md). The
baseline group and ratio keys are named after the baseline file's ``[source]`` prefix and tag
(``b200_baseline_nv1126``, ``tput_per_gpu_ratio_vs_b200_1126``; stage 2: ``baseline_nv1126``,
``*_ratio_vs_baseline_1126``); they are found in the record, so any baseline file works.
AMD's existing points (an optional second table) are attached with :func:`attach_amd`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from .baseline import BaselinePoint, BaselineTable
from .errors import ResultsError

TPUT_RATIO = "tput_per_gpu_ratio_vs_"
E2E_RATIO = "median_e2e_ratio_vs_"
INTVTY_RATIO = "interactivity_ratio_vs_"
_GROUP_FIELD = re.compile(r"(?P<prefix>.+)_tput_pergpu_(?P<tag>.+)")


class CurveError(ResultsError):
    """A record that is not a point record of this plugin; the message names the point."""


@dataclass(frozen=True, order=True)
class CurveKey:
    suite: str
    stage: str
    isl: int
    osl: int

    @property
    def slug(self) -> str:
        """A file-name-safe name, e.g. ``gptoss-s1-1024-1024``."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.suite}-{self.stage}-{self.isl}-{self.osl}")

    @property
    def title(self) -> str:
        return f"{self.suite}, stage {self.stage}, ISL {self.isl} / OSL {self.osl}"


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
    accuracy_status: str  # accuracy_validation.status: PASSED, FAILED, SKIPPED or "unknown"
    failed_requests: int = 0
    invalid: bool = False  # its token counts show it did not run the workload it names (token_check.failures)

    @property
    def median_e2e_s(self) -> float:
        return self.median_e2e_ms / 1000.0


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


def _number(rec: Mapping[str, Any], key: str, point: str) -> float:
    value = rec.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CurveError(f"point {point}: {key!r} is {value!r}, not a number")
    return float(value)


def _ratio(rec: Mapping[str, Any], prefix: str) -> tuple[bool, float | None]:
    """(the record has this ratio key, its value)."""
    for key, value in rec.items():
        if key.startswith(prefix):
            return True, (float(value) if isinstance(value, (int, float)) else None)
    return False, None


def baseline_group(rec: Mapping[str, Any]) -> tuple[str | None, dict[str, float] | None, str, str]:
    """The baseline group's name, its fields, and the file's prefix and tag (from the ratio key)."""
    suffix = next((k[len(TPUT_RATIO):] for k in rec if k.startswith(TPUT_RATIO)), None)
    for key, value in rec.items():
        if not isinstance(value, dict):
            continue
        for inner in value:
            m = _GROUP_FIELD.fullmatch(inner)
            if m and (suffix is None or f"{m['prefix']}_{m['tag']}" == suffix):
                return key, value, m["prefix"], m["tag"]
    if suffix is None:
        return None, None, "", ""
    # No baseline point: the group is null. Its name is the null key that names a baseline.
    name = next((k for k, v in rec.items() if v is None and "baseline" in k and k != "baseline_note"), None)
    return name, None, "", ""


def curve_point(rec: Mapping[str, Any]) -> tuple[CurveKey, CurvePoint, list[str]]:
    """One record as a curve point, its curve's key, and anything odd about it."""
    info = rec.get("inferencemax")
    if not isinstance(info, dict):
        raise CurveError(f"record {rec.get('model_id', '?')}: no 'inferencemax' section; not a point record")
    point = str(info.get("point", "?"))
    try:
        key = CurveKey(str(info["suite"]), str(info["stage"]), int(info["isl"]), int(info["osl"]))
        conc = int(info["conc"])
        divisor = float(info["tput_per_gpu_divisor"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CurveError(f"point {point}: inferencemax.{exc} missing or not a number") from None
    tput = _number(rec, "tput_per_gpu", point)
    e2e = _number(rec, "median_e2el_ms", point)
    intvty = _number(rec, "interactivity", point)
    notes: list[str] = []
    total = rec.get("total_token_throughput")
    if isinstance(total, (int, float)) and divisor > 0 and not math.isclose(tput, total / divisor, rel_tol=1e-6):
        notes.append(f"{point}: tput_per_gpu {tput:.6g} is not total_token_throughput {total:.6g} / "
                     f"divisor {divisor:g}")
    group, fields, prefix, tag = baseline_group(rec)
    base = None
    if fields is not None:
        try:
            base = BaselinePoint(isl=key.isl, osl=key.osl, conc=conc,
                                 median_e2e_ms=fields[f"{prefix}_median_e2e_{tag}"],
                                 median_intvty=fields[f"{prefix}_median_intvty_{tag}"],
                                 tput_per_gpu=fields[f"{prefix}_tput_pergpu_{tag}"])
        except (KeyError, ValueError) as exc:
            notes.append(f"{point}: baseline group {group!r} unusable ({exc}); treated as no baseline")
    ratios = []
    for prefix_key, ours, theirs in ((TPUT_RATIO, tput, base and base.tput_per_gpu),
                                     (E2E_RATIO, e2e, base and base.median_e2e_ms),
                                     (INTVTY_RATIO, intvty, base and base.median_intvty)):
        _, recorded = _ratio(rec, prefix_key)
        ratios.append(None if base is None else (recorded if recorded is not None else ours / theirs))
    validation = rec.get("accuracy_validation")
    status = str(validation.get("status", "unknown")) if isinstance(validation, dict) else "unknown"
    failed = info.get("failed", 0)
    return key, CurvePoint(
        conc=conc, point_id=point, tput_per_gpu=tput, divisor=divisor, median_e2e_ms=e2e,
        interactivity=intvty, tput_ratio=ratios[0], e2e_ratio=ratios[1], intvty_ratio=ratios[2],
        baseline=base, accuracy_status=status, failed_requests=int(failed) if isinstance(failed, int) else 0,
        invalid=bool((info.get("token_check") or {}).get("failures")),
    ), notes


def build_curves(records: Iterable[Mapping[str, Any]]) -> list[Curve]:
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
        group = baseline_group(rec)[0]
        prev_group, prev_note = names.get(key, (None, None))
        names[key] = (prev_group or group, prev_note or rec.get("baseline_note"))
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
