"""Parity, judged: the side-by-side rows of both clients' runs (``measure/parity.py``) and their verdicts.

Token totals must be identical in every run; throughputs and TPOT must differ by no more than the larger of
the two clients' run-to-run spreads (max - min); every other reference key is shown, not judged.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from pytest_inferencemax.measure.figures import PARITY_IDENTICAL, PARITY_WITHIN_SPREAD
from pytest_inferencemax.measure.parity import REFERENCE_KEYS, ParityRun
from pytest_inferencemax.plan.values import CLIENTS



@dataclass
class ParityRow:
    key: str
    means: dict[str, float]  # client -> mean over its rounds
    spreads: dict[str, float]  # client -> max - min over its rounds
    stdevs: dict[str, float]
    diff: float  # reference mean - precise mean
    diff_pct: float | None
    judged: str  # "identical", "within spread", "shown"
    ok: bool = True
    why: str = ""


@dataclass
class ParityReport:
    point: str
    rounds: int
    runs: list[ParityRun]
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "rounds": self.rounds, "passed": self.passed,
                "rows": [asdict(r) for r in self.rows], "runs": [asdict(r) for r in self.runs]}


def judge(point: str, runs: Sequence[ParityRun]) -> ParityReport:
    """The side-by-side rows and their verdicts from the runs of both clients."""
    rounds = max((r.round for r in runs), default=0)
    report = ParityReport(point, rounds, list(runs))
    by_client = {c: [r for r in runs if r.client == c] for c in CLIENTS}
    for key in REFERENCE_KEYS:
        values = {c: [r.figures[key] for r in rs] for c, rs in by_client.items() if rs}
        means = {c: statistics.fmean(v) for c, v in values.items()}
        spreads = {c: max(v) - min(v) for c, v in values.items()}
        stdevs = {c: statistics.stdev(v) if len(v) > 1 else 0.0 for c, v in values.items()}
        a, b = means.get("precise", 0.0), means.get("reference", 0.0)
        row = ParityRow(key, means, spreads, stdevs, b - a, 100.0 * (b - a) / a if a else None, "shown")
        if key in PARITY_IDENTICAL:
            row.judged = "identical"
            every = sorted({x for v in values.values() for x in v})
            row.ok = len(every) == 1
            row.why = "" if row.ok else _count_why(values, every)
        elif key in PARITY_WITHIN_SPREAD:
            row.judged = "within spread"
            noise = max(spreads.values(), default=0.0)
            row.ok = abs(row.diff) <= noise
            pct = f" ({row.diff_pct:+.1f}%)" if row.diff_pct is not None else ""
            row.why = "" if row.ok else (f"reference {b:.4g} vs precise {a:.4g}: {row.diff:+.4g}{pct}, beyond the "
                                         f"larger run-to-run spread {noise:.4g}")
        report.rows.append(row)
    return report


def _count_why(values: dict[str, list[float]], every: list[float]) -> str:
    """How the runs' counts differ: by how much, and each client's runs (``precise 24, 24; reference 24, 23``)."""
    runs = "; ".join(f"{c} " + ", ".join(f"{x:.0f}" for x in v) for c, v in values.items())
    return f"runs differ by up to {every[-1] - every[0]:.0f}: {runs}"


def outcome_line(report: ParityReport) -> str:
    """The verdict and what decided it: the figures that differed and by how much, or what held."""
    if not report.passed:
        return "FAILED: " + "; ".join(f"{r.key} {r.why}" for r in report.rows if not r.ok)
    counts = ", ".join(f"{r.key} {r.means.get('precise', 0):.0f}" for r in report.rows if r.judged == "identical")
    spread = [r for r in report.rows if r.judged == "within spread"]
    widest = max(spread, key=lambda r: abs(r.diff_pct or 0.0), default=None)
    within = (f"; {len(spread)} throughput/TPOT figures within the clients' run-to-run spread (largest difference: "
              f"{widest.key} {widest.diff_pct:+.1f}%)" if widest is not None and widest.diff_pct is not None else "")
    return f"PASSED: identical in every run: {counts}{within}"
