"""The reference client (``--client reference``): the bounty client's request function (kimbochen/bench_serving
``main``, 499c0b1 and ee86723) on aiohttp, checked line by line against exact streams, a quirky stream, the
initial test request and the calibration server."""
from __future__ import annotations


import pytest

from faulty_server import FaultyServer
from pytest_inferencemax.cli import bench
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.aio import run_async
from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.loadtypes import INITIAL_TEST_FAILED
from pytest_inferencemax.measure.refclient import NO_CHUNK, reference_headers
from pytest_inferencemax.measure.workload import RequestSpec
from calibration import specs

SPEC = RequestSpec(prompt="one two", prompt_len=2, output_len=5, target_prompt_len=2)


def run(base: str, n: int = 4, osl: int = 5, conc: int = 2, warmups: int = 0, **kw):
    client = ClientConfig(base_url=base, model="m", client="reference", **kw)
    return run_async(run_load(client, specs(n, osl), concurrency=conc, num_warmups=warmups))


def test_payload_and_headers_are_the_references():
    client = ClientConfig(base_url="http://h", model="gpt", extra_body={"top_k": 1, "temperature": 0.5})
    body = client.payload(SPEC)  # what both clients send
    assert list(body) == ["model", "prompt", "temperature", "best_of", "max_tokens", "logprobs", "stream",
                          "stream_options", "ignore_eos", "top_k"]
    assert body == {"model": "gpt", "prompt": "one two", "temperature": 0.5, "best_of": 1, "max_tokens": 5,
                    "logprobs": None, "stream": True, "stream_options": {"include_usage": True},
                    "ignore_eos": True, "top_k": 1}  # extra_body merged last, as there
    assert reference_headers(client) == {"Authorization": "Bearer None"}  # sent even without a key, as there
    assert reference_headers(ClientConfig(base_url="http://h", model="m", api_key="k")) == {"Authorization": "Bearer k"}
    assert "s3cret" not in repr(ClientConfig(base_url="http://h", model="m", api_key="s3cret"))  # never printed


def test_the_key_goes_in_the_header_on_the_wire():
    with FaultyServer("ok") as server:
        client = ClientConfig(base_url=server.base_url, model="m", api_key="s3cret", client="reference")
        res = run_async(run_load(client, specs(2, 2), concurrency=1))
        headers = server.headers
    assert res.client == "reference" and res.arrival_clock == "reference"
    assert all(r.success for r in res.results)
    assert [h["Authorization"] for h in headers] == ["Bearer s3cret"] * 2


TOKEN = b'data: {"id": "r-1", "choices": [{"index": 0, "text": "t"}]}\n\n'
USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\n'
DONE = b"data: [DONE]\n\n"


def stream(*pieces: bytes, client: str = "reference"):
    """One request against a server that streams exactly ``pieces``; its result."""
    with FaultyServer("raw", raw=pieces) as server:
        res = run_async(run_load(ClientConfig(base_url=server.base_url, model="m", client=client), specs(1, 3),
                                 concurrency=1))
    (r,) = res.results
    return r


def test_a_clean_stream_counts_the_usage_chunks_tokens():
    r = stream(TOKEN, TOKEN, TOKEN, USAGE, DONE)
    assert r.success and r.events == 3 and r.output_tokens == r.reference_output_tokens == 3
    assert r.server_prompt_tokens == 2 and r.response_id == "r-1" and r.generated_text == "ttt"


@pytest.mark.parametrize("bad, exception", [
    (b": ping\n\n", "json.decoder.JSONDecodeError: Expecting value"),  # a comment line is not skipped on main
    (b'data:{"choices": [{"index": 0, "text": "t"}]}\n\n', "json.decoder.JSONDecodeError"),  # only "data: " is removed
    (b"event: message\n", "json.decoder.JSONDecodeError"),
    (b'data: {"choices": [{"index": 0, "text": "t"\n\n', "json.decoder.JSONDecodeError"),  # broken JSON
    (b"data: 5\n\n", "AttributeError: 'int' object has no attribute 'get'"),  # JSON, but not an object
])
def test_a_line_the_bounty_client_cannot_parse_fails_the_request_with_the_traceback(bad, exception):
    r = stream(TOKEN, bad, TOKEN, USAGE, DONE)
    assert not r.success
    assert r.error.startswith("Traceback (most recent call last):\n")  # "".join(format_exception(...)), as there
    assert exception in r.error.rstrip().splitlines()[-1]


