"""Rounds (--repeat): the statistics, pooling rounds into a point's record, the three-way decisions and
verdicts, --compare-to with noise, and when --repeat auto stops."""
from __future__ import annotations

import argparse
import math

import pytest
from scipy import stats as scipy_stats

from pytest_inferencemax.judge.baseline import BaselineTable, comparison
from pytest_inferencemax.judge.curve import build_curves
from pytest_inferencemax.judge.decided import open_question
from pytest_inferencemax.judge.noise import Outcome, decide
from pytest_inferencemax.judge.verdict import judge
from pytest_inferencemax.plan.rules import parse_rule
from pytest_inferencemax.plan.values import repeat_count, rounds_max
from pytest_inferencemax.plugin.rounds import RoundsPlan
from pytest_inferencemax.publish.plots import plot_series
from pytest_inferencemax.publish.report import curve_table
from pytest_inferencemax.results.compare import compare
from pytest_inferencemax.results.pool import pool_rounds, representative
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.rounds import FigureStats
from pytest_inferencemax.results.stats import difference_interval, mean_interval, rounds_to_decide, sequential_confidence
from pytest_inferencemax.results.summary import rounds_line
from record_factory import baseline_table, point_record

SHARE = {"rule": "beat_baseline_share", "min_share": 0.5, "metric": "tput_per_gpu"}


def rounds_of(conc: int, tputs: list[float], base: BaselineTable | None = None, **kw) -> PointRecord:
    """A point's record pooled from rounds with these tput/GPU figures (compared with ``base``)."""
    recs = []
    for t in tputs:
        rec = point_record(conc, t, **kw)
        if base is not None:
            comparison(base, "gptoss", rec)
        recs.append(rec)
    return pool_rounds(recs, [f"rounds/{recs[0].point_id}.r{k}.json" for k in range(1, len(recs) + 1)],
                       durations=[60.0] * len(recs))


# -- statistics ------------------------------------------------------------------------------------
def test_mean_interval_is_students_t_interval():
    iv = mean_interval([10.0, 12.0, 14.0])
    half = scipy_stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)  # sd 2, n 3
    assert (iv.mean, iv.stdev, iv.n) == (12.0, 2.0, 3)
    assert iv.low == pytest.approx(12.0 - half) and iv.high == pytest.approx(12.0 + half)
    assert half == pytest.approx(4.968, abs=1e-3)
    one = mean_interval([5.0])
    assert (one.low, one.high, one.stdev) == (5.0, 5.0, None)
    assert mean_interval([3.0, 3.0]).low == 3.0  # no spread: a point interval, not NaN
    with pytest.raises(ValueError):
        mean_interval([])


def test_difference_interval_is_welchs():
    new, old = [110.0, 112.0, 114.0], [100.0, 101.0, 99.0, 100.0]
    iv = difference_interval(new, old)
    ref = scipy_stats.ttest_ind(new, old, equal_var=False).confidence_interval(0.95)
    assert iv.mean == pytest.approx(12.0) and (iv.low, iv.high) == pytest.approx((ref.low, ref.high))
    assert iv.low > 0
    with pytest.raises(ValueError, match="at least two rounds"):
        difference_interval([1.0], old)


def test_rounds_to_decide_is_the_first_count_whose_interval_excludes_the_target():
    values = [100.0, 110.0, 90.0]  # mean 100, sd 10
    n = rounds_to_decide(values, 80.0)
    assert scipy_stats.t.ppf(0.975, n - 1) * 10 / math.sqrt(n) < 20 <= scipy_stats.t.ppf(0.975, n - 2) * 10 / math.sqrt(n - 1)
    assert rounds_to_decide(values, 100.0) is None  # the target at the mean: nothing decides it


# -- pooling ---------------------------------------------------------------------------------------
def test_the_points_record_is_its_median_round_with_every_rounds_figures():
    base = baseline_table({4: 300.0})
    pooled = rounds_of(4, [420.0, 380.0, 400.0], base)
    r = pooled.ours.rounds
    assert r.n == 3 and r.representative == 3 and pooled.tput_per_gpu == 400.0  # the median round, as run
    assert r.files == [f"rounds/gptoss-1024-1024-c4.r{k}.json" for k in (1, 2, 3)]
    tput = r.figures["tput_per_gpu"]
    assert tput.values == [420.0, 380.0, 400.0] and tput.mean == pytest.approx(400.0)
    assert (tput.low, tput.high) == pytest.approx((mean_interval([420, 380, 400]).low, mean_interval([420, 380, 400]).high))
    ratio = r.ratios["tput_per_gpu"]
    assert ratio.values == pytest.approx([1.4, 380 / 300, 400 / 300]) and ratio.low == pytest.approx(tput.low / 300)
    assert r.statuses == ["ok"] * 3 and pooled.status == "ok"
    again = PointRecord.from_json(pooled.to_json())  # the summary survives the file
    assert again.ours.rounds == r and again.to_json() == pooled.to_json()
    assert representative([point_record(4, t) for t in (5.0, 1.0, 3.0, 2.0)]) == 3  # lower middle of 4: 2.0


