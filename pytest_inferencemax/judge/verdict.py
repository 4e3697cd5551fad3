"""Verdicts: does a curve qualify under its stage's scoring rule?

Rules are data, declared per stage (``[stages.<name>.verdict]`` in suite.toml, parsed here):

* ``beat_baseline_share`` (bounty stage 1): qualified when at least ``min_share`` of the curve's
  points beat the baseline ``metric`` at the same CONC (ties do not beat; exactly ``min_share``
  qualifies), AND no point is below AMD's existing point at that CONC (only where an AMD table
  gives one: without one the AMD check is "not checked", never "passed"), AND the accuracy gate
  passed on every point. A point without a baseline point, or with failed requests, does not
  beat the baseline. Also gives the stage-1 tie-break figures: points above the baseline and the
  sum of tput/GPU ratios.
* ``targets`` (bounty stage 2): per CONC a target is met when E2E <= target, interactivity >=
  target and tput/GPU >= target. The bounty ranks submissions by points per CONC, so every point's
  status is reported, and the configuration is "qualified" when at least ``min_points`` points
  (default 1) meet all three targets and the accuracy gate passed on every point.
* ``none``: not applicable (e.g. a CPU smoke suite without reference points).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from pathlib import Path

from pytest_inferencemax.judge.baseline import BaselineError, BaselinePoint, BaselineTable, load_baseline
from pytest_inferencemax.judge.curve import Curve, CurveKey, CurvePoint, attach_amd
from pytest_inferencemax.plan.rules import (
    BeatBaselineShare, NotApplicable, Targets, VerdictError, parse_rule,
)
from pytest_inferencemax.judge.noise import (
    SINGLE_ROUND, Decision, Outcome, decide, what_would_decide,
)
from pytest_inferencemax.measure.figures import judged_by
from pytest_inferencemax.plan.values import Word
from pytest_inferencemax.results.stats import method

CHECK, CROSS, DASH, QUESTION = "✓", "✗", "–", "?"


class AmdCheck(Word):
    """Stage 1's check that no point is below AMD's existing point at its CONC."""

    PASSED = "passed"
    FAILED = "failed"
    PARTLY_CHECKED = "partly checked"  # some points had an AMD point to compare with
    NOT_CHECKED = "not checked"  # no AMD table, or no AMD point at these CONC: never "passed"


@dataclass(frozen=True)
class PointRow:
    conc: int
    mark: str  # ✓ beats the baseline / meets all targets, ✗ does not, ? inconclusive, – no baseline or target
    status: str  # in words
    checks: tuple[tuple[str, str], ...] = ()  # (check, result) pairs
    outcome: str | None = None  # beats, loses, inconclusive; None: nothing to judge (no baseline or target)
    rounds: int = 1


@dataclass(frozen=True)
class Verdict:
    key: CurveKey
    rule: str
    applicable: bool
    qualified: bool
    decided_by: str  # the rule that decided, in words
    per_point: tuple[PointRow, ...] = ()
    notes: tuple[str, ...] = ()
    accuracy: str = ""
    amd_check: AmdCheck | None = None  # stage 1 only
    points_above_baseline: int | None = None  # stage-1 tie-break 1
    tput_ratio_sum: float | None = None  # stage-1 tie-break 2
    points_meeting_all_targets: int | None = None  # stage 2
    incomplete: str | None = None  # why the curve cannot be judged whole (the run was interrupted)
    inconclusive_points: int = 0  # points whose comparison lies within their rounds' noise
    undecided: str | None = None  # the inconclusive points could swing the verdict: what would decide them
    noise: str = SINGLE_ROUND  # how the points were tested for noise, in words

    @property
    def label(self) -> str:
        if self.incomplete:
            return "incomplete"
        if not self.applicable:
            return "not applicable"
        if self.undecided:
            return "inconclusive"
        return "qualified" if self.qualified else "not qualified"


WORDS: Mapping[str, str] = MappingProxyType({"tput_per_gpu": "tput/GPU", "interactivity": "interactivity",
                                            "median_e2e": "median E2E"})


def _baseline_figure(baseline: BaselinePoint, metric: str) -> float:
    return float(getattr(baseline, judged_by(metric)[1]))
MARKS = {Outcome.BEATS: CHECK, Outcome.LOSES: CROSS, Outcome.INCONCLUSIVE: QUESTION}


def accuracy_summary(curve: Curve) -> tuple[bool, str]:
    """(the gate passed on every point, in words)."""
    bad = [f"CONC {p.conc} ({p.accuracy_status})" for p in curve.points if p.accuracy_status != "PASSED"]
    if not curve.points:
        return False, "no points"
    if bad:
        return False, "accuracy gate not passed on " + ", ".join(bad)
    words = f"accuracy gate passed on all {len(curve.points)} points"
    at_load = [p for p in curve.points if p.accuracy_at_load is not None]
    if failed := [f"CONC {p.conc}" for p in at_load if p.failed_at_load]:  # those points do not count (_at_load_why)
        words += f"; accuracy at load failed at {', '.join(failed)} (not counted)"
    elif at_load:
        words += f"; accuracy at load passed at CONC {', '.join(str(p.conc) for p in at_load)}"
    return True, words


def _unclean(p: CurvePoint) -> str | None:
    """Why a point that beats its baseline does not count: failed requests, an invalid workload, or its accuracy
    at its own load (--accuracy-at) failed."""
    if p.failed_requests:
        return f"{p.failed_requests} failed requests"
    if p.invalid:
        return "invalid workload, see token_check"
    if p.failed_at_load:
        return f"accuracy at its own load {p.accuracy_at_load.status}"
    return None


def _accuracy_checks(p: CurvePoint) -> tuple[tuple[str, str], ...]:
    """The gate's status and, with --accuracy-at, the task's at the point's own CONC."""
    at_load = (("accuracy at load", str(p.accuracy_at_load.status)),) if p.accuracy_at_load is not None else ()
    return (("accuracy", str(p.accuracy_status)),) + at_load