@pytest.mark.parametrize("pieces, tokens", [
    ((TOKEN, TOKEN, DONE), 0),  # no usage chunk: the bounty client's output_tokens keep their default, 0
    ((TOKEN, b'data: {"choices": [{"index": 0, "text": "t"}], "usage": {"completion_tokens": 2}}\n\n', DONE), 0),
    ((TOKEN, b'data: {"choices": [], "usage": {"prompt_tokens": 2}}\n\n', DONE), None),  # re-tokenized then
])
def test_usage_is_read_only_from_a_chunk_without_choices(pieces, tokens):
    r = stream(*pieces)
    assert r.success and r.reference_output_tokens == tokens


def test_what_the_bounty_client_skips_or_ignores():
    crlf = TOKEN.replace(b"\n", b"\r\n")  # stripped away
    one_newline = TOKEN[:-1]  # events not separated by a blank line: read line by line all the same
    error = b'data: {"error": {"message": "transient"}}\n\n'  # no choices, no usage: ignored
    r = stream(crlf, b"\n\n   \n", one_newline, one_newline, error, USAGE, DONE)
    assert r.success and r.error == "" and r.events == 3 and r.reference_output_tokens == 3


def test_no_choices_at_all_fails_with_the_references_words():
    r = stream(USAGE, DONE)
    assert not r.success and r.error == NO_CHUNK
    assert NO_CHUNK == "Never received a valid chunk to calculate TTFT.This response will be marked as failed!"


def test_unknown_client_is_refused():
    with pytest.raises(ValueError, match="unknown client 'fast': choose one of precise, reference"):
        ClientConfig(base_url="http://h", model="m", client="fast")


def test_quirky_stream_fails_at_its_comment_line_as_the_bounty_client_fails():
    with FaultyServer("quirky") as server:
        res = run(server.base_url, n=3)
        peers = list(server.peers)
        headers = server.headers[0]
    assert res.client == "reference" and res.arrival_clock == "reference"
    for r in res.results:  # ": ping" goes to json.loads on main (00f9ee36, a side branch no stage ran, skipped it)
        assert not r.success and "JSONDecodeError" in r.error.splitlines()[-1]
        assert r.events == 1 and r.reference_output_tokens == 0  # it failed after the first token event
    assert len(set(peers)) == len(peers) == 3  # a new session, so a new connection, per request
    assert headers["Authorization"] == "Bearer None"  # no API key given: what the reference sends


def test_precise_client_reuses_connections_where_the_reference_opens_new_ones():
    with FaultyServer("ok") as server:
        client = ClientConfig(base_url=server.base_url, model="m")
        run_async(run_load(client, specs(4, 2), concurrency=1))
        assert len(set(server.peers)) == 1


def test_a_stream_that_goes_silent_is_stopped_by_the_stall_check_not_the_6_h_timeout():
    with FaultyServer("midstream") as server:
        client = ClientConfig(base_url=server.base_url, model="m", client="reference")
        res = run_async(run_load(client, specs(2, 8), concurrency=2, stall_timeout=0.5, tick_interval=0.1))
    assert res.aborted and res.aborted.startswith("stalled: no request made progress") and res.client == "reference"


def test_http_500_fails_with_the_reason_and_warmups_are_discarded():
    with FaultyServer("error500") as server:
        res = run(server.base_url, n=2, warmups=2)
        assert len(server.peers) == 4  # two warmups, then the two timed requests
    assert res.warmups == 2 and res.warmup_failures == 2 and len(res.results) == 2
    assert all(not r.success and r.error == "Internal Server Error" for r in res.results)  # response.reason


