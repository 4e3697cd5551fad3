"""Nothing vanishes: failures grouped by what they belong to (a curve, a server's gate and its points, a run that
left nothing) and their cause, kept in summary.json and stated in report.md even when no point finished; cli.merge
carries each run's failed groups into its summary.json, sources.json and report.md, and exits 1 (docs/ci.md)."""
from __future__ import annotations

import json
from pathlib import Path

from pytest_inferencemax.cli.merge import main as merge_main
from pytest_inferencemax.results.merge import failed_in
from pytest_inferencemax.publish.report import render_report
from pytest_inferencemax.results.merge_inputs import Run
from pytest_inferencemax.results.store import RunFolder
from pytest_inferencemax.results.summary import FailedGroup, failed_groups, summary_lines, write_summary
from record_factory import point_record

NO_LOGPROBS = "the accuracy gate could not run: the server at http://h/v1/completions does not return prompt logprobs"
DEAD = "the server exited during start-up (3) after 1 s: command python -c raise SystemExit(3)"


def test_a_gate_and_the_points_it_kept_from_running_are_one_group_named_after_its_suite():
    failures = [("mini-accuracy", NO_LOGPROBS), ("mini-16-4-c1", NO_LOGPROBS), ("mini-16-4-c2", NO_LOGPROBS),
                ("mini-16-4-c4", "no request succeeded: 4 x HTTP 500\nwarmups: ..."),
                ("mini-16-8-c1-fast", "stalled"), ("odd", "")]
    groups = failed_groups(failures, [point_record(1, suite="mini", stage="cpu", isl=16, osl=8)])
    assert groups == [
        FailedGroup("mini, stage cpu", NO_LOGPROBS, ("mini-accuracy", "mini-16-4-c1", "mini-16-4-c2")),
        FailedGroup("mini, stage cpu, ISL 16 / OSL 4", "no request succeeded: 4 x HTTP 500", ("mini-16-4-c4",)),
        FailedGroup("mini, stage cpu, ISL 16 / OSL 8, variant fast", "stalled", ("mini-16-8-c1-fast",)),
        FailedGroup("odd", "no cause recorded", ("odd",))]


def test_points_not_retried_after_their_server_failed_to_start_join_that_failure():
    failures = [("dead-16-16-c1", DEAD), ("dead-16-16-c2", "not retried: this server configuration failed to "
                                                            f"start earlier in the session: {DEAD}")]
    (group,) = failed_groups(failures, stage="s")
    assert group == FailedGroup("dead, stage s, ISL 16 / OSL 16", DEAD, ("dead-16-16-c1", "dead-16-16-c2"))


def test_the_report_states_every_failed_group_even_when_no_point_finished(tmp_path):
    failed = failed_groups([("mini-16-4-c1", f"{NO_LOGPROBS}\nmore"), ("mini-16-4-c2", NO_LOGPROBS)], stage="g")
    text = render_report(tmp_path, [], {}, {}, failed=failed)
    assert "No point finished in this run: every test failed (below)." in text
    assert "- mini, stage g, ISL 16 / OSL 4: **FAILED** (2 test(s); the cause under Failed)" in text
    assert "## Failed" in text and f"- **mini, stage g, ISL 16 / OSL 4**: {NO_LOGPROBS}" in text
    assert "  - 2 test(s): mini-16-4-c1, mini-16-4-c2" in text
    assert "## Failed" not in render_report(tmp_path, [point_record(4)], {}, {})


