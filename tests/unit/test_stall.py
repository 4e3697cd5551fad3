"""A server that stops answering fails the point within the stall timeout, not hours later."""
from __future__ import annotations

import asyncio
import time

import pytest

from faulty_server import FaultyServer
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.workload import RequestSpec

SPECS = [RequestSpec(prompt="hello", prompt_len=1, output_len=8, target_prompt_len=1)] * 6
STALL_S = 1.5  # --stall-timeout of these runs (a host that runs the suite on 3 workers can starve a stream 0.5 s)
REQUEST_TIMEOUT_S = 60  # what a request waits without the stall check


@pytest.mark.parametrize("mode", ["hang", "midstream"])
def test_run_aborts_within_stall_timeout(mode):
    with FaultyServer(mode) as server:
        client = ClientConfig(base_url=server.base_url, model="m", request_timeout=REQUEST_TIMEOUT_S)
        t0 = time.monotonic()
        result = asyncio.run(run_load(client, SPECS, concurrency=2, stall_timeout=STALL_S, tick_interval=0.1))
        elapsed = time.monotonic() - t0
    # the stall check ended the run (not the requests' own timeout: they would have failed, not aborted the run)
    assert result.aborted and "stalled: no request made progress" in result.aborted
    assert f"--stall-timeout {STALL_S:g} s" in result.aborted
    assert result.results == []  # no request finished: every one was cut short by the stall
    # never before the stall timeout (README: "after --stall-timeout seconds without a byte"), and long before
    # any request's own timeout: the bound is the configured request timeout, not a guess at this machine's load
    assert STALL_S <= elapsed < REQUEST_TIMEOUT_S / 2


def test_healthy_stream_is_not_called_stalled():
    with FaultyServer("ok") as server:
        client = ClientConfig(base_url=server.base_url, model="m", request_timeout=60)
        result = asyncio.run(run_load(client, SPECS, concurrency=2, num_warmups=2, stall_timeout=1.0))
    assert result.aborted is None
    assert [r.output_tokens for r in result.results] == [8] * 6 and all(r.success for r in result.results)


def test_a_run_cut_short_keeps_the_requests_that_had_finished():
    with FaultyServer("midstream", ok_streams=3) as server:
        client = ClientConfig(base_url=server.base_url, model="faulty")
        specs = [RequestSpec(prompt="a b c", prompt_len=3, output_len=5, target_prompt_len=3)] * 6
        load = asyncio.run(run_load(client, specs, concurrency=6, num_warmups=0, stall_timeout=STALL_S,
                                    tick_interval=0.1))
    assert load.aborted and "stalled" in load.aborted
    assert len(load.results) == 3 and all(r.success and r.events == 5 for r in load.results)
