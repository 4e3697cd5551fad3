"""The bounty client's initial test request (kimbochen/bench_serving@499c0b1, stage 1) through a whole pytest run:
sent once before anything else, untimed and not counted; when it fails, the point fails with the client's own
reason before any timed request, with either client, in one process or several."""
from __future__ import annotations

import json

import pytest

from calibration import calibration_server, truth
from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.measure.loadtypes import INITIAL_TEST_FAILED

CLIENT_499C0B1 = """
[stages.cpu.client]
source = "kimbochen/bench_serving@499c0b1"
initial_test_request = true
prompt_builder = "499c0b1"
"""  # with the mini suite's stage-level warmups_per_conc = 1: the initial request, then warmups, then the run


def mini(pytester) -> None:
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 8, conc = [2], prompts_per_conc = 2 }")
                                  + CLIENT_499C0B1)
    (d / "test_mini.py").write_text(SUITE_TEST)


def run_mini(pytester, base: str, model: str, tmp_path, *args: str):
    return pytester.runpytest_subprocess(
        "mini", "--server-url", base, "--served-model-name", model, "--skip-accuracy",
        "--tokenizer", str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--models-dir", str(MODELS_DIR),
        "--results-dir", str(tmp_path), "--run-id", "r", "--telemetry-interval", "0", *args, timeout=180)


@pytest.mark.parametrize("client, procs, error", [
    ("reference", "1", "Internal Server Error"),  # the bounty client's error: response.reason
    ("precise", "1", "HTTP 500 Internal Server Error: boom"),
    ("precise", "2", "HTTP 500 Internal Server Error: boom"),  # process 0 sends it; the other waits
])
def test_a_failed_initial_test_request_fails_the_point_before_any_timed_request(pytester, tmp_path, smollm2_model,
                                                                                 client, procs, error):
    mini(pytester)
    with FaultyServer("error500") as server:  # fault injection: every streaming request gets HTTP 500
        result = run_mini(pytester, server.base_url, "faulty", tmp_path, "--client", client, "--client-procs", procs)
        streamed = server.stream_requests
    assert streamed == 1  # the initial test request only: no warmup, no timed request
    result.assert_outcomes(failed=1)
    reason = INITIAL_TEST_FAILED.format(error=error)
    out = result.stdout.str()
    assert f"mini-16-8-c2 stopped: {reason}" in out
    assert "1 initial test request, 2 warmups, then 4 requests at concurrency 2" in out
    rec = json.loads((tmp_path / "r" / "mini-16-8-c2.json").read_text())
    assert rec["inferencemax"]["aborted"] == reason and rec["completed"] == 0
    assert rec["inferencemax"]["initial_request"] == {"sent": True, "success": False, "error": error,
                                                      "latency_s": None}
    assert rec["inferencemax"]["client_version"]["source"] == "kimbochen/bench_serving@499c0b1"
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["failures"][0]["point"] == "mini-16-8-c2"
    assert "Initial test run failed - Please make sure" in summary["failures"][0]["reason"]


@pytest.mark.parametrize("client", ["reference", "precise"])
def test_an_initial_test_request_that_succeeds_comes_first_and_is_not_counted(pytester, tmp_path, smollm2_model,
                                                                               client):
    mini(pytester)
    with calibration_server("--ttft-ms", "2", "--itl-ms", "1") as base:
        result = run_mini(pytester, base, "calibration", tmp_path, "--client", client,
                          "--extra-body", '{"calibration": {"prompt_tokens": 16}}')
        served = {rid: t for rid, t in truth(base).items() if sum(t["tokens"]) == 8}  # not the readiness check
    result.assert_outcomes(passed=1)
    assert len(served) == 1 + 2 + 4  # the initial request, 1 x CONC warmups, the timed run's 4
    first = min(served.values(), key=lambda t: t["received"])  # it came first, alone
    others = [t["received"] for t in served.values() if t is not first]
    assert first["sent"][-1] <= min(others)  # its last token went out before any other request arrived
    rec = json.loads((tmp_path / "r" / "mini-16-8-c2.json").read_text())
    assert rec["completed"] == rec["num_prompts"] == 4 and rec["total_output_tokens"] == 32  # not counted
    assert rec["inferencemax"]["initial_request"]["success"] is True and "aborted" not in rec["inferencemax"]
    assert rec["inferencemax"]["client"]["event_loop"] == ("asyncio" if client == "reference" else "uvloop")