# --- the initial test request (499c0b1) ------------------------------------------------------------


@pytest.mark.parametrize("client, error", [("reference", "Internal Server Error"),
                                           ("precise", "HTTP 500 Internal Server Error: boom")])
def test_a_failed_initial_test_request_stops_the_run_before_anything_else(client, error):
    with FaultyServer("error500") as server:
        res = run_async(run_load(ClientConfig(base_url=server.base_url, model="m", client=client), specs(4, 3),
                                 concurrency=2, num_warmups=4, initial_test=True))
        sent = server.stream_requests
    assert sent == 1  # the initial request only: no warmup, no timed request
    assert res.aborted == INITIAL_TEST_FAILED.format(error=error)
    assert res.aborted.startswith("Initial test run failed - Please make sure benchmark arguments are correctly "
                                  "specified. Error: ")
    assert res.results == [] and res.t0 == 0.0 and res.warmups == 0
    assert res.initial_request is not None and not res.initial_request.success and res.initial_request.error == error


@pytest.mark.parametrize("client", ["reference", "precise"])
def test_an_initial_test_request_that_succeeds_is_neither_timed_nor_counted(client):
    with FaultyServer("fail_first") as server:  # only the first streaming request fails
        res = run_async(run_load(ClientConfig(base_url=server.base_url, model="m", client=client), specs(3, 2),
                                 concurrency=1, initial_test=False))  # one at a time: the first is request 0
    assert [r.success for r in res.results] == [False, True, True]  # without it, the first timed one failed
    with FaultyServer("ok") as server:
        res = run_async(run_load(ClientConfig(base_url=server.base_url, model="m", client=client), specs(3, 2),
                                 concurrency=2, num_warmups=2, initial_test=True))
        sent = server.stream_requests
    assert sent == 1 + 2 + 3 and len(res.results) == 3 and all(r.success for r in res.results)
    assert res.initial_request.success and res.initial_request.latency > 0 and res.aborted is None


def test_bench_cli_refuses_an_unknown_client(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--base-url", "http://127.0.0.1:1", "--model", "m", "--tokenizer", "t", "--isl", "1",
                    "--osl", "1", "--conc", "1", "--out", "x.json", "--client", "fast"])
    assert exc.value.code == 2
    assert "'fast' is not a client: choose one of precise, reference" in capsys.readouterr().err


def test_client_option_and_its_ini_twin_are_validated_naming_the_choices(pytester):
    result = pytester.runpytest("--client", "fast")
    assert result.ret == 4
    assert "'fast' is not a client: choose one of precise, reference" in result.stderr.str()
    pytester.makeini("[pytest]\ninferencemax_client = quick\n")
    result = pytester.runpytest()
    assert result.ret == 4
    assert "ini setting inferencemax_client = 'quick': 'quick' is not a client" in result.stderr.str()


def test_client_settings_default_to_precise_and_take_the_ini_twin(pytester):
    pytester.makeconftest(
        "from pytest_inferencemax.plugin.options import Settings\n"
        "def pytest_configure(config):\n"
        "    s = Settings.from_config(config)\n"
        "    print('CLIENT', s.client, bool(s.parity), s.parity_rounds)\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    assert "CLIENT precise False 3" in pytester.runpytest("-s").stdout.str()
    pytester.makeini("[pytest]\ninferencemax_client = reference\ninferencemax_parity_rounds = 4\n")
    assert "CLIENT reference False 4" in pytester.runpytest("-s").stdout.str()
    assert "CLIENT precise True 2" in pytester.runpytest(
        "-s", "--client", "precise", "--parity", "--parity-rounds", "2").stdout.str()
    result = pytester.runpytest("--parity-rounds", "1")
    assert result.ret == 4 and "at least 2" in result.stderr.str()
