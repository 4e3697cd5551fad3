"""--compare-to: which direction is better, per figure; and the pytest-benchmark record."""
from __future__ import annotations

import json


from e2e_support import MODELS_DIR, mini_suite_toml
from record_factory import point_record


def rec(figures: dict):
    return point_record(tput=figures["tput_per_gpu"], e2e_ms=figures["median_e2el_ms"], intvty=figures["interactivity"])


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