def noise_words(curve: Curve) -> str:
    counts = sorted({p.n_rounds for p in curve.points})
    if counts in ([], [1]):
        return SINGLE_ROUND
    span = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    confidences = sorted({p.confidence for p in curve.points if p.n_rounds > 1})
    return f"{span} rounds per point: " + "; ".join(method(c) for c in confidences)


def _point_decision(p: CurvePoint, metric: str, target: float, **kw: Any) -> Decision:
    key, _, higher = judged_by(metric)
    return decide(p.mean(key), target, higher, p.stats(key), confidence=p.confidence, **kw)


def _share_row(p: CurvePoint, rule: BeatBaselineShare, curve: Curve) -> tuple[PointRow, Decision | None, str]:
    """The point's row, its decision against the baseline (None without one: it does not beat) and its
    AMD result (below / not below / within noise / not checked)."""
    words = WORDS[rule.metric]
    checks: list[tuple[str, str]] = []
    decision: Decision | None = None
    if p.baseline is None:
        mark, status, outcome = DASH, "no baseline", None
    else:
        decision = _point_decision(p, rule.metric, _baseline_figure(p.baseline, rule.metric))
        if decision.outcome is Outcome.BEATS and (why := _unclean(p)):
            decision = replace(decision, outcome=Outcome.LOSES, words=decision.words + f" ({why}: not counted)")
        outcome = decision.outcome.value
        mark = MARKS[decision.outcome]
        status = f"{words} {decision.words} vs baseline {_baseline_figure(p.baseline, rule.metric):.6g}: " + {"beats": "beats", "loses": "does not beat",
                                                  "inconclusive": "inconclusive"}[outcome]
        if decision.outcome is Outcome.INCONCLUSIVE:
            status += f"; {what_would_decide(decision, p.n_rounds)}"
    amd: BaselinePoint | None = curve.amd_at(p.conc)
    if curve.amd_source is None or amd is None:
        amd_result = "not checked"
        checks.append(("AMD", "not checked (" + ("no AMD table" if curve.amd_source is None
                                                  else f"no AMD point at CONC {p.conc}") + ")"))
    else:
        vs_amd = _point_decision(p, rule.metric, _baseline_figure(amd, rule.metric), ties_beat=True)  # equal to AMD's is not below it
        amd_result = {Outcome.LOSES: "below", Outcome.BEATS: "not below",
                      Outcome.INCONCLUSIVE: "within noise"}[vs_amd.outcome]
        checks.append(("AMD", f"{words} {vs_amd.words} vs AMD {_baseline_figure(amd, rule.metric):.6g}: {amd_result}"))
    checks.extend(_accuracy_checks(p))
    return PointRow(p.conc, mark, status, tuple(checks), outcome, p.n_rounds), decision, amd_result


