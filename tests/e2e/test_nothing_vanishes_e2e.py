"""Nothing vanishes: a point whose server's accuracy gate cannot run, and a suite whose server never comes up,
FAIL (never a skip) with their cause in the summary, summary.json and report.md, also when ``-k`` selects the
points only (as the CI's jobs do), and cli.merge carries them into the merged folder and exits 1 (docs/ci.md).
On the calibration server launched as a suite recipe (it returns no prompt logprobs): seconds, not minutes."""
from __future__ import annotations

import json

from e2e_support import REPO, calibration_suite_toml, stage_toml
from pytest_inferencemax.cli.merge import main as merge_main

CAL_ARGV = ('["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "5", "--itl-ms", "2"]'
            % (REPO / "benchmarks" / "calibration_server.py"))
STAGES = """
[stages.s]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
workloads = [{ isl = 16, osl = 16, conc = [1], prompts_per_conc = 2 }]

[stages.g]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
workloads = [{ isl = 16, osl = 8, conc = [1, 2], prompts_per_conc = 2 }]

[stages.g.accuracy]
task = "wikitext"
rule = "max_ratio"
dataset = "builtin:1"
threshold_multiplier = 1.1
baselines = { byte_perplexity = 2.0 }
"""
DEAD_STAGE = stage_toml("{ isl = 16, osl = 16, conc = [1, 2], prompts_per_conc = 2 }")
SUITE_TESTS = "from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  # noqa: F401\n"
NO_LOGPROBS = "the accuracy gate could not run: the server at"


def _suites(pytester) -> None:
    cal = pytester.mkdir("cal")
    (cal / "suite.toml").write_text(calibration_suite_toml(CAL_ARGV, STAGES))
    (cal / "test_cal.py").write_text(SUITE_TESTS)
    dead = pytester.mkdir("dead")  # a server recipe that exits at once: its server never comes up
    toml = calibration_suite_toml('["${python}", "-c", "raise SystemExit(3)"]', DEAD_STAGE)
    (dead / "suite.toml").write_text(toml.replace('name = "cal"', 'name = "dead"'))
    (dead / "test_dead.py").write_text(SUITE_TESTS)


def _run(pytester, results, run_id: str, *args: str):
    return pytester.runpytest_subprocess(
        *args, "--results-dir", str(results), "--run-id", run_id, "--telemetry-interval", "0",
        "--extra-body", '{"calibration": {"prompt_tokens": 16}}', "-p", "no:cacheprovider", timeout=300)


def test_a_gate_that_cannot_run_and_a_server_that_never_came_up_fail_and_merge_keeps_them(
        pytester, smollm2_model, tmp_path):
    _suites(pytester)
    results = tmp_path / "results"
    tok = ("--tokenizer", str(smollm2_model))

    good = _run(pytester, results, "good", "cal", "--stage", "s", *tok)
    good.assert_outcomes(passed=2)  # the stage's gate (none) and its point

    # -k selects the points only, as a CI job does: the gate runs for them all the same, and cannot
    nolp = _run(pytester, results, "nolp", "cal", "--stage", "g", "-k", "point", *tok)
    nolp.assert_outcomes(failed=2)
    assert nolp.ret == 1
    out = nolp.stdout.str()
    assert "does not return prompt logprobs" in out and "cal-16-8-c1 not run: " + NO_LOGPROBS in out
    assert f"FAILED cal-16-8-c2: {NO_LOGPROBS}" in out
    summary = json.loads((results / "nolp" / "summary.json").read_text())
    assert [f["point"] for f in summary["failures"]] == ["cal-16-8-c1", "cal-16-8-c2"]
    (group,) = summary["failed"]
    assert group["points"] == ["cal-16-8-c1", "cal-16-8-c2"] and group["cause"].startswith(NO_LOGPROBS)
    assert group["group"] == "cal, stage g, ISL 16 / OSL 8"
    report = (results / "nolp" / "report.md").read_text()
    assert "## Failed" in report and "does not return prompt logprobs" in report
    assert "- **cal, stage g, ISL 16 / OSL 8**: " + NO_LOGPROBS in report
    assert "2 test(s): cal-16-8-c1, cal-16-8-c2" in report

    dead = _run(pytester, results, "dead", "dead", *tok)
    assert dead.ret == 1
    dead.assert_outcomes(passed=1, failed=2)  # the stage has no gate (passed); both points failed
    dead_report = (results / "dead" / "report.md").read_text()
    assert "- **dead, ISL 16 / OSL 16**: the server exited during start-up (3)" in dead_report
    assert "2 test(s): dead-16-16-c1, dead-16-16-c2" in dead_report  # the second, not retried: the same group

    # the merge of a failed run with a good one: exit 1, the failed group in its summary, sources and report
    assert merge_main([str(results / "good"), str(results / "nolp"), "--out", str(tmp_path / "m1")]) == 1
    merged = json.loads((tmp_path / "m1" / "summary.json").read_text())
    assert [p["point"] for p in merged["points"]] == ["cal-16-16-c1"]
    assert {f["point"] for f in merged["failures"]} == {"cal-16-8-c1", "cal-16-8-c2"}
    assert [(g["group"], g["run"]) for g in merged["failed"]] == [("cal, stage g, ISL 16 / OSL 8",
                                                                   str(results / "nolp"))]
    assert any(line.startswith("failed cal, stage g, ISL 16 / OSL 8") for line in merged["conclusion"])
    sources = {s["run"]: s for s in json.loads((tmp_path / "m1" / "sources.json").read_text())["runs"]}
    assert set(sources) == {str(results / "good"), str(results / "nolp")}
    assert sources[str(results / "nolp")]["failed"][0]["cause"].startswith(NO_LOGPROBS)
    m1 = (tmp_path / "m1" / "report.md").read_text()
    assert "## cal, stage s, ISL 16 / OSL 16" in m1 and "## Failed" in m1 and "does not return prompt logprobs" in m1

    # a run whose server never came up: its suite stays in the merged report, with the cause
    assert merge_main([str(results / "good"), str(results / "dead"), "--out", str(tmp_path / "m2")]) == 1
    m2 = (tmp_path / "m2" / "report.md").read_text()
    assert "- **dead" in m2 and "exited during start-up" in m2 and "dead-16-16-c1, dead-16-16-c2" in m2
    assert {f["point"] for f in json.loads((tmp_path / "m2" / "summary.json").read_text())["failures"]} == {
        "dead-16-16-c1", "dead-16-16-c2"}