def test_a_round_with_failed_requests_makes_the_point_partial():
    recs = [point_record(4, 400.0), point_record(4, 390.0, failed=2)]
    pooled = pool_rounds(recs, ["rounds/a.r1.json", "rounds/a.r2.json"])
    assert pooled.ours.rounds.failed == [0, 2] and pooled.ours.rounds.not_ok == [2]
    assert pooled.status == "partial"
    assert build_curves([pooled])[0].points[0].failed_requests == 2
    with pytest.raises(ValueError, match="different points"):
        pool_rounds([point_record(4, 1.0), point_record(8, 1.0)], ["a", "b"])


# -- decisions -------------------------------------------------------------------------------------
def test_one_round_decides_by_its_figure_untested_and_rounds_by_their_interval():
    one = decide(401.0, 400.0, True)
    assert one.outcome is Outcome.BEATS and not one.tested
    assert decide(400.0, 400.0, True).outcome is Outcome.LOSES  # a tie does not beat
    assert decide(400.0, 400.0, True, ties_beat=True).outcome is Outcome.BEATS  # stage 2's targets
    tight = FigureStats(values=[420, 421, 419], mean=420, low=417.5, high=422.5)
    assert decide(420, 400.0, True, tight).outcome is Outcome.BEATS
    assert decide(420, 400.0, False, tight).outcome is Outcome.LOSES  # lower is better (E2E)
    wide = FigureStats(values=[380, 440, 410], mean=410, low=335, high=485)
    d = decide(410, 400.0, True, wide)
    assert d.outcome is Outcome.INCONCLUSIVE and d.tested and d.rounds_needed > 3


def test_the_verdict_counts_decided_points_and_says_when_inconclusive_ones_swing_it():
    base = baseline_table({4: 300.0, 8: 300.0, 16: 300.0, 32: 300.0})
    beats = [rounds_of(4, [400, 402, 398], base), rounds_of(8, [400, 401, 399], base)]
    loses = [rounds_of(16, [200, 201, 199], base)]
    unsure = [rounds_of(32, [260, 380, 320], base)]
    # 2 beat, 1 loses, 1 inconclusive: 50 % even if it loses -> qualified
    v = judge(build_curves(beats + loses + unsure)[0], SHARE)
    assert v.label == "qualified" and v.inconclusive_points == 1
    assert [r.mark for r in v.per_point] == ["✓", "✓", "✗", "?"]
    assert "2 of 3 decided points beat" in v.decided_by and "1 inconclusive" in v.decided_by
    # 1 beats, 2 lose, 1 inconclusive: 25 % or 50 % -> the inconclusive point decides it
    v = judge(build_curves(beats[:1] + loses + [rounds_of(8, [200, 201, 199], base)] + unsure)[0], SHARE)
    assert v.label == "inconclusive" and not v.qualified
    assert "CONC 32:" in v.undecided and "more round(s)" in v.undecided
    # 1 beats, 3 lose... with an inconclusive one it is still below half either way -> not qualified
    v = judge(build_curves(loses + [rounds_of(4, [200, 201, 199], base), rounds_of(8, [200, 202, 198], base)] + unsure)[0],
              SHARE)
    assert v.label == "not qualified" and v.undecided is None
    assert "3 rounds per point" in v.noise


def test_single_round_runs_keep_the_verdict_and_say_they_were_not_tested_for_noise():
    base = baseline_table({4: 300.0, 8: 300.0})
    recs = [point_record(4, 310.0), point_record(8, 290.0)]
    for r in recs:
        comparison(base, "gptoss", r)
    v = judge(build_curves(recs)[0], SHARE)
    assert v.label == "qualified" and v.noise == "1 round: not tested for noise"
    assert v.per_point[0].status == "tput/GPU 310 vs baseline 300: beats"


def test_targets_rule_three_way():
    base = baseline_table({4: 300.0})  # targets: E2E <= 1000 ms, interactivity >= 100, tput/GPU >= 300
    rule = parse_rule({"rule": "targets"})
    recs = []
    for t in (305.0, 295.0, 300.0):
        rec = point_record(4, t, e2e_ms=900.0, intvty=120.0)
        comparison(base, "gptoss", rec)
        recs.append(rec)
    pooled = pool_rounds(recs, ["a", "b", "c"])
    v = judge(build_curves([pooled])[0], rule)
    assert v.per_point[0].outcome == "inconclusive" and v.label == "inconclusive"
    assert "tput_per_gpu mean 300" in open_question(pooled, rule) and open_question(pooled, parse_rule(None)) is None


def test_open_question_is_none_once_decided_or_without_a_baseline():
    base = baseline_table({4: 300.0})
    rule = parse_rule(SHARE)
    assert open_question(rounds_of(4, [400, 401, 399], base), rule) is None
    assert "tput_per_gpu mean 300" in open_question(rounds_of(4, [250, 350, 300], base), rule)
    assert open_question(rounds_of(4, [250, 350, 300]), rule) is None  # no baseline point: nothing to decide