def _judge_share(curve: Curve, rule: BeatBaselineShare) -> Verdict:
    rows, decisions, amd_results = [], [], []
    for p in curve.points:
        row, decision, amd = _share_row(p, rule, curve)
        rows.append(row)
        decisions.append(decision)
        amd_results.append(amd)
    total = len(curve.points)
    beaten = sum(1 for d in decisions if d is not None and d.outcome is Outcome.BEATS)
    unsure = [p for p, d in zip(curve.points, decisions) if d is not None and d.outcome is Outcome.INCONCLUSIVE]
    decided = total - len(unsure)
    need = Fraction(str(rule.min_share))
    worst_ok = total > 0 and Fraction(beaten, total) >= need  # even if every inconclusive point lost
    best_ok = total > 0 and Fraction(beaten + len(unsure), total) >= need  # even if every one beat
    metric_words = WORDS[rule.metric]
    if not total:
        share_words = "the curve has no points"
    elif not unsure:
        share_words = (f"{beaten} of {total} points ({beaten / total:.0%}) beat the baseline "
                       f"{metric_words} at the same CONC (needs >= {rule.min_share:.0%})")
    else:
        share_words = (f"{beaten} of {decided} decided points beat the baseline {metric_words} at the same CONC, "
                       f"{len(unsure)} inconclusive (needs >= {rule.min_share:.0%} of {total} points: "
                       f"{beaten / total:.0%} if every inconclusive point loses, "
                       f"{(beaten + len(unsure)) / total:.0%} if every one beats)")
    no_base = [p.conc for p in curve.points if p.baseline is None]
    if no_base:
        share_words += f"; no baseline at CONC {', '.join(map(str, no_base))}"
    below = [p.conc for p, r in zip(curve.points, amd_results) if r == "below"]
    checked = sum(r != "not checked" for r in amd_results)
    if below:
        amd_check = AmdCheck.FAILED
        amd_words = f"below AMD's existing point at CONC {', '.join(map(str, below))}"
    elif curve.amd_source is None:
        amd_check, amd_words = AmdCheck.NOT_CHECKED, "AMD check not checked (no AMD table)"
    elif checked == 0:
        amd_check, amd_words = AmdCheck.NOT_CHECKED, "AMD check not checked (no AMD point at these CONC)"
    elif checked < total:
        amd_check = AmdCheck.PARTLY_CHECKED
        amd_words = f"no point below AMD's where known ({checked} of {total} points checked)"
    else:
        amd_check, amd_words = AmdCheck.PASSED, "no point below AMD's existing points"
    acc_ok, acc_words = accuracy_summary(curve)
    undecided = None
    if worst_ok != best_ok and not below and acc_ok:
        undecided = ("the inconclusive points decide it: " + "; ".join(
            f"CONC {p.conc}: {what_would_decide(d, p.n_rounds)}" for p, d in zip(curve.points, decisions)
            if d is not None and d.outcome is Outcome.INCONCLUSIVE) + " (--repeat auto adds them)")
    qualified = worst_ok and not below and acc_ok
    if qualified:
        decided_by = f"qualified: {share_words}; {amd_words}; {acc_words}"
    elif undecided:
        decided_by = f"inconclusive: {share_words}; {undecided}"
    else:
        failing = [w for ok, w in ((best_ok, share_words), (not below, amd_words), (acc_ok, acc_words)) if not ok]
        decided_by = "not qualified: " + "; ".join(failing)
    ratios = [p.tput_ratio for p in curve.points if p.tput_ratio is not None]
    notes = list(curve.notes)
    if amd_check in (AmdCheck.NOT_CHECKED, AmdCheck.PARTLY_CHECKED):
        notes.append("the AMD condition is not fully checked: give the rule an amd_baseline table")
    within = [p.conc for p, r in zip(curve.points, amd_results) if r == "within noise"]
    if within:
        notes.append(f"within the noise of AMD's point at CONC {', '.join(map(str, within))}: not counted as below")
    return Verdict(key=curve.key, rule=rule.rule, applicable=True, qualified=qualified, decided_by=decided_by,
                   per_point=tuple(rows), notes=tuple(notes), accuracy=acc_words, amd_check=amd_check,
                   points_above_baseline=sum(1 for p in curve.points
                                             if p.tput_ratio is not None and p.tput_ratio > 1),
                   tput_ratio_sum=sum(ratios) if ratios else None, inconclusive_points=len(unsure),
                   undecided=undecided, noise=noise_words(curve))


