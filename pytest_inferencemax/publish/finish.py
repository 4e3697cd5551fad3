"""Finishing a run: curves -> verdicts -> plots and report -> (with --submit-team) submission.

Runs once, in the process that saw every point (the xdist controller, or the only process).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pytest_inferencemax.errors import ResultsWriteError, os_reason
from pytest_inferencemax.judge.curve import CurveKey, build_curves
from pytest_inferencemax.judge.ranking import Ranking, rank_variants
from pytest_inferencemax.judge.verdict import Verdict, judge_curves
from pytest_inferencemax.publish.plots import plot_curves
from pytest_inferencemax.publish.report import PLOTS_DIR, write_report
from pytest_inferencemax.publish.submission import PointSubmission, SubmissionError
# SubmitOptions lives with the selection, shared with cli.submit; imported from here as before
from pytest_inferencemax.publish.submit_select import HeldBack, SubmitOptions, select_points, submit_selected
from pytest_inferencemax.judge.diagnosis import reading
from pytest_inferencemax.publish.telemetry_plots import plot_telemetry
from pytest_inferencemax.publish.variants import write_variants
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.summary import FailedGroup, Interruption


@dataclass
class FinishedRun:
    """What finishing a run produced: a verdict per curve, the report, the submissions, and problems."""

    verdicts: dict[CurveKey, Verdict] = field(default_factory=dict)
    report: Path | None = None
    submissions: list[PointSubmission] = field(default_factory=list)
    held_back: tuple[HeldBack, ...] = ()  # curves not sent: they did not qualify (submit_select.py)
    sent_anyway: bool = False  # --submit-unqualified: the held_back curves were sent all the same
    problems: list[str] = field(default_factory=list)
    diagnoses: dict[str, str] = field(default_factory=dict)  # the losing points' readings (judge/diagnosis.py)
    ranking: Ranking | None = None  # with variants: how they rank (judge/ranking.py)
    failed: list[FailedGroup] = field(default_factory=list)  # what failed, by group and cause (never left out)

    def lines(self) -> list[str]:
        out = [f"verdict {key.title}: {v.label.upper()} ({v.incomplete or v.decided_by})"
               for key, v in self.verdicts.items()]
        out += [f"failed {g.line()}" for g in self.failed]  # beside the verdicts: a failed curve is no verdict
        if self.ranking is not None and self.ranking.best is not None:
            out += [f"variants: best on {key.title}: {name}" for key, name in self.ranking.best_per_curve]
            o = self.ranking.overall[0]
            out.append(f"variants: best overall: {o.variant} (qualified on {o.curves_qualified} of {o.curves} curves)"
                       + (f" -> {self.report.parent / 'variants.md'}" if self.report else ""))
        if self.report:
            out.append(f"report: {self.report} (plots in {self.report.parent / 'plots'})")
        out += [f"diagnosis {point}: {text}" for point, text in self.diagnoses.items()]
        out += [f"submission {h.line(self.sent_anyway)}" for h in self.held_back]
        out += [f"submission {s.point}: {s.status}{': ' + s.message.splitlines()[0] if s.message else ''}"
                for s in self.submissions]  # the first line: a refusal's table was printed once, when it happened
        out += [f"problem: {p}" for p in self.problems]
        return out


def _without_lost_points(verdicts: dict[CurveKey, Verdict], records: Sequence[PointRecord],
                         failed: Sequence[FailedGroup]) -> dict[CurveKey, Verdict]:
    """A curve that lost a point to a failure (no record of it) is incomplete: judged on what finished, it
    could qualify without the point that would have failed it; nothing qualifies, nothing is submitted."""
    measured = {rec.point_id for rec in records}
    lost = [p for g in failed for p in g.points if p not in measured]
    out = dict(verdicts)
    for key, v in verdicts.items():
        tail = f"-{re.escape(key.variant)}" if key.variant else ""
        pattern = re.compile(rf"{re.escape(key.suite)}-{key.isl}-{key.osl}-c\d+{tail}")
        if mine := sorted({p for p in lost if pattern.fullmatch(p)}):
            out[key] = replace(v, qualified=False, incomplete=(
                v.incomplete or f"{len(mine)} point(s) of the curve failed unmeasured: {', '.join(mine)}"))
    return out


def finish_run(run_dir: Path, records: Sequence[PointRecord], rules: Mapping[tuple[str, str], Any],
               baselines_dir: Path, submit: SubmitOptions | None = None,
               echo: Callable[[str], None] = print, with_plots: bool = True,
               interruption: Interruption | None = None, failed: Sequence[FailedGroup] = ()) -> FinishedRun:
    """Judge the run's curves by their stages' ``rules``, write plots and ``report.md`` to ``run_dir``
    and, with ``submit``, send the qualifying points to the leaderboard. ``failed``: what failed, by group
    (``results.summary.failed_groups``): the report's "Failed" section and the ``failed`` lines, even when
    no point finished."""
    result = FinishedRun(failed=list(failed))
    curves, result.verdicts = judge_curves(build_curves(records), rules, baselines_dir)
    if interruption is not None:  # part of a curve is no verdict: nothing qualifies, nothing is submitted
        result.verdicts = {k: replace(v, qualified=False, incomplete=interruption.line())
                           for k, v in result.verdicts.items()}
    result.verdicts = _without_lost_points(result.verdicts, records, failed)
    # the verdicts stand even where the disk refuses their files: each refused write is a problem line
    plots_dir = Path(run_dir) / PLOTS_DIR
    plots = _written(result, lambda: dict(plot_curves(curves, plots_dir)), {}, plots_dir) if with_plots else {}
    point_plots = _written(result, lambda: _telemetry_plots(Path(run_dir), records), {}, plots_dir) if with_plots else {}
    result.diagnoses = {rec.point_id: reading(rec) for rec in records if _lost(rec)}
    result.report = _written(result, lambda: write_report(run_dir, records, result.verdicts, plots, curves,
                                                          interruption, point_plots, result.failed), None, run_dir)
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
    # the qualifying curves' points (with variants: each curve's best variant's), the rest held back and said
    selection = select_points(records, result.verdicts, result.ranking, unqualified=submit.unqualified)
    result.held_back, result.sent_anyway = selection.held_back, selection.unqualified
    try:
        result.submissions = submit_selected(run_dir, submit, selection, echo=echo)
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
