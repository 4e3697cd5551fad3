"""The reference-parity client (``--client reference``): the bounty client's semantics on aiohttp, checked
against the calibration server's known schedule, a deliberately quirky stream and a real vLLM server."""
from __future__ import annotations


import pytest

from faulty_server import FaultyServer
from pytest_inferencemax.cli import bench
from pytest_inferencemax.measure.loadgen import ClientConfig, run_async, run_load
from pytest_inferencemax.measure.refclient import reference_headers, reference_payload, sse_data
from pytest_inferencemax.measure.workload import RequestSpec
from calibration import specs

SPEC = RequestSpec(prompt="one two", prompt_len=2, output_len=5, target_prompt_len=2)


def run(base: str, n: int = 4, osl: int = 5, conc: int = 2, warmups: int = 0, **kw):
    client = ClientConfig(base_url=base, model="m", client="reference", **kw)
    return run_async(run_load(client, specs(n, osl), concurrency=conc, num_warmups=warmups))


def test_payload_and_headers_are_the_references():
    client = ClientConfig(base_url="http://h", model="gpt", extra_body={"top_k": 1, "temperature": 0.5})
    body = reference_payload(client, SPEC)
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


@pytest.mark.parametrize("line, data", [
    ('data: {"a": 1}', '{"a": 1}'), ('data:{"a": 1}', '{"a": 1}'), ('  {"a": 1}  ', '{"a": 1}'),
    ("data: [DONE]", None), (": ping", None), ("", None), ("data: ", None), ("   ", None)])
def test_sse_lines_are_read_as_the_reference_reads_them(line, data):
    assert sse_data(line) == data


def test_unknown_client_is_refused():
    with pytest.raises(ValueError, match="unknown client 'fast': choose one of precise, reference"):
        ClientConfig(base_url="http://h", model="m", client="fast")


def test_quirky_stream_usage_only_from_the_event_without_choices_errors_and_junk_ignored():
    with FaultyServer("quirky") as server:
        res = run(server.base_url, n=3)
        peers = list(server.peers)
        headers = server.headers[0]
    assert res.client == "reference" and res.arrival_clock == "reference"
    for r in res.results:
        assert r.success and r.error == "" and r.events == 5  # the error event and the junk were skipped
        assert r.output_tokens == 5  # not the 999 that rode on the token events
        assert len(r.itl) == 4 and r.latency >= r.ttft > 0
        assert r.generated_text == "ttttt" and r.response_id == "q-1"
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
        res = run_async(run_load(client, specs(2, 8), concurrency=2, stall_timeout=1.0, tick_interval=0.2))
    assert res.aborted and res.aborted.startswith("stalled: no request made progress") and res.client == "reference"


def test_http_500_fails_with_the_reason_and_warmups_are_discarded():
    with FaultyServer("error500") as server:
        res = run(server.base_url, n=2, warmups=2)
        assert len(server.peers) == 4  # two warmups, then the two timed requests
    assert res.warmups == 2 and res.warmup_failures == 2 and len(res.results) == 2
    assert all(not r.success and r.error == "HTTP 500 Internal Server Error" for r in res.results)


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
