"""report.md's section on ``--compare-to``: each point's judged figures against the earlier run's, from the
comparison its record carries (``inferencemax.compare_to``, results/compare_record.py). Nothing when no point
was compared."""
from __future__ import annotations

from typing import Sequence

from pytest_inferencemax.results.compare_record import CompareTo
from pytest_inferencemax.results.record import PointRecord


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def comparison_lines(records: Sequence[PointRecord]) -> list[str]:
    """``## Compared with <run>``: a row per point and figure, what differs between the points' configurations,
    and whether a regression failed the point or is a warning; [] when no record was compared."""
    by_run: dict[str, list[tuple[str, CompareTo]]] = {}
    for rec in records:
        if rec.ours.compare_to is not None:
            by_run.setdefault(rec.ours.compare_to.run, []).append((rec.point_id, rec.ours.compare_to))
    lines: list[str] = []
    for run, compared in by_run.items():
        first = compared[0][1]
        lines += ["", f"## Compared with {run}", "",
                  f"Tolerance {float(first.tolerance):.1%}. Rule (docs/verdict.md): {first.rule}.", "",
                  "| point | figure | earlier | this run | change | 95% CI of the change | rounds (earlier vs this) "
                  "| verdict |", "|---|---|---:|---:|---:|:-:|:-:|:-:|"]
        for point, cmp in compared:
            for c in cmp.changes:
                verdict = f"**{c.verdict.upper()}**" if c.regressed else c.verdict
                ci = "–" if c.low is None else f"{_pct(c.low)} to {_pct(c.high)}"
                lines.append(f"| {point} | {c.figure} | {float(c.old):.4g} | {float(c.new):.4g} | {_pct(float(c.change))} "
                             f"| {ci} | {c.old_rounds} vs {c.new_rounds} | {verdict} |")
        lines.append("")
        differ = [(p, c) for p, c in compared if c.differs]
        if differ:
            lines += ["Not the same configuration (compared with --compare-any):", ""]
            lines += [f"- {p}: {c.differences()} (earlier -> this run)" for p, c in differ]
            lines.append("")
        regressed = [p for p, c in compared if c.regressed]
        if not regressed:
            lines.append("No point regressed.")
        elif first.fail:
            lines.append(f"Regressed, and failed for it (--compare-fail): {', '.join(regressed)}.")
        else:
            lines.append(f"Regressed (a warning: --compare-fail would fail them): {', '.join(regressed)}.")
    return lines
