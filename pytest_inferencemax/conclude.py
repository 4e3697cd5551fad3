"""The end of a session: curves -> verdicts -> plots and report -> (with --submit-team) submission.

Runs once, in the process that saw every point (the xdist controller, or the only process).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .curve import CurveError, CurveKey, build_curves
from .plots import plot_curves
from .report import judge_curves, write_report
from .submission import PointSubmission, SubmissionError, submit_run
from .verdict import Verdict


@dataclass(frozen=True)
class SubmitOptions:
    team: str
    dry_run: bool = False
    force: bool = False  # send points whose accuracy gate was skipped, or that failed requests
    unqualified: bool = False  # send configurations that did not qualify
    url_override: str | None = None


@dataclass
class Conclusion:
    verdicts: dict[CurveKey, Verdict] = field(default_factory=dict)
    report: Path | None = None
    submissions: list[PointSubmission] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"verdict {key.title}: {v.label.upper()} ({v.decided_by})" for key, v in self.verdicts.items()]
        if self.report:
            out.append(f"report: {self.report} (plots in {self.report.parent / 'plots'})")
        out += [f"submission {s.point}: {s.status}{': ' + s.message if s.message else ''}" for s in self.submissions]
        out += [f"problem: {p}" for p in self.problems]
        return out


def conclude(run_dir: Path, records: Sequence[Mapping[str, Any]], rules: Mapping[tuple[str, str], Any],
             baselines_dir: Path, submit: SubmitOptions | None = None,
             echo: Callable[[str], None] = print) -> Conclusion:
    result = Conclusion()
    if not records:
        return result
    try:
        curves, result.verdicts = judge_curves(build_curves(records), rules, baselines_dir)
        plots = dict(plot_curves(curves, run_dir / "plots"))
        result.report = write_report(run_dir, records, result.verdicts, plots, curves)
    except CurveError as exc:
        result.problems.append(f"no curve or report: {exc}")
    if submit is None:
        return result
    qualified = {rec["inferencemax"]["point"] for rec in records
                 if (v := result.verdicts.get(_key(rec))) is not None and v.qualified}
    try:
        result.submissions = submit_run(
            run_dir, submit.team, dry_run=submit.dry_run, force=submit.force, url_override=submit.url_override,
            only_qualified=None if submit.unqualified else qualified, echo=echo)
    except SubmissionError as exc:
        result.problems.append(f"submission: {exc}")
    return result


def _key(rec: Mapping[str, Any]) -> CurveKey:
    info = rec["inferencemax"]
    return CurveKey(info["suite"], info["stage"], int(info["isl"]), int(info["osl"]))
