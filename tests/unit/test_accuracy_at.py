"""--accuracy-at: which points run the stage's accuracy task at their own CONC, what their records keep of it, and
that a point whose accuracy fails at its own load never counts (verdict, submission)."""
from __future__ import annotations

import argparse

import pytest

from pytest_inferencemax.gate.accuracy import GateResult, judge as judge_metrics
from pytest_inferencemax.gate.at_load import AccuracyAtLoad, ROLLING_NOTE, at_load_record
from pytest_inferencemax.judge.baseline import comparison
from pytest_inferencemax.judge.curve import build_curves
from pytest_inferencemax.judge.verdict import judge
from pytest_inferencemax.plan.accuracy_at import accuracy_at, select
from pytest_inferencemax.plan.rules import GateSpec
from pytest_inferencemax.publish.submission import check_submittable
from pytest_inferencemax.results.record import PointRecord
from record_factory import baseline_table, point_record


@pytest.mark.parametrize("text, terms", [
    ("max", ("max",)), ("median,max", ("median", "max")), ("4, 32", (4, 32)), ("ALL", ("all",)),
    ("inferencex", ("inferencex",)), ("off", ()), ("gate", ()), ("max,max", ("max",)),
])
def test_the_option_reads_terms(text, terms):
    assert accuracy_at(text) == terms


@pytest.mark.parametrize("text", ["maximum", "0", "-4", "4.5"])
def test_a_bad_term_names_the_choices(text):
    with pytest.raises(argparse.ArgumentTypeError, match="write max, median, all, inferencex or a CONC"):
        accuracy_at(text)


def test_selection_per_curve():
    s2 = [4, 32, 128]  # the bounty's stage-2 CONCs
    assert select(("max",), s2, 8192, 1024) == {128: "max"}
    assert select(("median",), s2, 8192, 1024) == {32: "median"}
    assert select(("median", "max"), [4, 8], 1024, 1024) == {8: "median, max"}  # InferenceX's median: the upper
    assert select(("all",), s2, 1, 1) == {4: "all", 32: "all", 128: "all"}
    assert select((32, 5), s2, 1, 1) == {32: "conc 32"}  # a CONC the curve lacks chooses nothing
    assert select((), s2, 1, 1) == {}


def test_inferencex_selection_is_its_own():
    """InferenceX (generate_sweep_configs.py::mark_eval_entries): 8k/1k only, CONC >= 16, median and highest."""
    assert select(("inferencex",), [4, 8, 16, 32, 64, 128], 8192, 1024) == {64: "inferencex", 128: "inferencex"}
    assert select(("inferencex",), [4, 32, 128], 8192, 1024) == {128: "inferencex"}  # eligible [32, 128]: median 128
    assert select(("inferencex",), [4, 32, 128], 1024, 1024) == {}  # not 8k/1k
    assert select(("inferencex",), [4, 8], 8192, 1024) == {}  # none >= 16


SPEC = GateSpec.from_table({"task": "wikitext", "rule": "max_ratio", "threshold_multiplier": 1.1,
                            "baselines": {"bits_per_byte": 1.0, "word_perplexity": 10.0}})


def result(bpb: float, wppl: float, conc: int) -> GateResult:
    values = {"bits_per_byte": bpb, "word_perplexity": wppl}
    return GateResult(spec=SPEC, task_name="wikitext_local", values=values, verdicts=judge_metrics(SPEC, values),
                      elapsed_s=1.23456, lm_eval_version="0.4.13", task_config={"output_type": "loglikelihood_rolling"},
                      model_args={"num_concurrent": conc})


def test_the_record_part_compares_with_the_gate_by_hand():
    gate, at = result(1.0, 10.0, 10), result(1.2, 10.5, 128)
    part = at_load_record(at, gate, 128, "max")
    assert part.status == "FAILED" and part.failed and part.gate_num_concurrent == 10
    assert part.values == {"bits_per_byte": 1.2, "word_perplexity": 10.5}
    assert part.vs_gate == pytest.approx({"bits_per_byte": 0.2, "word_perplexity": 0.05})
    assert part.limits["bits_per_byte"]["limit"] == pytest.approx(1.1) and part.elapsed_s == 1.235
    assert part.reason == "beyond the gate's limits at its own load: bits_per_byte 1.2000, limit <= 1.1000"
    assert part.load_note == ROLLING_NOTE.format(conc=128)
    assert part.words().startswith("FAILED at CONC 128 (bits_per_byte 1.2, word_perplexity 10.5): beyond")
    ok = at_load_record(result(1.0, 10.0, 4), gate, 4, "median")
    assert ok.status == "PASSED" and not ok.failed and ok.reason is None and ok.vs_gate == {"bits_per_byte": 0.0,
                                                                                            "word_perplexity": 0.0}


def with_at_load(conc: int, tput: float, status: str | None) -> PointRecord:
    rec = point_record(conc, tput)
    comparison(baseline_table({4: 100.0, 8: 100.0}), "gptoss", rec)
    if status is not None:
        rec.ours.accuracy_at_load = AccuracyAtLoad(num_concurrent=conc, selected_by="max", status=status,
                                                   reason=None if status == "PASSED" else "beyond")
    return rec


def test_a_point_that_fails_at_its_own_load_never_counts_and_round_trips():
    good, bad = with_at_load(4, 200.0, None), with_at_load(8, 200.0, "FAILED")  # both beat 100 tok/s/GPU
    assert PointRecord.from_json(bad.to_json()).ours.accuracy_at_load == bad.ours.accuracy_at_load
    [curve] = build_curves([good, bad])
    verdict = judge(curve, {"rule": "beat_baseline_share", "min_share": 0.75, "metric": "tput_per_gpu"})
    assert [r.mark for r in verdict.per_point] == ["✓", "✗"]
    assert "accuracy at its own load FAILED: not counted" in verdict.per_point[1].status
    assert dict(verdict.per_point[1].checks)["accuracy at load"] == "FAILED"
    assert "accuracy at load" not in dict(verdict.per_point[0].checks)
    assert not verdict.qualified and "accuracy at load failed at CONC 8 (not counted)" in verdict.accuracy
    passed = judge(build_curves([good, with_at_load(8, 200.0, "PASSED")])[0],
                   {"rule": "beat_baseline_share", "min_share": 0.75, "metric": "tput_per_gpu"})
    assert passed.qualified and "accuracy at load passed at CONC 8" in passed.accuracy


def test_a_point_that_fails_at_its_own_load_is_not_submitted():
    assert check_submittable(with_at_load(8, 200.0, "PASSED")) == []
    for status in ("FAILED", "ERROR"):
        [problem] = check_submittable(with_at_load(8, 200.0, status))
        assert problem.startswith(f"its accuracy at its own load failed (--accuracy-at): {status} at CONC 8")
