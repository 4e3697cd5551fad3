"""The reference-parity client (``--client reference``): the bounty client's semantics on aiohttp, checked
against the calibration server's known schedule, and through a whole suite run (the calibration server launched
as the suite's recipe)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from e2e_support import SUITE_TEST, calibration_argv, calibration_suite_toml, stage_toml
from pytest_inferencemax.cli import bench
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.aio import run_async
from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.metrics import compute_metrics
from calibration import calibration_server, specs, truth


def run(base: str, n: int = 4, osl: int = 5, conc: int = 2, warmups: int = 0, **kw):
    client = ClientConfig(base_url=base, model="m", client="reference", **kw)
    return run_async(run_load(client, specs(n, osl), concurrency=conc, num_warmups=warmups))


def test_events_of_four_tokens_give_per_event_itl_and_usage_from_the_final_event():
    with calibration_server() as base:
        res = run(base, n=6, osl=41, conc=3,
                  extra_body={"calibration": {"ttft_ms": 20, "itl_ms": 5, "tokens_per_event": 4, "usage": "every"}})
        true = truth(base)
    assert all(r.success and r.events == 11 and r.output_tokens == 41 for r in res.results)
    # the usage riding on every token event was not read (the precise client keeps it per event): only the
    # final chunk, the one without choices, gave the 41
    assert all(len(r.event_tokens) == 0 for r in res.results)
    m = compute_metrics(res.results, res.duration, tput_per_gpu_divisor=1, count_tokens=lambda t: t.count("tok"))
    assert m["total_output_tokens"] == 6 * 41
    # our per-token ITL still works: each event's text ends are kept, so its 4 tokens share the gap
    assert m["token_itl_counts_from"] == {"tokenizer": 6}
    assert m["median_token_itl_ms"] == pytest.approx(5.0, abs=1.0)
    # ITL is the gap between events (4 tokens x 5 ms), as sent; stamps are taken after parsing, so late a little
    sent_gaps = [g for t in true.values() for g in np.diff(t["sent"])]
    assert m["median_itl_ms"] == pytest.approx(1000 * float(np.median(sent_gaps)), abs=3.0)
    assert m["median_itl_ms"] == pytest.approx(20.0, abs=3.0)
    # TTFT includes connecting (a new connection per request) and is never earlier than the truth
    for r in res.results:
        t = true[r.response_id]
        assert r.ttft >= t["sent"][0] - t["received"]


def test_client_processes_run_the_reference_client_and_the_merge_says_so():
    from pytest_inferencemax.measure.multiclient import run_load_multiprocess
    with calibration_server() as base:
        client = ClientConfig(base_url=base, model="m", client="reference",
                              extra_body={"calibration": {"ttft_ms": 5, "itl_ms": 2}})
        res = run_load_multiprocess(client, specs(8, 4), concurrency=4, num_warmups=2, procs=2)
    assert res.client == "reference" and res.arrival_clock == "reference" and res.client_procs == 2
    assert len(res.results) == 8 and all(r.success and r.output_tokens == 4 for r in res.results)


def test_bench_cli_runs_a_point_with_the_reference_client(tmp_path, smollm2_model):
    with calibration_server() as base:
        out = tmp_path / "r.json"
        rc = bench.main(["--base-url", base, "--model", "calibration", "--tokenizer", str(smollm2_model),
                         "--isl", "16", "--osl", "8", "--conc", "2", "--num-prompts", "4", "--client", "reference",
                         "--extra-body", '{"calibration": {"ttft_ms": 2, "itl_ms": 1, "prompt_tokens": 16}}', "--out", str(out), "-q"])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["inferencemax"]["client"]["load_generator"] == "reference"
    assert rec["inferencemax"]["client"]["arrival_clock"] == "reference"
    assert rec["completed"] == 4 and rec["total_output_tokens"] == 32


def test_suite_point_with_the_reference_client_in_a_suite_run(pytester, smollm2_model, tmp_path):
    """--client reference through a whole pytest run, on the calibration server launched as the suite's recipe
    (it counts the prompt's 16 tokens, as vLLM does: the token check has nothing to flag)."""
    d = pytester.mkdir("cal")
    stage = stage_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 1 }")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--ttft-ms", "5", "--itl-ms", "2"), stage))
    (d / "test_cal.py").write_text(SUITE_TEST)
    run_ = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(smollm2_model), "--extra-body", '{"calibration": {"prompt_tokens": 16}}',
        "--results-dir", str(tmp_path), "--run-id", "ref", "--client", "reference", "--telemetry-interval", "0",
        timeout=300)
    run_.assert_outcomes(passed=1)
    rec = json.loads((tmp_path / "ref" / "cal-16-4-c2.json").read_text())
    assert rec["inferencemax"]["client"]["load_generator"] == "reference"
    assert rec["inferencemax"]["server"]["launched"] is True
    assert rec["completed"] == 2 and rec["total_output_tokens"] == 8
    assert rec["inferencemax"]["token_check"]["failures"] == []
    assert rec["inferencemax"]["token_check"]["input"]["mismatched_requests"] == 0