def _target_check(p: CurvePoint, metric: str, target: float, name: str, op: str) -> tuple[tuple[str, str], Decision]:
    d = _point_decision(p, metric, target, ties_beat=True)
    word = {Outcome.BEATS: "met", Outcome.LOSES: "missed", Outcome.INCONCLUSIVE: "within noise"}[d.outcome]
    return (name, f"{d.words} {op} {target:.6g}: {word}"), d


def _judge_targets(curve: Curve, rule: Targets) -> Verdict:
    rows, met_all, unsure = [], 0, 0
    for p in curve.points:
        t = p.baseline
        if t is None:
            rows.append(PointRow(p.conc, DASH, "no target", _accuracy_checks(p), None, p.n_rounds))
            continue
        pairs = (_target_check(p, "median_e2e", t.median_e2e_ms, "E2E", "ms <="),
                 _target_check(p, "interactivity", t.median_intvty, "interactivity", ">="),
                 _target_check(p, "tput_per_gpu", t.tput_per_gpu, "tput/GPU", ">="))
        checks = tuple(c for c, _ in pairs)
        outcomes = [d.outcome for _, d in pairs]
        n_met = outcomes.count(Outcome.BEATS)
        unclean = _unclean(p)
        clean = unclean is None
        if n_met == 3 and clean:
            outcome, status = Outcome.BEATS, "meets all three targets"
        elif Outcome.LOSES in outcomes or not clean:
            outcome, status = Outcome.LOSES, f"meets {n_met} of 3 targets"
        else:
            outcome, status = Outcome.INCONCLUSIVE, f"meets {n_met} of 3 targets, the others within noise"
        met_all += outcome is Outcome.BEATS
        unsure += outcome is Outcome.INCONCLUSIVE
        if n_met == 3 and not clean:
            status += f" but not counted: {unclean}"
        rows.append(PointRow(p.conc, MARKS[outcome], status, checks + _accuracy_checks(p),
                             outcome.value, p.n_rounds))
    acc_ok, acc_words = accuracy_summary(curve)
    enough, could = met_all >= rule.min_points, met_all + unsure >= rule.min_points
    target_words = (f"{met_all} of {len(curve.points)} points meet all three targets "
                    f"(needs >= {rule.min_points})" + (f", {unsure} within noise" if unsure else ""))
    undecided = ("the points within noise decide it (--repeat auto adds rounds to them)"
                 if could and not enough and acc_ok else None)
    qualified = enough and acc_ok
    failing = [w for ok, w in ((could, target_words), (acc_ok, acc_words)) if not ok]
    decided = (f"qualified: {target_words}; {acc_words}" if qualified
               else f"inconclusive: {target_words}; {undecided}" if undecided
               else "not qualified: " + "; ".join(failing))
    notes = list(curve.notes) + [("stage 2 ranks submissions by points per CONC against the other entries; "
                                 "that ranking is not computed here")]
    return Verdict(key=curve.key, rule=rule.rule, applicable=True, qualified=qualified, decided_by=decided,
                   per_point=tuple(rows), notes=tuple(notes), accuracy=acc_words, points_meeting_all_targets=met_all,
                   inconclusive_points=unsure, undecided=undecided, noise=noise_words(curve))


