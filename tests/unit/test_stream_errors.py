"""Malformed stream events: skipped by both clients as the reference skips them, but counted per
point, warned about, and a failure with --fail-on-stream-errors (a server that sends broken events
must not pass unnoticed while its ITL doubles)."""
from __future__ import annotations

import json

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.measure.loadgen import ClientConfig, run_async, run_load
from pytest_inferencemax.measure.workload import RequestSpec
from pytest_inferencemax.results.build import stream_check

SPECS = [RequestSpec(prompt="one two three four", prompt_len=4, output_len=5, target_prompt_len=4)] * 3


@pytest.mark.parametrize("client", ["precise", "reference"])
def test_each_client_counts_the_events_it_skips(client):
    with FaultyServer("malformed") as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty", client=client), SPECS,
                                  concurrency=3, num_warmups=0))
    assert all(r.success and r.events == 5 for r in load.results)  # the figures leave the broken event out
    assert [r.malformed_events for r in load.results] == [1, 1, 1]
    check = stream_check(load.results)
    assert (check.malformed_events, check.requests) == (3, 3)
    assert check.example.startswith('{"choices": [{"index": 0, "text": "t"')
    assert "3 malformed stream event(s) in 3 request(s) were skipped" in check.warning


def test_a_clean_stream_counts_none():
    with FaultyServer("ok") as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty"), SPECS, concurrency=3,
                                  num_warmups=0))
    check = stream_check(load.results)
    assert (check.malformed_events, check.requests, check.example, check.warning) == (0, 0, None, None)


@pytest.mark.parametrize("fail", [False, True], ids=["warned", "failed"])
def test_the_point_records_them_and_fails_only_when_asked(pytester, tmp_path, fail):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("malformed") as server:
        result = pytester.runpytest_inprocess(
            "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
            "--models-dir", str(MODELS_DIR), "--tokenizer", str(MODELS_DIR / "SmolLM2-135M-Instruct"),
            "--results-dir", str(tmp_path), "--run-id", "r", "-p", "no:cacheprovider",
            *(["--fail-on-stream-errors"] if fail else []))
    rec = json.loads((tmp_path / "r" / "mini-16-4-c2.json").read_text())
    assert rec["inferencemax"]["stream"]["malformed_events"] == 2
    out = result.stdout.str()
    assert "WARNING: stream: 2 malformed stream event(s) in 2 request(s) were skipped" in out
    result.assert_outcomes(failed=1 if fail else 0, passed=0 if fail else 1)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert bool(summary["failures"]) is fail
