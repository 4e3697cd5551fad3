"""Finishing a run: curves -> verdicts -> plots and report -> (with --submit-team) submission.

Runs once, in the process that saw every point (the xdist controller, or the only process).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pytest_inferencemax.errors import ResultsWriteError, os_reason
from pytest_inferencemax.judge.curve import CurveKey, build_curves, curve_key
from pytest_inferencemax.judge.ranking import Ranking, rank_variants
from pytest_inferencemax.judge.verdict import Verdict, judge_curves
from pytest_inferencemax.publish.plots import plot_curves
from pytest_inferencemax.publish.report import PLOTS_DIR, write_report
from pytest_inferencemax.publish.submission import PointSubmission, SubmissionError, submit_run
from pytest_inferencemax.judge.diagnosis import reading
from pytest_inferencemax.publish.telemetry_plots import plot_telemetry
from pytest_inferencemax.publish.variants import write_variants
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.summary import Interruption


@dataclass(frozen=True)
class SubmitOptions:
    team: str
    dry_run: bool = False
    force: bool = False  # send points whose accuracy gate was skipped, or that failed requests
    unqualified: bool = False  # send configurations that did not qualify
    url_override: str | None = None


@dataclass
class FinishedRun:
    """What finishing a run produced: a verdict per curve, the report, the submissions, and problems."""

    verdicts: dict[CurveKey, Verdict] = field(default_factory=dict)
    report: Path | None = None
    submissions: list[PointSubmission] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    diagnoses: dict[str, str] = field(default_factory=dict)  # the losing points' readings (judge/diagnosis.py)
    ranking: Ranking | None = None  # with variants: how they rank (judge/ranking.py)

    def lines(self) -> list[str]:
        out = [f"verdict {key.title}: {v.label.upper()} ({v.incomplete or v.decided_by})"
               for key, v in self.verdicts.items()]
        if self.ranking is not None and self.ranking.best is not None:
            out += [f"variants: best on {key.title}: {name}" for key, name in self.ranking.best_per_curve]
            o = self.ranking.overall[0]
            out.append(f"variants: best overall: {o.variant} (qualified on {o.curves_qualified} of {o.curves} curves)"
                       + (f" -> {self.report.parent / 'variants.md'}" if self.report else ""))
        if self.report:
            out.append(f"report: {self.report} (plots in {self.report.parent / 'plots'})")
        out += [f"diagnosis {point}: {text}" for point, text in self.diagnoses.items()]
        out += [f"submission {s.point}: {s.status}{': ' + s.message.splitlines()[0] if s.message else ''}"
                for s in self.submissions]  # the first line: a refusal's table was printed once, when it happened
        out += [f"problem: {p}" for p in self.problems]
        return out


def finish_run(run_dir: Path, records: Sequence[PointRecord], rules: Mapping[tuple[str, str], Any],
               baselines_dir: Path, submit: SubmitOptions | None = None,
               echo: Callable[[str], None] = print, with_plots: bool = True,
               interruption: Interruption | None = None) -> FinishedRun:
    """Judge the run's curves by their stages' ``rules``, write plots and ``report.md`` to ``run_dir``
    and, with ``submit``, send the qualifying points to the leaderboard."""
    result = FinishedRun()
    curves, result.verdicts = judge_curves(build_curves(records), rules, baselines_dir)
    if interruption is not None:  # part of a curve is no verdict: nothing qualifies, nothing is submitted
        result.verdicts = {k: replace(v, qualified=False, incomplete=interruption.line())
                           for k, v in result.verdicts.items()}
    # the verdicts stand even where the disk refuses their files: each refused write is a problem line
    plots_dir = Path(run_dir) / PLOTS_DIR
    plots = _written(result, lambda: dict(plot_curves(curves, plots_dir)), {}, plots_dir) if with_plots else {}
    point_plots = _written(result, lambda: _telemetry_plots(Path(run_dir), records), {}, plots_dir) if with_plots else {}
    result.diagnoses = {rec.point_id: reading(rec) for rec in records if _lost(rec)}
    result.report = _written(result, lambda: write_report(run_dir, records, result.verdicts, plots, curves,
                                                          interruption, point_plots), None, run_dir)
    result.ranking = rank_variants(curves, result.verdicts)
    if result.ranking is not None:
        _written(result, lambda: write_variants(Path(run_dir), result.ranking, curves,
                                                Path(run_dir) / PLOTS_DIR if with_plots else None), None, run_dir)
    if submit is None or not records:
        return result
    if interruption is not None:
        result.problems.append(f"submission: not sent, the run is incomplete ({interruption.line()})")
        return result
    if any(p.startswith("not saved: ") for p in result.problems):  # no submission without its log on disk
        result.problems.append(f"submission: not sent, the run folder {run_dir} refuses writes")
        return result
    qualified = {rec.point_id for rec in records
                 if (v := result.verdicts.get(curve_key(rec))) is not None and v.qualified}
    if result.ranking is not None:  # with variants: only each curve's best variant is sent
        qualified = {p for p in qualified if _best_variant(result.ranking, records, p)}
    try:
        result.submissions = submit_run(
            run_dir, submit.team, dry_run=submit.dry_run, force=submit.force, url_override=submit.url_override,
            only_qualified=None if submit.unqualified else qualified, echo=echo)
    except SubmissionError as exc:
        result.problems.append(f"submission: {exc}")
    return result


def _written(result: FinishedRun, write: Callable[[], Any], otherwise: Any, where: Path) -> Any:
    """``write()``'s result; when the disk refuses, ``otherwise``, and the refusal is one of the run's problems."""
    try:
        return write()
    except ResultsWriteError as exc:  # names the file
        result.problems.append(f"not saved: {exc}")
    except OSError as exc:  # matplotlib's own, worded by the OS alone
        result.problems.append(f"not saved: cannot write in {where}: {os_reason(exc)}")
    return otherwise


def _best_variant(ranking: Ranking, records: Sequence[PointRecord], point_id: str) -> bool:
    rec = next(r for r in records if r.point_id == point_id)
    key = curve_key(rec)
    return ranking.best_on(key.base) == key.variant


def _lost(rec: PointRecord) -> bool:
    """A point to explain: below its baseline on tput/GPU, or not a clean result."""
    ratio = rec.comparison.tput_ratio if rec.comparison else None
    return (ratio is not None and ratio < 1.0) or rec.status != "ok"


def _telemetry_plots(run_dir: Path, records: Sequence[PointRecord]) -> dict[str, Path]:
    """``plots/<point>-telemetry.png`` for every point whose time series is in the run folder."""
    out = {}
    for rec in records:
        t = rec.ours.telemetry
        if t is not None and t.series and (run_dir / t.series).is_file():
            png = plot_telemetry(run_dir / t.series, run_dir / PLOTS_DIR / f"{rec.point_id}-telemetry.png",
                                 f"{rec.point_id}: the server through the point")
            if png is not None:
                out[rec.point_id] = png
    return out
