"""--compare-to: which direction is better, per figure; and the pytest-benchmark record."""
from __future__ import annotations

import json

import pytest

from e2e_support import MODELS_DIR, mini_suite_toml
from pytest_inferencemax.compare import CompareError, compare, load_run

OLD = {"tput_per_gpu": 100.0, "median_e2el_ms": 1000.0, "interactivity": 50.0}


def test_throughput_drop_is_a_regression_and_a_rise_is_not():
    drop = {c.figure: c for c in compare({**OLD, "tput_per_gpu": 90.0}, OLD, 0.05)}
    rise = {c.figure: c for c in compare({**OLD, "tput_per_gpu": 110.0}, OLD, 0.05)}
    assert drop["tput_per_gpu"].regressed and not drop["tput_per_gpu"].improved
    assert rise["tput_per_gpu"].improved and not rise["tput_per_gpu"].regressed
    assert drop["tput_per_gpu"].relative == pytest.approx(-0.10)


def test_latency_rise_is_a_regression_and_a_drop_is_not():
    slower = {c.figure: c for c in compare({**OLD, "median_e2el_ms": 1200.0}, OLD, 0.05)}
    faster = {c.figure: c for c in compare({**OLD, "median_e2el_ms": 800.0}, OLD, 0.05)}
    assert slower["median_e2el_ms"].regressed and faster["median_e2el_ms"].improved
    assert not faster["median_e2el_ms"].regressed


def test_changes_within_tolerance_are_neither():
    (tput, e2e, intvty) = compare({"tput_per_gpu": 96.0, "median_e2el_ms": 1040.0, "interactivity": 52.0}, OLD, 0.05)
    assert not any(c.regressed or c.improved for c in (tput, e2e, intvty))
    assert "same" in tput.describe()


def test_load_run_errors_name_the_fix(tmp_path):
    with pytest.raises(CompareError, match="not a folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(CompareError, match="no point results"):
        load_run(tmp_path)


SUITE_TEST = '''
def test_point(inferencemax, inferencemax_point, benchmark):
    outcome = inferencemax.run(inferencemax_point, benchmark)
    assert outcome.failed == 0, outcome.failure_report()
'''


def test_compare_fail_and_benchmark_json_on_a_real_server(pytester, vllm_server, tmp_path):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    args = ["mini", "--server-url", vllm_server.base_url, "--served-model-name", "smollm2",
            "--results-dir", str(tmp_path), "--models-dir", str(MODELS_DIR)]
    first = pytester.runpytest_subprocess(*args, "--run-id", "a", "--benchmark-json", str(tmp_path / "bench.json"),
                                          timeout=300)
    first.assert_outcomes(passed=1)
    bench = json.loads((tmp_path / "bench.json").read_text())["benchmarks"][0]
    rec = json.loads((tmp_path / "a" / "mini-16-4-c2.json").read_text())
    assert bench["extra_info"]["tput_per_gpu"] == rec["tput_per_gpu"]
    assert bench["extra_info"]["median_ttft_ms"] == rec["median_ttft_ms"]
    assert bench["extra_info"]["point"] == "mini-16-4-c2"

    # the saved run claims twice today's throughput: today's run is a drop and fails with --compare-fail
    original = dict(rec)
    rec["tput_per_gpu"] *= 2
    (tmp_path / "a" / "mini-16-4-c2.json").write_text(json.dumps(rec))
    worse = pytester.runpytest_subprocess(*args, "--run-id", "b", "--compare-to", str(tmp_path / "a"),
                                          "--compare-fail", timeout=300)
    worse.assert_outcomes(failed=1)
    assert "tput_per_gpu" in worse.stdout.str() and "REGRESSED" in worse.stdout.str()

    # the saved run claims a quarter of today's figures on every count (throughput and interactivity
    # a quarter, latency four times): today's run improved on all three, the point passes. Only
    # margins far beyond run-to-run noise (a few to 25 % on points this small) are used.
    rec = {**original, "tput_per_gpu": original["tput_per_gpu"] / 4,
           "interactivity": original["interactivity"] / 4, "median_e2el_ms": original["median_e2el_ms"] * 4}
    (tmp_path / "a" / "mini-16-4-c2.json").write_text(json.dumps(rec))
    better = pytester.runpytest_subprocess(*args, "--run-id", "c", "--compare-to", str(tmp_path / "a"),
                                           "--compare-fail", timeout=300)
    better.assert_outcomes(passed=1)
    assert "improved" in better.stdout.str()
