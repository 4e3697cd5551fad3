"""--compare-to: which direction is better, per figure; rounds compared by their pooled means and intervals;
the earlier run checked before anything starts; a regression a warning unless --compare-fail, everywhere."""
from __future__ import annotations

import json

import pytest

from pytest_inferencemax.publish.comparison_report import comparison_lines
from pytest_inferencemax.results.compare import CompareError, check_identity, compare, compare_to, load_run
from pytest_inferencemax.results.identity import configuration
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.rounds import FigureStats, RoundsSummary
from pytest_inferencemax.results.summary import summary_lines, write_summary
from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from record_factory import point_record

OLD = {"tput_per_gpu": 100.0, "median_e2el_ms": 1000.0, "interactivity": 50.0}


def rec(figures: dict):
    return point_record(tput=figures["tput_per_gpu"], e2e_ms=figures["median_e2el_ms"], intvty=figures["interactivity"])


def test_throughput_drop_is_a_regression_and_a_rise_is_not():
    drop = {c.figure: c for c in compare(rec({**OLD, "tput_per_gpu": 90.0}), rec(OLD), 0.05)}
    rise = {c.figure: c for c in compare(rec({**OLD, "tput_per_gpu": 110.0}), rec(OLD), 0.05)}
    assert drop["tput_per_gpu"].regressed and not drop["tput_per_gpu"].improved
    assert rise["tput_per_gpu"].improved and not rise["tput_per_gpu"].regressed
    assert drop["tput_per_gpu"].relative == pytest.approx(-0.10)


def test_latency_rise_is_a_regression_and_a_drop_is_not():
    slower = {c.figure: c for c in compare(rec({**OLD, "median_e2el_ms": 1200.0}), rec(OLD), 0.05)}
    faster = {c.figure: c for c in compare(rec({**OLD, "median_e2el_ms": 800.0}), rec(OLD), 0.05)}
    assert slower["median_e2el_ms"].regressed and faster["median_e2el_ms"].improved
    assert not faster["median_e2el_ms"].regressed


def test_changes_within_tolerance_are_neither():
    (tput, e2e, intvty) = compare(rec({"tput_per_gpu": 96.0, "median_e2el_ms": 1040.0, "interactivity": 52.0}), rec(OLD), 0.05)
    assert not any(c.regressed or c.improved for c in (tput, e2e, intvty))
    assert "same" in tput.describe()


def test_load_run_errors_name_the_fix(tmp_path):
    with pytest.raises(CompareError, match="no such run folder; give a run folder such as results/"):
        load_run(tmp_path / "missing")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(CompareError, match="a file, not a run folder; give the folder that holds it"):
        load_run(tmp_path / "summary.json")
    with pytest.raises(CompareError, match="holds no point results .*; give the folder of a run that finished points"):
        load_run(tmp_path)