def judge(curve: Curve, rule: BeatBaselineShare | Targets | NotApplicable | Mapping[str, Any] | None) -> Verdict:
    """The curve's verdict under ``rule`` (a parsed rule or the stage's verdict table)."""
    if rule is None or isinstance(rule, Mapping):
        rule = parse_rule(rule, where=f"verdict of {curve.key.suite} stage {curve.key.stage}")
    if isinstance(rule, BeatBaselineShare):
        return _judge_share(curve, rule)
    if isinstance(rule, Targets):
        return _judge_targets(curve, rule)
    rows = tuple(PointRow(p.conc, DASH, "not judged", rounds=p.n_rounds) for p in curve.points)
    return Verdict(key=curve.key, rule=rule.rule, applicable=False, qualified=False,
                   decided_by=f"not applicable: {rule.reason}", per_point=rows, notes=curve.notes,
                   accuracy=accuracy_summary(curve)[1], noise=noise_words(curve))


def judge_curves(curves: Sequence[Curve], rules: Mapping[tuple[str, str], Any],
                 baselines_dir: Path | None = None) -> tuple[list[Curve], dict[CurveKey, Verdict]]:
    """Each curve judged by its stage's rule (``rules[(suite, stage)]``: a verdict table or rule).

    A ``beat_baseline_share`` rule naming an ``amd_baseline`` gets AMD's points from
    ``<baselines_dir>/<amd_baseline>.toml``; a table that cannot be read leaves the AMD check
    "not checked" and says why in the notes. A rule that cannot be parsed gives "not applicable"
    with the error as its reason (the report must still be written).
    """
    tables: dict[str, BaselineTable | str] = {}
    out_curves, verdicts = [], {}
    for curve in curves:
        raw = rules.get((curve.key.suite, curve.key.stage))
        try:
            rule = raw if not (raw is None or isinstance(raw, Mapping)) else parse_rule(
                raw, where=f"[stages.{curve.key.stage}.verdict] of suite {curve.key.suite}")
        except VerdictError as exc:
            rule = parse_rule({"rule": "none", "reason": f"the verdict rule cannot be used: {exc}"})
        if isinstance(rule, BeatBaselineShare) and rule.amd_baseline:
            if rule.amd_baseline not in tables:
                try:
                    if baselines_dir is None:
                        raise BaselineError("no baselines folder was given")
                    tables[rule.amd_baseline] = load_baseline(Path(baselines_dir) / f"{rule.amd_baseline}.toml")
                except BaselineError as exc:
                    tables[rule.amd_baseline] = str(exc)
            table = tables[rule.amd_baseline]
            if isinstance(table, BaselineTable):
                curve = attach_amd(curve, table, rule.amd_baseline_key or curve.key.suite)
            else:
                curve = replace(curve, notes=curve.notes + (
                    f"AMD table {rule.amd_baseline!r} not read: {table}; AMD check not checked",))
        out_curves.append(curve)
        verdicts[curve.key] = judge(curve, rule)
    return out_curves, verdicts
