"""Which points go to the leaderboard, the same in every path: ``pytest --submit-team`` and ``cli.merge
--submit-team`` (through finish.py's ``finish_run``) and ``cli.submit`` on a saved run folder.

A point is sent when its curve's verdict is "qualified" (judge/verdict.py) and, with recipe variants, its variant
is the curve's best (judge/ranking.py). Every other curve is held back: said, with the verdict's label and reason,
and logged (``held back``, submit_log.py). ``--submit-unqualified`` (``cli.submit --unqualified``) sends them
anyway, and says so. The per-point checks (accuracy gate, failed requests: ``--submit-force``) come after, in
submission.py.

``cli.submit`` judges the saved run the way ``finish_run`` judged it (:func:`judge_saved_run`): the same
functions, each record's own ``inferencemax.verdict_rule`` (the stage's table when it ran, as cli.merge uses it),
its baseline comparison, the AMD tables under ``--baselines``, and ``summary.json``'s ``interrupted`` (an
interrupted run has no whole curve). The run keeps no verdicts in a form to read back (``summary.json`` has the
lines for people), so they are judged again; where ``summary.json`` names a curve's verdict and it is not the
one judged now (another AMD table, say), the curve is held back: a curve goes only when both say "qualified".
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.judge.curve import CurveKey, build_curves, curve_key
from pytest_inferencemax.judge.ranking import Ranking, rank_variants
from pytest_inferencemax.judge.verdict import Verdict, judge_curves
from pytest_inferencemax.publish.submission import PointSubmission, SubmissionError, submit_run
from pytest_inferencemax.publish.submit_log import LogEntry, append_entry
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import SUMMARY_FILE, RunFolder
from pytest_inferencemax.results.summary import Interruption

DRY_RUN_TEAM = "DRY RUN: no team given"  # the team of a dry run's payloads without --team / --submit-team
SEND_ANYWAY = "--submit-unqualified"  # the option that sends held-back curves (cli.submit: also --unqualified)


@dataclass(frozen=True)
class SubmitOptions:
    team: str | None = None  # None: a dry run only, its payloads' team is DRY_RUN_TEAM
    dry_run: bool = False
    force: bool = False  # send points whose accuracy gate was skipped, or that failed requests
    unqualified: bool = False  # send configurations that did not qualify
    url_override: str | None = None

    def team_name(self) -> str:
        """The team to send as; without one, a dry run's placeholder, else a :class:`SubmissionError`."""
        if self.team and self.team.strip():
            return self.team.strip()
        if self.dry_run:
            return DRY_RUN_TEAM
        raise SubmissionError("no team name: pass --team (cli.submit) or --submit-team (pytest, cli.merge); "
                              "only a dry run may go without one")


@dataclass(frozen=True)
class HeldBack:
    """One curve's points that are not sent, and why."""

    curve: CurveKey
    points: tuple[str, ...]
    label: str  # the verdict's label ("not applicable", "not qualified", ...); "qualified" for a variant not the best
    reason: str

    def line(self, sent_anyway: bool = False) -> str:
        what = f"{self.curve.title} ({len(self.points)} point(s): {', '.join(self.points)})"
        why = f"{self.label.upper()}: {self.reason}"
        return (f"sent although {why} ({SEND_ANYWAY}): {what}" if sent_anyway
                else f"held back {what}: {why}; {SEND_ANYWAY} sends it anyway")


@dataclass(frozen=True)
class Selection:
    send: frozenset[str]  # the point ids to send
    held_back: tuple[HeldBack, ...]  # curves that did not qualify (with unqualified: sent anyway)
    unqualified: bool = False

    def lines(self) -> list[str]:
        return [h.line(self.unqualified) for h in self.held_back]


def _reason(v: Verdict) -> str:
    if v.incomplete:
        return v.incomplete
    return v.decided_by.removeprefix(f"{v.label}: ")


