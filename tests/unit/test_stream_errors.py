"""Stream lines the bounty client cannot read fail their request in both clients, as in the bounty client
(``main``); error events are ignored, as there; both are counted per point, warned about, and fail the point
with --fail-on-stream-errors (a server that sends broken events must not pass unnoticed)."""
from __future__ import annotations

import json

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.aio import run_async
from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.workload import RequestSpec
from pytest_inferencemax.measure.checks import stream_check

SPECS = [RequestSpec(prompt="one two three four", prompt_len=4, output_len=5, target_prompt_len=4)] * 3


@pytest.mark.parametrize("client", ["precise", "reference"])
def test_each_client_fails_the_requests_the_bounty_client_fails_and_counts_the_lines(client):
    with FaultyServer("malformed") as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty", client=client), SPECS,
                                  concurrency=3, num_warmups=0))
    assert all(not r.success for r in load.results)  # the bounty client's json.loads fails on the broken event
    if client == "reference":
        assert all("JSONDecodeError" in r.error.splitlines()[-1] for r in load.results)
    else:
        assert all(r.error.startswith("stream event the bounty client cannot read") for r in load.results)
    assert [r.malformed_events for r in load.results] == [1, 1, 1]
    check = stream_check(load.results)
    assert (check.malformed_events, check.requests, check.error_events) == (3, 3, 0)
    assert check.example.startswith('{"choices": [{"index": 0, "text": "t"')
    assert "3 malformed stream line(s) in 3 request(s)" in check.warning
    assert "the bounty client fails such a request" in check.warning


@pytest.mark.parametrize("client", ["precise", "reference"])
def test_error_events_are_ignored_as_the_bounty_client_ignores_them(client):
    token = b'data: {"choices": [{"index": 0, "text": "t"}]}\n\n'
    error = b'data: {"error": {"message": "transient"}}\n\n'
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}\n\n'
    with FaultyServer("raw", raw=(token, error, token, usage, b"data: [DONE]\n\n")) as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty", client=client), SPECS[:1],
                                  concurrency=1))
    (r,) = load.results
    assert r.success and r.events == 2 and r.reference_output_tokens == 2 and r.error_events == 1
    check = stream_check(load.results)
    assert (check.malformed_events, check.error_events) == (0, 1)
    assert "1 error event(s) in the streams: the bounty client ignores them" in check.warning


@pytest.mark.parametrize("line", [b": ping\n\n", b"event: message\n", b'data:{"choices": []}\n\n', b"data:\n\n"])
def test_the_precise_client_fails_where_the_bounty_client_cannot_read_a_line(line):
    token = b'data: {"choices": [{"index": 0, "text": "t"}]}\n\n'
    with FaultyServer("raw", raw=(token, line, token, b"data: [DONE]\n\n")) as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty"), SPECS[:1], concurrency=1))
    (r,) = load.results
    assert not r.success and r.malformed_events == 1 and r.error.startswith("stream line the bounty client cannot read")


def test_a_clean_stream_counts_none():
    with FaultyServer("ok") as server:
        load = run_async(run_load(ClientConfig(base_url=server.base_url, model="faulty"), SPECS, concurrency=3,
                                  num_warmups=0))
    check = stream_check(load.results)
    assert (check.malformed_events, check.requests, check.example, check.warning) == (0, 0, None, None)


def test_the_point_records_them_and_fails(pytester, tmp_path):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("malformed") as server:
        result = pytester.runpytest_inprocess(
            "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
            "--models-dir", str(MODELS_DIR), "--tokenizer", str(MODELS_DIR / "SmolLM2-135M-Instruct"),
            "--results-dir", str(tmp_path), "--run-id", "r", "-p", "no:cacheprovider")
    rec = json.loads((tmp_path / "r" / "mini-16-4-c2.json").read_text())
    assert rec["inferencemax"]["stream"]["malformed_events"] == 2 and rec["completed"] == 0
    out = result.stdout.str()
    assert "WARNING: stream: 2 malformed stream line(s) in 2 request(s)" in out
    result.assert_outcomes(failed=1)  # its requests failed, as the bounty client's would have
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["failures"]