def test_summary_json_keeps_the_failures_and_their_groups(tmp_path):
    write_summary([], [("mini-16-4-c1", NO_LOGPROBS)], tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["failures"] == [{"point": "mini-16-4-c1", "reason": NO_LOGPROBS}]
    assert data["failed"] == [{"group": "mini, ISL 16 / OSL 4", "cause": NO_LOGPROBS, "points": ["mini-16-4-c1"],
                               "run": None}]


def _failed_run(path: Path, suite: str, cause: str) -> Path:
    """A run folder as pytest leaves it when every point failed: a manifest and summary.json, no point record."""
    RunFolder(path).write_json("manifest.json", {"settings": {"run_id": path.name, "stage": "s1"}})
    write_summary([], [(f"{suite}-1024-1024-c4", cause), (f"{suite}-1024-1024-c8", cause)], path)
    return path


def test_merge_of_a_failed_run_with_a_good_one_exits_1_and_keeps_the_failed_group_everywhere(tmp_path, capsys):
    good = tmp_path / "good"
    RunFolder(good).write_point(point_record(4))
    RunFolder(good).write_json("manifest.json", {"settings": {"run_id": "good"}})
    bad = _failed_run(tmp_path / "nolp", "gptoss", NO_LOGPROBS)
    dead = _failed_run(tmp_path / "dead", "dsr1", DEAD)
    out = tmp_path / "merged"
    assert merge_main([str(good), str(bad), str(dead), "--out", str(out), "-q"]) == 1
    printed = capsys.readouterr().out
    assert f"failed gptoss, stage s1, ISL 1024 / OSL 1024 (run {bad}): {NO_LOGPROBS}" in printed
    assert f"failed dsr1, stage s1, ISL 1024 / OSL 1024 (run {dead}): {DEAD}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [p["point"] for p in summary["points"]] == ["gptoss-1024-1024-c4"]
    assert {f["point"] for f in summary["failures"]} == {"gptoss-1024-1024-c4", "gptoss-1024-1024-c8",
                                                         "dsr1-1024-1024-c4", "dsr1-1024-1024-c8"}
    assert [(g["group"], g["run"], g["points"]) for g in summary["failed"]] == [
        ("gptoss, stage s1, ISL 1024 / OSL 1024", str(bad), ["gptoss-1024-1024-c4", "gptoss-1024-1024-c8"]),
        ("dsr1, stage s1, ISL 1024 / OSL 1024", str(dead), ["dsr1-1024-1024-c4", "dsr1-1024-1024-c8"])]
    sources = {s["run"]: s for s in json.loads((out / "sources.json").read_text())["runs"]}
    assert set(sources) == {str(good), str(bad), str(dead)}
    assert sources[str(bad)]["points"] == [] and sources[str(bad)]["failed"][0]["cause"] == NO_LOGPROBS
    assert sources[str(dead)]["failed"][0]["cause"] == DEAD and sources[str(good)]["failed"] == []
    report = (out / "report.md").read_text()
    assert "## gptoss, stage s1, ISL 1024 / OSL 1024" in report and "## Failed" in report
    assert f"- **dsr1, stage s1, ISL 1024 / OSL 1024** (run `{dead}`): {DEAD}" in report
    assert f"(run `{bad}`): {NO_LOGPROBS}" in report


def test_a_run_that_left_nothing_is_a_failed_group_of_its_own(tmp_path):
    folder = RunFolder(tmp_path / "killed")
    folder.write_json("manifest.json", {"settings": {"run_id": "killed"}})
    (group,) = failed_in(Run(folder, [], []))
    assert group.group == "run killed" and group.run == str(folder.path) and group.points == ()
    assert "the session did not finish (no summary.json" in group.cause
    assert any(line.startswith("FAILED run killed (run ") for line in summary_lines([], [], tmp_path, failed=[group]))


def test_a_failed_gate_s_cause_names_each_metric_beyond_its_limit():
    from pytest_inferencemax.gate.accuracy import GateResult, judge
    from pytest_inferencemax.plan.rules import GateSpec
    from pytest_inferencemax.plugin.gates import gate_failed

    spec = GateSpec(task="wikitext", rule="max_ratio", threshold_multiplier=1.0,
                    baselines={"bits_per_byte": 0.5, "word_perplexity": 10.0})
    values = {"bits_per_byte": 0.75, "word_perplexity": 9.0}
    gate = GateResult(spec, "wikitext_local", values, judge(spec, values), 1.0, "0.4.13", {}, {})
    assert gate_failed(gate) == ("accuracy gate wikitext (max_ratio): FAILED in 1.0 s, lm-eval 0.4.13, task "
                                 "wikitext_local (bits_per_byte 0.7500, limit <= 0.5000)")


def test_merge_finds_a_run_killed_before_its_end_and_exits_1(tmp_path, capsys):
    good = tmp_path / "good"
    RunFolder(good).write_point(point_record(4))
    RunFolder(good).write_json("manifest.json", {"settings": {"run_id": "good"}})
    RunFolder(tmp_path / "killed").write_json("manifest.json", {"settings": {"run_id": "killed"}})  # nothing else
    out = tmp_path / "merged"
    assert merge_main([str(good), str(tmp_path / "killed"), "--out", str(out), "-q"]) == 1
    sources = {Path(s["run"]).name for s in json.loads((out / "sources.json").read_text())["runs"]}
    assert sources == {"good", "killed"}
    assert "- **run killed**" in (out / "report.md").read_text()
