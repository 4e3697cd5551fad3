"""Curves from point records, and the stage verdicts (fast: hand-made records, no servers)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pytest_inferencemax.judge.baseline import BaselineTable, comparison, load_baseline
from pytest_inferencemax.judge.curve import attach_amd, build_curves
from pytest_inferencemax.judge.verdict import judge, judge_curves
from pytest_inferencemax.plan.rules import BeatBaselineShare, NotApplicable, Targets, VerdictError, parse_rule
from pytest_inferencemax.results.record import PointRecord
from record_factory import point_record

BASELINES = Path(__file__).resolve().parents[2] / "baselines"
S1 = load_baseline(BASELINES / "b200-nv1126.toml")
S2 = load_baseline(BASELINES / "grand-prize-s2.toml")
SHARE = {"rule": "beat_baseline_share", "min_share": 0.5, "metric": "tput_per_gpu"}
TARGETS = {"rule": "targets"}


def record(conc: int, tput: float, e2e_ms: float = 1000.0, intvty: float = 100.0, *, isl: int = 1024,
           osl: int = 1024, suite: str = "gptoss", stage: str = "s1", table: BaselineTable | None = S1,
           model_key: str | None = "gptoss", divisor: int = 8, status: str = "PASSED", failed: int = 0) -> PointRecord:
    """A point record with the baseline comparison made by baseline.comparison, as the plugin makes it."""
    rec = point_record(conc, tput, e2e_ms, intvty, isl=isl, osl=osl, suite=suite, stage=stage, divisor=divisor,
                       status=status, failed=failed)
    if table is not None:
        comparison(table, model_key, rec)
    return rec


def table(points: list[dict], title: str = "synthetic", group: str = "b200_baseline_nv1126", prefix: str = "b200",
          tag: str = "1126", model: str = "gptoss") -> BaselineTable:
    return BaselineTable.model_validate({
        "source": {"title": title, "origin": "test", "recorded": "2026", "group": group, "prefix": prefix,
                   "tag": tag},
        "models": {model: points}, "path": Path(f"{title}.toml")})


def pt(conc: int, tput: float, isl: int = 1024, osl: int = 1024) -> dict:
    return {"isl": isl, "osl": osl, "conc": conc, "median_e2e_ms": 1000.0, "median_intvty": 100.0,
            "tput_per_gpu": tput}


def one_curve(records):
    curves = build_curves(records)
    assert len(curves) == 1
    return curves[0]


# -- curves ----------------------------------------------------------------------------------------
def test_curves_grouped_by_suite_stage_isl_osl_and_sorted_by_conc():
    recs = [record(8, 700), record(4, 400), record(16, 800, osl=8192), record(4, 300, osl=8192),
            record(4, 100, stage="s2", isl=8192, table=S2)]
    curves = build_curves(recs)
    assert [(c.key.stage, c.key.isl, c.key.osl) for c in curves] == [("s1", 1024, 1024), ("s1", 1024, 8192),
                                                                      ("s2", 8192, 1024)]
    assert curves[0].concs == (4, 8) and curves[1].concs == (4, 16)
    assert curves[0].key.slug == "gptoss-s1-1024-1024"


def test_ratios_baseline_point_and_seconds():
    p = one_curve([record(4, 827.558, e2e_ms=1081.0, intvty=869.14)]).points[0]
    assert p.baseline.tput_per_gpu == 413.779 and p.baseline.median_e2e_ms == 2162
    assert p.tput_ratio == pytest.approx(2.0)
    assert p.e2e_ratio == pytest.approx(0.5)
    assert p.intvty_ratio == pytest.approx(2.0)
    assert p.median_e2e_s == pytest.approx(1.081)


def test_tput_per_gpu_uses_the_recorded_divisor():
    rec = record(4, 400.0, divisor=8)
    assert rec.total_token_throughput == 3200.0
    curve = one_curve([rec])
    assert curve.points[0].tput_per_gpu == 400.0 and curve.points[0].divisor == 8 and curve.divisors == (8,)
    assert curve.notes == ()
    rec.tput_per_gpu = 3200.0  # divided by 1 while the record says 8: flagged
    assert "not total_token_throughput" in one_curve([rec]).notes[0]
    mixed = one_curve([record(4, 400.0, divisor=8), record(8, 400.0, divisor=4)])
    assert mixed.divisors == (4, 8) and any("different tput_per_gpu divisors" in n for n in mixed.notes)


def test_missing_baseline_point_gives_none_and_keeps_the_group_name():
    curve = one_curve([record(16, 900.0), record(4, 500.0)])
    p16 = curve.points[1]
    assert p16.conc == 16 and p16.baseline is None
    assert (p16.tput_ratio, p16.e2e_ratio, p16.intvty_ratio) == (None, None, None)
    assert curve.baseline_name == "b200_baseline_nv1126"


def test_stage2_key_names_found_and_no_baseline_stage():
    s2 = one_curve([record(4, 10000.0, isl=8192, stage="s2", table=S2)])
    assert s2.baseline_name == "baseline_nv1126" and s2.points[0].baseline.tput_per_gpu == 9500
    none = one_curve([record(1, 50.0, suite="smollm2", stage="cpu", table=None, divisor=1)])
    assert none.baseline_name is None and none.points[0].baseline is None and none.points[0].tput_ratio is None


def test_conc_measured_twice_keeps_the_later_record():
    curve = one_curve([record(4, 100.0), record(4, 500.0)])
    assert [p.tput_per_gpu for p in curve.points] == [500.0]
    assert "more than once" in curve.notes[0]


# -- rules -----------------------------------------------------------------------------------------
def test_parse_rule():
    assert isinstance(parse_rule(None), NotApplicable) and isinstance(parse_rule({}), NotApplicable)
    assert parse_rule(SHARE) == BeatBaselineShare(rule="beat_baseline_share")
    assert parse_rule(TARGETS).min_points == 1
    for bad in ({"rule": "win"}, {**SHARE, "min_shar": 0.5}, {**SHARE, "min_share": 1.5},
                {**SHARE, "metric": "ttft"}):
        with pytest.raises(VerdictError, match="verdict"):
            parse_rule(bad)


def test_exactly_half_qualifies():
    v = judge(one_curve([record(4, 414.0), record(8, 690.0)]), SHARE)  # c4 beats 413.779, c8 misses 690.565
    assert v.qualified and v.label == "qualified"
    assert "1 of 2 points (50%)" in v.decided_by
    assert [r.mark for r in v.per_point] == ["✓", "✗"]


def test_49_percent_does_not_qualify_and_50_does():
    base = table([pt(c, 100.0) for c in range(1, 101)])
    recs = [record(c, 101.0 if c <= 49 else 99.0, table=base) for c in range(1, 101)]
    v = judge(one_curve(recs), SHARE)
    assert not v.qualified and "49 of 100 points (49%)" in v.decided_by
    recs[49] = record(50, 101.0, table=base)
    assert judge(one_curve(recs), SHARE).qualified


def test_a_tie_does_not_beat():
    v = judge(one_curve([record(4, 413.779)]), SHARE)
    assert not v.qualified and v.per_point[0].mark == "✗"


def test_missing_baseline_point_counts_as_not_beating():
    recs = [record(c, t, osl=8192) for c, t in ((4, 300.0), (8, 500.0), (16, 100.0))] + [record(32, 2000.0, osl=8192)]
    v = judge(one_curve(recs), SHARE)  # 2 of 4 beat: c32 has no baseline and does not count
    assert v.qualified and "no baseline at CONC 32" in v.decided_by
    row = v.per_point[-1]
    assert (row.conc, row.mark, row.status) == (32, "–", "no baseline")
    recs[1] = record(8, 100.0, osl=8192)
    v = judge(one_curve(recs), SHARE)
    assert not v.qualified and "1 of 4 points (25%)" in v.decided_by


def test_unknown_amd_point_is_not_checked_never_passed():
    v = judge(one_curve([record(4, 500.0), record(8, 800.0)]), SHARE)
    assert v.qualified and v.amd_check == "not checked"
    assert "AMD check not checked (no AMD table)" in v.decided_by
    assert ("AMD", "not checked (no AMD table)") in v.per_point[0].checks
    assert any("amd_baseline" in n for n in v.notes)


def test_amd_points_beaten_not_beaten_and_partly_known():
    curve = one_curve([record(4, 500.0), record(8, 800.0)])
    amd = table([pt(4, 300.0), pt(8, 800.0)], title="AMD MI355X", group="mi355x", prefix="mi355x")
    v = judge(attach_amd(curve, amd, "gptoss"), SHARE)
    assert v.qualified and v.amd_check == "passed"  # equal to AMD is not below
    lower = table([pt(4, 300.0), pt(8, 801.0)], title="AMD MI355X")
    v = judge(attach_amd(curve, lower, "gptoss"), SHARE)
    assert not v.qualified and v.amd_check == "failed"
    assert "below AMD's existing point at CONC 8" in v.decided_by
    part = table([pt(4, 300.0)], title="AMD MI355X")
    v = judge(attach_amd(curve, part, "gptoss"), SHARE)
    assert v.qualified and v.amd_check == "partly checked"
    assert ("AMD", "not checked (no AMD point at CONC 8)") in v.per_point[1].checks


def test_accuracy_gate_not_passed_means_not_qualified():
    v = judge(one_curve([record(4, 500.0), record(8, 800.0, status="SKIPPED")]), SHARE)
    assert not v.qualified
    assert v.decided_by == "not qualified: accuracy gate not passed on CONC 8 (SKIPPED)"
    v = judge(one_curve([record(4, 500.0, status="FAILED")]), SHARE)
    assert not v.qualified and "CONC 4 (FAILED)" in v.decided_by


def test_tie_break_figures_and_failed_requests():
    v = judge(one_curve([record(4, 413.779 * 2), record(8, 690.565 * 0.5)]), SHARE)
    assert v.points_above_baseline == 1 and v.tput_ratio_sum == pytest.approx(2.5)
    v = judge(one_curve([record(4, 500.0, failed=2)]), SHARE)
    assert not v.qualified and "not counted" in v.per_point[0].status


def test_other_metric():
    rule = {**SHARE, "metric": "median_e2e"}
    v = judge(one_curve([record(4, 1.0, e2e_ms=2000.0), record(8, 1.0, e2e_ms=9999.0)]), rule)  # lower is better
    assert v.qualified and [r.mark for r in v.per_point] == ["✓", "✗"]


# -- stage 2 targets --------------------------------------------------------------------------------
def s2(conc, tput, e2e, intvty, status="PASSED"):
    return record(conc, tput, e2e_ms=e2e, intvty=intvty, isl=8192, stage="s2", table=S2, status=status)


def test_targets_per_point_and_qualified_with_one_point():
    recs = [s2(4, 9500.0, 3500.0, 270.0),  # exactly on every target: met
            s2(32, 22000.0, 6100.0, 160.0),  # E2E missed
            s2(128, 1.0, 99999.0, 1.0)]
    v = judge(one_curve(recs), TARGETS)
    assert v.qualified and v.points_meeting_all_targets == 1
    assert [r.mark for r in v.per_point] == ["✓", "✗", "✗"]
    assert v.per_point[1].status == "meets 2 of 3 targets"
    assert dict(v.per_point[1].checks)["E2E"].endswith("missed")
    assert "1 of 3 points meet all three targets (needs >= 1)" in v.decided_by
    assert not judge(one_curve(recs), {"rule": "targets", "min_points": 2}).qualified


def test_targets_none_met_no_target_and_gate():
    v = judge(one_curve([s2(4, 1.0, 9999.0, 1.0), s2(64, 1e6, 1.0, 1e3)]), TARGETS)
    assert not v.qualified and v.per_point[1].status == "no target" and v.per_point[1].mark == "–"
    v = judge(one_curve([s2(4, 9500.0, 3500.0, 270.0, status="SKIPPED")]), TARGETS)
    assert not v.qualified and "accuracy gate not passed" in v.decided_by


def test_not_applicable():
    curve = one_curve([record(1, 50.0, suite="smollm2", stage="cpu", table=None, divisor=1)])
    for rule in (None, {}, {"rule": "none", "reason": "a CPU smoke sweep has no reference points"}):
        v = judge(curve, rule)
        assert v.label == "not applicable" and not v.qualified and not v.applicable
    assert "CPU smoke sweep" in v.decided_by


# -- the suite TOML the lead adds, and AMD tables from files -----------------------------------------
SUITE_TOML = """
[stages.s1.verdict]
rule = "beat_baseline_share"
min_share = 0.5
metric = "tput_per_gpu"
[stages.s2.verdict]
rule = "targets"
min_points = 1
[stages.cpu.verdict]
rule = "none"
reason = "CPU smoke sweep: no reference points"
"""


def test_suite_toml_verdict_tables_parse():
    stages = tomllib.loads(SUITE_TOML)["stages"]
    assert isinstance(parse_rule(stages["s1"]["verdict"]), BeatBaselineShare)
    assert isinstance(parse_rule(stages["s2"]["verdict"]), Targets)
    assert isinstance(parse_rule(stages["cpu"]["verdict"]), NotApplicable)


def test_judge_curves_reads_the_amd_table(tmp_path):
    (tmp_path / "mi355x.toml").write_text(
        (BASELINES / "b200-nv1126.toml").read_text().replace('tput_per_gpu = 413.779', 'tput_per_gpu = 600.0'))
    curves = build_curves([record(4, 500.0), record(8, 800.0)])
    rules = {("gptoss", "s1"): {**SHARE, "amd_baseline": "mi355x"}}
    _, verdicts = judge_curves(curves, rules, tmp_path)
    v = next(iter(verdicts.values()))
    assert not v.qualified and v.amd_check == "failed"  # c4 500 is below the AMD table's 600
    rules = {("gptoss", "s1"): {**SHARE, "amd_baseline": "missing"}}
    _out, verdicts = judge_curves(curves, rules, tmp_path)
    v = next(iter(verdicts.values()))
    assert v.qualified and v.amd_check == "not checked" and any("'missing' not read" in n for n in v.notes)
    _, verdicts = judge_curves(curves, {("gptoss", "s1"): {"rule": "typo"}}, tmp_path)
    assert next(iter(verdicts.values())).label == "not applicable"
