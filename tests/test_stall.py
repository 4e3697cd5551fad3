"""A server that stops answering fails the point within the stall timeout, not hours later."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.loadgen import ClientConfig, run_load
from pytest_inferencemax.workload import RequestSpec

SPECS = [RequestSpec(prompt="hello", prompt_len=1, output_len=8, target_prompt_len=1)] * 6


@pytest.mark.parametrize("mode", ["hang", "midstream"])
def test_run_aborts_within_stall_timeout(mode):
    with FaultyServer(mode) as server:
        client = ClientConfig(base_url=server.base_url, model="m", request_timeout=600)
        t0 = time.monotonic()
        result = asyncio.run(run_load(client, SPECS, concurrency=2, stall_timeout=1.5, tick_interval=0.2))
        elapsed = time.monotonic() - t0
    assert result.aborted and "stalled: no request made progress" in result.aborted
    assert "--stall-timeout 1.5 s" in result.aborted
    assert 1.5 <= elapsed < 5


def test_healthy_stream_is_not_called_stalled():
    with FaultyServer("ok") as server:
        client = ClientConfig(base_url=server.base_url, model="m", request_timeout=60)
        result = asyncio.run(run_load(client, SPECS, concurrency=2, num_warmups=2, stall_timeout=1.0))
    assert result.aborted is None
    assert [r.output_tokens for r in result.results] == [8] * 6 and all(r.success for r in result.results)


def test_stalled_point_fails_fast_through_the_plugin(pytester, smollm2_model, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml('{ isl = 16, osl = 8, conc = [2], prompts_per_conc = 2 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("midstream") as server:
        t0 = time.monotonic()
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", server.base_url, "--stall-timeout", "2", "--results-dir", str(tmp_path),
            "--run-id", "stall", "--models-dir", str(MODELS_DIR), timeout=120)
        elapsed = time.monotonic() - t0
    run.assert_outcomes(failed=1)
    out = run.stdout.str()
    # the stream stalls already in the warmups, which are watched like the timed run
    assert "mini-16-8-c2 stopped: during warmups: stalled: no request made progress" in out
    assert "FAILED mini-16-8-c2: mini-16-8-c2 stopped: during warmups: stalled" in out  # the summary names it
    assert elapsed < 60
    summary = json.loads((tmp_path / "stall" / "summary.json").read_text())
    assert summary["failures"][0]["point"] == "mini-16-8-c2" and "stalled" in summary["failures"][0]["reason"]
