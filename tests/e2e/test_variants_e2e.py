"""Recipe variants end to end, on the calibration server launched as a suite's recipe: three variants, each
from its own rendered recipe (the suite's as it is, a flag set where the recipe lacks it, a ``vars`` value), each
on its own server, ranked by their known speeds and overlaid; and a slow variant pruned once it cannot qualify,
a measured variant reused by the next run."""
from __future__ import annotations

import json

from e2e_support import CAL_BASELINE, CAL_SUITE, CAL_VARIANTS, REPO, calibration_suite_toml, stage_toml

SERVER = REPO / "benchmarks" / "calibration_server.py"
# no --ttft-ms in the recipe: the server's own 50 ms, until a variant sets the flag
THREE_SUITE = calibration_suite_toml(
    '["${python}", "%s", "--port", "${port}", "--model", "calibration", "--itl-ms", "${itl_ms}"]' % SERVER,
    'vars = { itl_ms = "2" }\n' + stage_toml("{ isl = 16, osl = 8, conc = [2], prompts_per_conc = 2 }"))
# known truth, one request (OSL 8) = TTFT + 7 x ITL: ttft1 15 ms, base 64 ms, itl40 330 ms; so tput/GPU ranks
# ttft1, base, itl40, each at least 4 times the next: far beyond a loaded machine's noise
THREE = '''
[[variant]]
name = "base"

[[variant]]
name = "ttft1"
args_set = { "--ttft-ms" = "1" }

[[variant]]
name = "itl40"
vars = { itl_ms = "40" }
'''
RANKED = ["ttft1", "base", "itl40"]


