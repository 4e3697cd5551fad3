"""Recipe variants end to end: the embedded suite with three variants on real vLLM servers (each from its
own rendered recipe, ranked, overlaid), and the calibration server launched as a recipe, where a slow
variant is pruned once it cannot qualify and a measured variant is reused by the next run."""
from __future__ import annotations

import json
import shutil

import pytest

from e2e_support import REPO, baseline_toml, calibration_suite_toml

THREE = '''
[[variant]]
name = "base"

[[variant]]
name = "mns1"
args_set = { "--max-num-seqs" = "1" }

[[variant]]
name = "mbt256"
args_set = { "--max-num-batched-tokens" = "256" }
'''


@pytest.mark.e2e
def test_three_variants_of_the_embedded_suite_run_end_to_end_and_are_ranked(pytester, smollm2_model, tmp_path):
    shutil.copytree(REPO / "suites" / "smollm2-cpu", pytester.path / "smollm2-cpu", ignore=shutil.ignore_patterns("variants"))
    (pytester.path / "three.toml").write_text(THREE)
    run = pytester.runpytest_subprocess(
        "smollm2-cpu", "--variants", str(pytester.path / "three.toml"), "-k", "c2 and point", "--skip-accuracy",
        "--num-prompts", "4", "--models-dir", str(smollm2_model.parent), "--results-dir", str(tmp_path),
        "--run-id", "v", "--telemetry-interval", "0", timeout=900)
    run.assert_outcomes(passed=3)
    out = run.stdout.str()
    run_dir = tmp_path / "v"
    records = {v: json.loads((run_dir / f"smollm2-128-64-c2-{v}.json").read_text()) for v in ("base", "mns1", "mbt256")}
    assert {v: r["inferencemax"]["variant"] for v, r in records.items()} == {v: v for v in records}
    assert records["mns1"]["inferencemax"]["variant_changes"] == {"args_set": {"--max-num-seqs": "1"}}
    # each variant's own server, launched from its own rendered recipe
    servers = json.loads((run_dir / "manifest.json").read_text())["servers"]
    assert len(servers) == 3 and len({s["recipe_key"] for s in servers}) == 3
    argv = {r["inferencemax"]["variant"]: r["inferencemax"]["server"]["argv"] for r in records.values()}
    assert argv["mns1"][argv["mns1"].index("--max-num-seqs") + 1] == "1" and "--max-num-seqs" not in argv["base"]
    assert argv["mbt256"][argv["mbt256"].index("--max-num-batched-tokens") + 1] == "256"
    # the ranking: the stage has no rule, so tput/GPU's geometric mean decides
    ranking = json.loads((run_dir / "variants.json").read_text())
    tputs = {v: r["tput_per_gpu"] for v, r in records.items()}
    assert ranking["best"] == max(tputs, key=tputs.get)
    assert [o["variant"] for o in ranking["overall"]] == sorted(tputs, key=tputs.get, reverse=True)
    assert f"**Best overall: {ranking['best']}**" in (run_dir / "variants.md").read_text()
    assert (run_dir / "plots" / "smollm2-cpu-128-64-variants-tput-vs-e2e.png").stat().st_size > 10_000
    assert f"variants: best overall: {ranking['best']}" in out
    # before anything starts, the run says what it is about to do
    assert "variants: 3 variant(s) from " in out and "3 points on 3 server(s), one variant after another" in out


CAL_ARGV = ('["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "5", "--itl-ms", "2"]'
            % (REPO / "benchmarks" / "calibration_server.py"))
CAL_SUITE = calibration_suite_toml(CAL_ARGV, """
[stages.s]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
baseline = "calb"
workloads = [{ isl = 16, osl = 16, conc = [1, 2, 4], prompts_per_conc = 2 }]

[stages.s.verdict]
rule = "beat_baseline_share"
min_share = 0.5
""")

CAL_VARIANTS = '''
[[variant]]
name = "fast"

[[variant]]
name = "slow"
args_set = { "--itl-ms" = "40" }
'''

# 200 tok/s/GPU per unit of CONC: the fast server (ITL 2 ms) gives several times that, the slow one (40 ms) a
# quarter of it
CAL_BASELINE = baseline_toml("cal", 16, 16, {c: 200.0 * c for c in (1, 2, 4)}, e2e_ms=1000.0, intvty=10.0)


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
