"""Merging runs: two separate pytest sessions of one suite, merged, against one session of both;
refusals; the JUnit XML's per-point figures. And each measurement counted once: a --repeat run beside its copy,
merged into a folder inside the merged tree, twice. On the calibration server, launched as the suite's recipe
(a server of its own for each run, as separate sessions or nodes have)."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from e2e_support import (CONCLUSION_POINTS, PROMPT_TOKENS_16, REPO, SUITE_TEST, calibration_suite_toml,
                         conclusion_suite, stage_toml)
from pytest_inferencemax.cli.merge import main as merge_main

POINTS = CONCLUSION_POINTS  # cal-16-4-c1, cal-16-4-c2: one curve, judged against a baseline
UNUSED_LEADERBOARD = "http://127.0.0.1:9/never-submitted"


def _run(pytester, tokenizer: Path, results: Path, run_id: str, *extra: str):
    run = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(tokenizer), "--extra-body", PROMPT_TOKENS_16, "--skip-accuracy",
        "--results-dir", str(results), "--run-id", run_id, *extra, timeout=300)
    assert run.ret == 0, run.stdout.str()[-3000:]
    return results / run_id


def _without_paths(summary: dict) -> dict:
    out = dict(summary)
    out["conclusion"] = [line for line in summary["conclusion"] if not line.startswith("report: ")]
    return out


def test_two_runs_merged_give_the_summary_of_one_run_of_both(pytester, smollm2_model, tmp_path, capsys):
    conclusion_suite(pytester.path, UNUSED_LEADERBOARD)
    results = tmp_path / "results"
    a = _run(pytester, smollm2_model, results, "a", "-k", "c1")
    b = _run(pytester, smollm2_model, results, "b", "-k", "c2")
    both = _run(pytester, smollm2_model, results, "both", "--junitxml", str(tmp_path / "junit.xml"))
    baselines = pytester.path / "baselines"

    # 1. two separate sessions, merged: one curve, one verdict, every point's figures as recorded
    assert merge_main([str(a), str(b), "--out", str(tmp_path / "ab"), "--baselines", str(baselines)]) == 0
    merged = json.loads((tmp_path / "ab" / "summary.json").read_text())
    one = json.loads((both / "summary.json").read_text())
    assert [p["point"] for p in merged["points"]] == [p["point"] for p in one["points"]] == list(POINTS)
    verdict = [line for line in merged["conclusion"] if line.startswith("verdict ")]
    assert verdict == [line for line in one["conclusion"] if line.startswith("verdict ")] and len(verdict) == 1
    for point, src in zip(POINTS, (a, b)):
        assert json.loads((tmp_path / "ab" / f"{point}.json").read_text()) == json.loads((src / f"{point}.json").read_text())
    assert (tmp_path / "ab" / "report.md").is_file() and len(list((tmp_path / "ab" / "plots").glob("*-tput-vs-*.png"))) == 2
    assert len(list((tmp_path / "ab" / "plots").glob("*-telemetry.png"))) == 2  # the series came along
    sources = json.loads((tmp_path / "ab" / "sources.json").read_text())["runs"]
    assert [s["points"] for s in sources] == [["cal-16-4-c1"], ["cal-16-4-c2"]]
    assert len(list((tmp_path / "ab").glob("manifest-*.json"))) == 2
    out = capsys.readouterr().out
    assert verdict[0] in out and "results: " in out

    # 2. the one session's own points, split over two folders (as two nodes would have them) and
    #    merged: exactly the summary that session wrote (only the report's path differs)
    for point, name in zip(POINTS, ("x", "y")):
        node = tmp_path / "nodes" / name / "results" / "run"
        node.mkdir(parents=True)
        shutil.copy(both / f"{point}.json", node)
        shutil.copy(both / "manifest.json", node)
    assert merge_main([str(tmp_path / "nodes"), "--out", str(tmp_path / "xy"), "--baselines", str(baselines),
                       "-q"]) == 0
    assert _without_paths(json.loads((tmp_path / "xy" / "summary.json").read_text())) == _without_paths(one)

    # 3. the JUnit XML carries each point's figures
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    for point in POINTS:
        case = next(c for name, c in cases.items() if point in name)
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        rec = json.loads((both / f"{point}.json").read_text())
        assert float(props["tput_per_gpu"]) == pytest.approx(rec["tput_per_gpu"])
        assert float(props["median_e2el_ms"]) == pytest.approx(rec["median_e2el_ms"])
        assert props["accuracy"] == "SKIPPED"  # and the client's self-check as recorded (a busy host may raise it)
        assert props["client_bound"] == str(rec["inferencemax"]["client"]["client_bound"])
        assert "tput_per_gpu_ratio_vs_b200_1126" in props

    # 4. the same point in two runs of one configuration: their rounds pooled into the point's record
    assert merge_main([str(a), str(both), "--out", str(tmp_path / "pooled"), "-q"]) == 0
    pooled = json.loads((tmp_path / "pooled" / "cal-16-4-c1.json").read_text())
    rounds = pooled["inferencemax"]["rounds"]
    values = [json.loads((src / "cal-16-4-c1.json").read_text())["tput_per_gpu"] for src in (a, both)]
    assert rounds["n"] == 2 and rounds["figures"]["tput_per_gpu"]["values"] == values
    assert rounds["sources"] == [str(a), str(both)]
    assert rounds["files"] == ["rounds/cal-16-4-c1.r1.json", "rounds/cal-16-4-c1.r2.json"]
    assert all((tmp_path / "pooled" / f).is_file() for f in rounds["files"])
    assert pooled["tput_per_gpu"] == min(values)  # the lower middle of two rounds
    assert json.loads((tmp_path / "pooled" / "cal-16-4-c2.json").read_text()) == json.loads(
        (both / "cal-16-4-c2.json").read_text())  # one run's point stays as it was

    # 5. refusals, each naming the problem: the same point measured otherwise, mixed rules, mixed baselines,
    #    nothing
    other = tmp_path / "other-seed"
    other.mkdir()
    rec = json.loads((a / "cal-16-4-c1.json").read_text())
    rec["benchmark_args"]["seed"] = 7
    (other / "cal-16-4-c1.json").write_text(json.dumps(rec))
    assert merge_main([str(a), str(other), "--out", str(tmp_path / "dup")]) == 2
    assert "measured different things (seed 0 vs 7)" in capsys.readouterr().err
    for field, value, words in (("verdict_rule", {"rule": "none", "reason": "other"}, "different verdict rules"),
                                ("baseline", "another-ref", "different baselines")):
        odd = tmp_path / f"odd-{field}"
        odd.mkdir()
        rec = json.loads((b / "cal-16-4-c2.json").read_text())
        rec["inferencemax"][field] = value
        (odd / "cal-16-4-c2.json").write_text(json.dumps(rec))
        assert merge_main([str(a), str(odd), "--out", str(tmp_path / f"out-{field}")]) == 2
        assert words in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert merge_main([str(empty), "--out", str(tmp_path / "none")]) == 2
    assert "no point records under" in capsys.readouterr().err
    assert merge_main([str(a), "--out", str(a)]) == 2
    assert "is one of the runs being merged" in capsys.readouterr().err


CAL_ARGV = ('["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "5", "--itl-ms", "2"]'
            % (REPO / "benchmarks" / "calibration_server.py"))
CAL_STAGE = stage_toml("{ isl = 16, osl = 8, conc = [1], prompts_per_conc = 2 }", warmups=0)


@pytest.mark.e2e
def test_a_run_its_copy_and_an_earlier_merge_inside_the_tree_count_each_round_once(pytester, smollm2_model,
                                                                                  tmp_path, capsys):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(CAL_ARGV, CAL_STAGE))
    (d / "test_cal.py").write_text(SUITE_TEST)
    results = tmp_path / "results"
    run = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(smollm2_model), "--results-dir", str(results), "--run-id", "r", "--repeat", "2",
        "--skip-accuracy", "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    assert run.ret == 0, run.stdout.str()[-3000:]
    point = "cal-16-8-c1"
    measured = json.loads((results / "r" / f"{point}.json").read_text())["inferencemax"]["rounds"]
    assert measured["n"] == 2
    shutil.copytree(results / "r", results / "r-copy")  # a backup beside the run
    for again in (False, True):  # as the README has it: --out inside results/, merged again after a while
        assert merge_main([str(results), "--out", str(results / "merged")]) == 0
        out = "".join(capsys.readouterr())
        rounds = json.loads((results / "merged" / f"{point}.json").read_text())["inferencemax"]["rounds"]
        assert rounds["n"] == 2 and rounds["figures"] == measured["figures"]  # not 4 rounds, nor 8, the second time
        assert f"merge: skipped {results / 'r-copy'} (run id r): a copy of {results / 'r'}" in out
        assert (f"merge: skipped {results / 'merged'}: the output of an earlier merge" in out) == again