def test_three_variants_run_each_on_its_own_server_and_are_ranked(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(THREE_SUITE)
    (d / "test_cal.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                   "# noqa: F401\n")
    (pytester.path / "three.toml").write_text(THREE)
    run = pytester.runpytest_subprocess(
        "cal", "--variants", str(pytester.path / "three.toml"), "-k", "point", "--tokenizer", str(smollm2_model),
        "--results-dir", str(tmp_path), "--run-id", "v", "--telemetry-interval", "0",
        "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    run.assert_outcomes(passed=3, deselected=3)
    out = run.stdout.str()
    run_dir = tmp_path / "v"
    records = {v: json.loads((run_dir / f"cal-16-8-c2-{v}.json").read_text()) for v in RANKED}
    assert {v: r["inferencemax"]["variant"] for v, r in records.items()} == {v: v for v in records}
    assert records["ttft1"]["inferencemax"]["variant_changes"] == {"args_set": {"--ttft-ms": "1"}}
    assert records["itl40"]["inferencemax"]["variant_changes"] == {"vars": {"itl_ms": "40"}}
    assert records["base"]["inferencemax"]["variant_changes"] == {}  # the suite's recipe as it is
    # each variant's own server, launched from its own rendered recipe
    servers = json.loads((run_dir / "manifest.json").read_text())["servers"]
    assert len(servers) == 3 and len({s["recipe_key"] for s in servers}) == 3
    argv = {r["inferencemax"]["variant"]: r["inferencemax"]["server"]["argv"] for r in records.values()}
    assert argv["ttft1"][argv["ttft1"].index("--ttft-ms") + 1] == "1" and "--ttft-ms" not in argv["base"]
    assert [a[a.index("--itl-ms") + 1] for a in (argv["base"], argv["ttft1"], argv["itl40"])] == ["2", "2", "40"]
    # the servers ran what their recipes say: the known TTFTs (ttft1 1 ms, the others the server's 50 ms)
    ttft = {v: r["median_ttft_ms"] for v, r in records.items()}
    assert ttft["ttft1"] < 50 <= min(ttft["base"], ttft["itl40"]), ttft
    # the ranking: the stage has no rule, so tput/GPU's geometric mean decides, in the known order
    ranking = json.loads((run_dir / "variants.json").read_text())
    tputs = {v: r["tput_per_gpu"] for v, r in records.items()}
    assert sorted(tputs, key=tputs.get, reverse=True) == RANKED, tputs
    assert ranking["best"] == "ttft1"
    assert [o["variant"] for o in ranking["overall"]] == RANKED
    assert "**Best overall: ttft1**" in (run_dir / "variants.md").read_text()
    assert (run_dir / "plots" / "cal-s-16-8-variants-tput-vs-e2e.png").stat().st_size > 10_000
    assert "variants: best overall: ttft1" in out
    # before anything starts, the run says what it is about to do
    assert "variants: 3 variant(s) from " in out and "3 points on 3 server(s), one variant after another" in out


def test_prune_stops_a_variant_that_cannot_qualify_and_the_next_run_reuses_what_was_measured(
        pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(CAL_SUITE)
    (d / "variants.toml").write_text(CAL_VARIANTS)  # beside the suite: found without --variants
    (d / "test_cal.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                   "# noqa: F401\n")
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "calb.toml").write_text(CAL_BASELINE)
    common = ("--tokenizer", str(smollm2_model), "--results-dir", str(tmp_path), "--telemetry-interval", "0",
              "--extra-body", '{"calibration": {"prompt_tokens": 16}}')
    run = pytester.runpytest_subprocess("cal", *common, "--run-id", "pruned", "--prune", timeout=300)
    run.assert_outcomes(passed=7, skipped=1)  # 2 gates (none in the stage) + 3 fast + 2 slow; slow c4 pruned
    out = run.stdout.str()
    assert "PRUNED cal-16-16-c4-slow: variant slow cannot qualify on ISL 16 / OSL 16: 2 of 3 points lost beyond " \
           "the noise" in out
    summary = json.loads((tmp_path / "pruned" / "summary.json").read_text())
    assert [p["point"] for p in summary["pruned"]] == ["cal-16-16-c4-slow"]
    assert not (tmp_path / "pruned" / "cal-16-16-c4-slow.json").exists()
    ranking = json.loads((tmp_path / "pruned" / "variants.json").read_text())
    assert ranking["best"] == "fast" and [o["variant"] for o in ranking["overall"]] == ["fast", "slow"]
    rows = {v["variant"]: v for v in ranking["curves"][0]["variants"]}
    assert rows["fast"]["share"] == 1.0 and rows["slow"]["share"] == 0.0 and rows["slow"]["points"] == 2
    servers = json.loads((tmp_path / "pruned" / "manifest.json").read_text())["servers"]
    assert [s["argv"][s["argv"].index("--itl-ms") + 1] for s in servers] == ["2", "40"]

    # the next run: the fast variant's points were measured with the same recipe hash and workload
    again = pytester.runpytest_subprocess("cal", *common, "--run-id", "again", "-k", "fast", timeout=300)
    again.assert_outcomes(passed=3, skipped=1)  # the gate of a server whose points are all reused is skipped
    assert "REUSED cal-16-16-c1-fast: from " in again.stdout.str()
    rec = json.loads((tmp_path / "again" / "cal-16-16-c1-fast.json").read_text())
    first = json.loads((tmp_path / "pruned" / "cal-16-16-c1-fast.json").read_text())
    assert rec["inferencemax"]["reused_from"] == str(tmp_path / "pruned" / "cal-16-16-c1-fast.json")
    assert rec["tput_per_gpu"] == first["tput_per_gpu"]
    assert json.loads((tmp_path / "again" / "manifest.json").read_text()).get("servers", []) == []  # none launched
    rerun = pytester.runpytest_subprocess("cal", *common, "--run-id", "rerun", "-k", "fast and c1", "--rerun",
                                          timeout=300)
    rerun.assert_outcomes(passed=1)
    assert "reused_from" not in json.loads((tmp_path / "rerun" / "cal-16-16-c1-fast.json").read_text())["inferencemax"]