def select_points(records: Sequence[PointRecord], verdicts: Mapping[CurveKey, Verdict], ranking: Ranking | None,
                  *, unqualified: bool = False, among: Collection[str] | None = None) -> Selection:
    """The points of ``records`` (those in ``among``, when given) whose curve qualified and, with variants,
    is the best variant on its curve; the rest held back by curve (``unqualified``: sent too, and listed)."""
    held: dict[CurveKey, tuple[str, str, list[str]]] = {}
    send = set()
    for rec in records:
        if among is not None and rec.point_id not in among:
            continue
        key = curve_key(rec)
        v = verdicts.get(key)
        best = ranking.best_on(key.base) if ranking is not None else key.variant
        if v is None:
            why: tuple[str, str] | None = ("not judged", "no verdict for this curve")
        elif not v.qualified or v.incomplete:
            why = (v.label, _reason(v))
        elif best != key.variant:
            why = ("qualified", f"variant {key.variant!r} is not the best on its curve ({best!r} is): only a "
                                "curve's best variant is sent")
        else:
            why = None
        if why is None or unqualified:
            send.add(rec.point_id)
        if why is not None:
            held.setdefault(key, (*why, []))[2].append(rec.point_id)
    return Selection(frozenset(send), tuple(HeldBack(k, tuple(p), label, reason)
                                            for k, (label, reason, p) in sorted(held.items())), unqualified)


def _saved_labels(run_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """``summary.json``'s ``interrupted`` and its conclusion lines ([] when it is missing or unreadable)."""
    try:
        data = RunFolder(run_dir).read_json(SUMMARY_FILE) or {}
    except ResultsError:
        return None, []
    if not isinstance(data, dict):
        return None, []
    lines = [ln for ln in data.get("conclusion") or [] if isinstance(ln, str)]
    return data.get("interrupted") if isinstance(data.get("interrupted"), dict) else None, lines


def judge_saved_run(run_dir: Path, records: Sequence[PointRecord],
                    baselines_dir: Path | None) -> tuple[dict[CurveKey, Verdict], Ranking | None]:
    """The verdicts of a saved run's curves, as ``finish_run`` gave them (module docstring), and its ranking."""
    rules: dict[tuple[str, str], Any] = {}
    for rec in records:
        key = (rec.ours.suite, rec.ours.stage)
        if key in rules and rules[key] != rec.ours.verdict_rule:
            raise SubmissionError(f"suite {key[0]} stage {key[1]}: the records in {run_dir} name different verdict "
                                  "rules; a run folder holds one run: merge runs with cli.merge, then submit that")
        rules[key] = rec.ours.verdict_rule
    curves, verdicts = judge_curves(build_curves(records), rules, baselines_dir)
    interrupted, conclusion = _saved_labels(Path(run_dir))
    if interrupted is not None:
        stop = Interruption(by=str(interrupted.get("by")), point=interrupted.get("point"),
                            not_run=tuple(interrupted.get("not_run") or ()),
                            deselected=int(interrupted.get("deselected") or 0))
        verdicts = {k: replace(v, qualified=False, incomplete=stop.line()) for k, v in verdicts.items()}
    for key, v in verdicts.items():
        head = f"verdict {key.title}: "
        saved = next((ln[len(head):].split(" (", 1)[0] for ln in conclusion if ln.startswith(head)), None)
        if saved is not None and saved != v.label.upper() and v.qualified:
            verdicts[key] = replace(v, qualified=False, incomplete=(
                f"the run's {SUMMARY_FILE} says {saved}, judged again now {v.label.upper()}: the AMD table under "
                "--baselines may not be the one the run used (pass the run's)"))
    return verdicts, rank_variants(curves, verdicts)


def submit_selected(run_dir: Path, opts: SubmitOptions, selection: Selection, *,
                    echo: Callable[[str], None] = print, **kw: Any) -> list[PointSubmission]:
    """Say (``echo``) and log the held-back curves, then send ``selection.send`` (submission.submit_run, with
    ``kw``); the outcomes of the points sent. Nothing to send: []."""
    team = opts.team_name()
    for h in selection.held_back:
        echo(f"inferencemax: {h.line(selection.unqualified)}")
        if not selection.unqualified:
            for point in h.points:
                append_entry(run_dir, LogEntry(team=team, point=point, status="held back", dry_run=opts.dry_run,
                                               message=f"{h.curve.title}: {h.label.upper()}: {h.reason}"))
    if not selection.send:
        return []
    return submit_run(run_dir, team, dry_run=opts.dry_run, force=opts.force, url_override=opts.url_override,
                      only_qualified=selection.send, echo=echo, **kw)