def rounds_rec(tput_rounds: list[float], **kw) -> PointRecord:
    """A point run in rounds: its top-level tput/GPU is its median round's (the lower of two), as pool.py writes."""
    top = sorted(tput_rounds)[(len(tput_rounds) - 1) // 2]
    mean = sum(tput_rounds) / len(tput_rounds)
    rounds = RoundsSummary(n=len(tput_rounds), method="t", confidence=0.95, representative=1, files=[],
                           figures={"tput_per_gpu": FigureStats(values=tput_rounds, mean=mean, low=mean, high=mean)})
    return point_record(tput=top, ours={"rounds": rounds}, **kw)


def test_with_rounds_the_pooled_mean_is_compared_not_the_lower_round():
    # the user's run: 2 rounds whose lower one is -10.2 % against the earlier 70.01, their mean -3.3 %
    (tput, _, _) = compare(rounds_rec([62.89, 72.51]), point_record(tput=70.01), 0.05)
    assert tput.new == pytest.approx(67.70) and tput.relative == pytest.approx(-0.033, abs=5e-4)
    assert not tput.regressed and tput.verdict == "same"
    assert "1 vs 2 rounds" in tput.describe() and "95% CI" in tput.describe()


def test_a_change_counts_only_beyond_the_tolerance_and_the_noise():
    # decided by the rounds' interval, but within the 5 % tolerance: the same
    (small, _, _) = compare(rounds_rec([98.0, 98.1]), rounds_rec([100.0, 100.1]), 0.05)
    assert small.low < small.high < 0 and small.verdict == "same" and not small.regressed
    # beyond the tolerance, but one side's rounds are too noisy to say: within noise, not a regression
    (noisy, _, _) = compare(rounds_rec([60.0, 100.0]), point_record(tput=100.0), 0.05)
    assert noisy.relative == pytest.approx(-0.2) and noisy.low < 0 < noisy.high and noisy.verdict == "within noise"
    # beyond both: a regression, and the same the other way round an improvement
    (worse, _, _) = compare(rounds_rec([80.0, 80.5]), rounds_rec([100.0, 100.4]), 0.05)
    (better, _, _) = compare(rounds_rec([100.0, 100.4]), rounds_rec([80.0, 80.5]), 0.05)
    assert worse.regressed and worse.high < 0 and better.improved and better.low > 0


def test_another_workload_or_server_is_refused_naming_what_differs_and_the_option():
    old = point_record(tput=100.0)
    here = {**configuration(old), "num_prompts": 4, "model": "calibration"}
    with pytest.raises(CompareError) as exc:
        check_identity("results/a", {old.point_id: old}, {old.point_id: here})
    text = str(exc.value)
    assert "\n" not in text and "measured another workload or server than this run: gptoss-1024-1024-c4" in text
    assert "num_prompts 40 there, 4 here" in text and "model 'smollm2' there, 'calibration' here" in text
    assert "pass --compare-any" in text
    assert check_identity("results/a", {old.point_id: old}, {old.point_id: here}, allow_any=True) == {
        old.point_id: {"model": ["smollm2", "calibration"], "num_prompts": [40, 4]}}
    assert check_identity("results/a", {old.point_id: old}, {old.point_id: configuration(old)}) == {}
    with pytest.raises(CompareError, match="holds none of the 1 point\\(s\\) of this run"):
        check_identity("results/a", {old.point_id: old}, {"other-1-1-c1": configuration(old)})


def test_the_comparison_line_says_what_differs():
    old, new = point_record(tput=100.0), point_record(tput=100.0, num_prompts=4)
    assert "[not the same configuration: num_prompts 40 -> 4]" in compare_to(new, old, "results/a", 0.05).line()


def test_a_regression_without_compare_fail_is_a_warning_everywhere_and_kept_on_the_record(tmp_path):
    new = point_record(tput=50.0)
    new.ours.compare_to = compare_to(new, point_record(tput=100.0), "results/a", 0.05)
    back = PointRecord.from_json(new.to_json())  # what the summary and the report read from disk
    assert back.ours.compare_to.regressed[0].figure == "tput_per_gpu"
    lines = summary_lines([back], [], tmp_path)
    assert any(line.startswith("WARNING gptoss-1024-1024-c4: regressed vs results/a: tput_per_gpu 100 -> 50")
               for line in lines)
    assert not any(line.startswith("FAILED") for line in lines)
    data = json.loads(write_summary([back], [], tmp_path).read_text())
    assert data["failures"] == [] and "regressed vs results/a" in data["warnings"][0]["warning"]
    # with --compare-fail the regression is the point's failure (the fixture's reason), not also a warning
    failing = point_record(tput=50.0)
    failing.ours.compare_to = compare_to(failing, point_record(tput=100.0), "results/a", 0.05, fail=True)
    assert failing.warnings() == []


def test_report_section_lists_each_figure_and_what_differs():
    new = point_record(tput=50.0, num_prompts=4)
    new.ours.compare_to = compare_to(new, point_record(tput=100.0), "results/a", 0.05)
    text = "\n".join(comparison_lines([new, point_record()]))
    assert "## Compared with results/a" in text and "Tolerance 5.0%" in text
    assert "| gptoss-1024-1024-c4 | tput_per_gpu | 100 | 50 | -50.0% | – | 1 vs 1 | **REGRESSED** |" in text
    assert "- gptoss-1024-1024-c4: num_prompts 40 -> 4 (earlier -> this run)" in text
    assert "Regressed (a warning: --compare-fail would fail them): gptoss-1024-1024-c4." in text
    assert comparison_lines([point_record()]) == []


def run_mini(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    d = pytester.path / "mini"
    d.mkdir(exist_ok=True)
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [1], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    # a server that is not there, given up on at once: a check that let the point start fails fast, not by a launch
    return pytester.runpytest_inprocess("mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider",
                                        "--server-url", "http://127.0.0.1:9", "--server-ready-timeout", "1",
                                        "--results-dir", str(pytester.path / "results"), *args)


def test_a_bad_compare_to_is_a_one_line_usage_error_before_any_server_starts(pytester, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "mini-16-4-c1.json").write_text(point_record(suite="mini", isl=16, osl=4, conc=1).to_json())
    for value, says in ((str(tmp_path / "nonexistent"), "no such run folder"),
                        (str(empty), "holds no point results"),
                        (str(other), "measured another workload or server than this run: mini-16-4-c1: ")):
        result = run_mini(pytester, "--compare-to", value, "--run-id", "r")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines
        errors = [line for line in result.errlines if line.startswith("ERROR:")]
        assert len(errors) == 1 and f"--compare-to {value}: {says}" in errors[0], result.errlines
        assert "Traceback" not in result.stdout.str() + result.stderr.str()
        assert "checking the server" not in result.stdout.str()  # nothing started, nothing was asked
    assert "num_prompts 40 there, 1 here" in errors[0] and "pass --compare-any" in errors[0]




def test_a_missing_compare_to_is_one_line_under_xdist_too(tmp_path):
    """The controller reads --compare-to before its workers start (a worker's usage error is an INTERNALERROR)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pytest", str(root / "suites" / "smollm2-cpu"), "-p", "no:cacheprovider",
                           "-n", "2", "--results-dir", str(tmp_path), "--compare-to", str(tmp_path / "nonexistent")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "INTERNALERROR" not in out, out
    assert f"ERROR: --compare-to {tmp_path / 'nonexistent'}: no such run folder" in out