# -- compare-to ------------------------------------------------------------------------------------
def test_compare_with_rounds_counts_a_change_only_outside_both_runs_noise():
    old = rounds_of(4, [400, 440, 360])
    slightly = rounds_of(4, [370, 390, 350])  # -7.5 %: beyond a 5 % tolerance, inside the noise
    tput = next(c for c in compare(slightly, old, 0.05) if c.figure == "tput_per_gpu")
    assert not tput.regressed and "within noise" in tput.describe() and "95% CI" in tput.describe()
    clearly = rounds_of(4, [300, 302, 298])
    tput = next(c for c in compare(clearly, rounds_of(4, [400, 401, 399]), 0.05) if c.figure == "tput_per_gpu")
    assert tput.regressed and "REGRESSED" in tput.describe()
    single = next(c for c in compare(point_record(4, 370.0), old, 0.05) if c.figure == "tput_per_gpu")
    assert single.old_rounds == 3 and single.low is not None and single.verdict == "within noise"  # one side's rounds: their interval


# -- when --repeat auto stops -----------------------------------------------------------------------
def test_rounds_plan():
    fixed = RoundsPlan(3, 6)
    assert [fixed.stop([1.0] * n, "open") for n in (1, 2, 3)] == [(False, None), (False, None), (True, None)]
    auto = RoundsPlan("auto", 4)
    assert auto.stop([1.0], None) == (False, None)  # at least two rounds
    assert auto.stop([1.0, 1.0], None) == (True, "decided after 2 rounds")
    assert auto.stop([1.0, 1.0], "x") == (False, None)
    stop, why = auto.stop([1.0] * 4, "x")
    assert stop and why == "--repeat-max 4 reached, still inconclusive: x"
    budget = RoundsPlan("auto", 10, budget_s=150.0)
    assert budget.stop([60.0, 60.0], "x") == (False, None)  # 0 spent + 60 expected <= 150
    assert budget.stop([60.0, 60.0, 60.0], "x") == (False, None)  # 60 spent + 60 <= 150
    stop, why = budget.stop([60.0] * 4, "x")  # 120 spent + 60 > 150
    assert stop and why.startswith("--repeat-budget 2.5 min would be exceeded (2.0 min spent)")


def test_repeat_options_refuse_bad_values_with_the_fix():
    assert repeat_count("3") == 3 and repeat_count("AUTO") == "auto" and rounds_max("2") == 2
    for parse, text, words in ((repeat_count, "0", "a whole number from 1"), (repeat_count, "some", "or 'auto'"),
                               (rounds_max, "1", "at least 2")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            parse(text)


# -- publishing ------------------------------------------------------------------------------------
def test_plots_report_and_summary_show_the_intervals():
    base = baseline_table({4: 300.0, 8: 300.0})
    curve = build_curves([rounds_of(4, [400, 420, 380], base), rounds_of(8, [500, 510, 490], base)])[0]
    ours = plot_series(curve, "e2e")[0]
    tput = mean_interval([400, 420, 380])
    assert ours.ys[0] == pytest.approx(400.0) and ours.yerr[0] == pytest.approx((400 - tput.low, tput.high - 400))
    assert ours.xerr == ((0.0, 0.0), (0.0, 0.0))  # every round had the same E2E
    assert "(ours) mean, 95% CI" in ours.name
    rows = curve_table(curve, judge(curve, SHARE))
    assert rows[0].startswith("| CONC | rounds |") and f"400.0 [{tput.low:.1f}, {tput.high:.1f}]" in rows[2]
    assert rounds_line(rounds_of(4, [400, 420, 380], base)).startswith(
        "  rounds gptoss-1024-1024-c4: 3, representative r1, 95% intervals; tput_per_gpu 400 [")
    single = build_curves([point_record(4, 400.0)])[0]
    assert plot_series(single, "e2e")[0].yerr is None


def test_auto_widens_each_looks_interval_so_all_looks_together_err_at_most_5_percent():
    assert sequential_confidence(6) == pytest.approx(0.99) and sequential_confidence(4) == pytest.approx(1 - 0.05 / 3)
    assert RoundsPlan("auto", 6).confidence == pytest.approx(0.99) and RoundsPlan(3, 6).confidence == 0.95
    recs = [point_record(4, t) for t in (400.0, 420.0, 380.0)]
    narrow = pool_rounds(recs, ["a", "b", "c"]).ours.rounds
    wide = pool_rounds(recs, ["a", "b", "c"], confidence=0.99).ours.rounds
    assert wide.confidence == 0.99 and "99% confidence" in wide.method
    assert wide.figures["tput_per_gpu"].low < narrow.figures["tput_per_gpu"].low
    base = baseline_table({4: 340.0})
    for r in recs:
        comparison(base, "gptoss", r)
    rule = parse_rule(SHARE)  # 340 lies below the 95% interval (350.3 to 449.7) but inside the 99% one
    assert open_question(pool_rounds(recs, ["a", "b", "c"]), rule) is None
    assert "99% CI" in open_question(pool_rounds(recs, ["a", "b", "c"], confidence=0.99), rule)
