"""The client against the calibration server (benchmarks/calibration_server.py), which records when
it really wrote each event: timing truth, per-token ITL, the client-bound flag, several client
processes, token-count and prefix-cache checks."""
from __future__ import annotations

import sys
import threading
from typing import Iterator

import numpy as np
import pytest
import requests

from pytest_inferencemax.measure.http_stream import kernel_stamps_supported
from pytest_inferencemax.measure.loadgen import ClientConfig, LoadResult, run_async, run_load
from pytest_inferencemax.measure.metrics import compute_metrics
from pytest_inferencemax.measure.multiclient import run_load_multiprocess
from pytest_inferencemax.measure.prefix_cache import CacheCounters, cache_record, read_counters
from pytest_inferencemax.measure.runner import RunSettings, client_record
from pytest_inferencemax.measure.token_check import check_tokens
from calibration import calibration_server, specs, truth

TOLERANCE_S = 0.002  # the bound: within 2 ms of the truth at low load


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with calibration_server() as base:
        yield base


def load(base: str, schedule: dict, *, n: int = 12, osl: int = 20, conc: int = 4, kernel_stamps=None,
         warmups: int = 0) -> LoadResult:
    requests.post(base + "/calibration/reset", timeout=5)
    client = ClientConfig(base_url=base, model="calibration", extra_body={"calibration": schedule},
                          kernel_stamps=kernel_stamps)
    return run_async(run_load(client, specs(n, osl), concurrency=conc, num_warmups=warmups))


def words(text: str) -> int:
    return len(text.split())  # the calibration server's tokens are " tok" each


STAMPS = [pytest.param(False, id="read-stamps"),
          pytest.param(True, id="kernel-stamps", marks=pytest.mark.skipif(
              not kernel_stamps_supported(), reason="no SO_TIMESTAMPING on this system"))]


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_ttft_and_itl_within_2ms_of_the_truth_at_low_load(server, kernel_stamps):
    res = load(server, {"ttft_ms": 40, "itl_ms": 10}, kernel_stamps=kernel_stamps)
    assert res.arrival_clock == ("kernel" if kernel_stamps else "read")
    true = truth(server)
    assert all(r.success for r in res.results) and len(res.results) == 12
    for r in res.results:
        t = true[r.response_id]
        true_ttft = t["sent"][0] - t["received"]
        assert abs(r.ttft - true_ttft) < TOLERANCE_S, (r.ttft, true_ttft)
        true_gaps = np.diff(t["sent"])
        assert len(r.itl) == len(true_gaps) == 19
        assert np.max(np.abs(np.asarray(r.itl) - true_gaps)) < TOLERANCE_S
    m = compute_metrics(res.results, res.duration, tput_per_gpu_divisor=1)
    true_ttfts = [t["sent"][0] - t["received"] for t in true.values()]
    assert abs(m["median_ttft_ms"] - 1000 * float(np.median(true_ttfts))) < 2.0
    assert m["median_itl_ms"] == pytest.approx(10.0, abs=2.0)  # the schedule itself, give or take a timer tick
    assert m["token_itl_counts_from"] == {"one_per_event": 12}
    assert m["median_token_itl_ms"] == m["median_itl_ms"]  # one token per event: the two ITLs agree


@pytest.mark.parametrize("usage", ["every", "final"])
def test_per_token_itl_is_right_when_each_event_carries_4_tokens(server, usage):
    res = load(server, {"ttft_ms": 20, "itl_ms": 5, "tokens_per_event": 4, "usage": usage}, osl=41)
    true = truth(server)
    r = res.results[0]
    assert r.success and r.output_tokens == 41 and r.events == 11  # 1 token, then 10 events of 4
    # per event, the truth: each later event's gap shared by its 4 tokens
    true_per_token = [g / 4 for t in true.values() for g in np.diff(t["sent"]) for _ in range(4)]
    m = compute_metrics(res.results, res.duration, tput_per_gpu_divisor=1, count_tokens=words)
    assert m["token_itl_counts_from"] == {"usage" if usage == "every" else "tokenizer": 12}
    assert m["median_token_itl_ms"] == pytest.approx(1000 * float(np.median(true_per_token)), abs=2.0)
    assert m["median_token_itl_ms"] == pytest.approx(5.0, abs=1.5)
    # the reference keys keep the reference's meaning: the gaps between events, as sent
    assert m["median_itl_ms"] == pytest.approx(20.0, abs=2.0)
    # per request the per-token gaps add up to E2EL - TTFT over output - 1 tokens: mean per-token ITL is TPOT
    assert m["mean_token_itl_ms"] == pytest.approx(m["mean_tpot_ms"], rel=1e-6)


def test_client_bound_flag_is_raised_when_the_client_is_overloaded_on_purpose(server):
    quiet = load(server, {"ttft_ms": 20, "itl_ms": 10}, n=8, osl=30)
    quiet_metrics = compute_metrics(quiet.results, quiet.duration, tput_per_gpu_divisor=1)
    calm = client_record(quiet, quiet_metrics, RunSettings())
    assert calm["client_bound"] is False and calm["why"] is None
    assert calm["loop_lag"]["samples"] > 10

    stop = threading.Event()

    def hog() -> None:  # pure-Python work holds the GIL for whole switch intervals
        while not stop.is_set():
            sum(i * i for i in range(20000))

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.02)  # each hog keeps the GIL 20 ms at a time: lag far above any limit, every run
    for t in hogs:
        t.start()
    try:
        busy = load(server, {"ttft_ms": 20, "itl_ms": 10}, n=8, osl=30)
    finally:
        stop.set()
        for t in hogs:
            t.join()
        sys.setswitchinterval(interval)
    busy_metrics = compute_metrics(busy.results, busy.duration, tput_per_gpu_divisor=1)
    flagged = client_record(busy, busy_metrics, RunSettings())
    assert flagged["client_bound"] is True
    assert flagged["loop_lag"]["p99_ms"] > flagged["lag_limit_ms"] >= 1.0
    assert "--client-procs" in flagged["why"]
    # an explicit limit above the lag clears it
    assert client_record(busy, busy_metrics, RunSettings(client_lag_limit_ms=10_000.0))["client_bound"] is False


def test_several_client_processes_equal_one_on_the_same_schedule(server):
    schedule = {"ttft_ms": 30, "itl_ms": 8}
    one = load(server, schedule, n=24, osl=25, conc=6, warmups=6)
    requests.post(server + "/calibration/reset", timeout=5)
    client = ClientConfig(base_url=server, model="calibration", extra_body={"calibration": schedule})
    ticks = []
    many = run_load_multiprocess(client, specs(24, 25), concurrency=6, num_warmups=6, procs=3,
                                 on_tick=lambda live: ticks.append(live.done), tick_interval=0.2)
    assert many.client_procs == 3 and many.warmups == 6 and not many.aborted
    assert ticks and max(ticks) <= 24
    m1 = compute_metrics(one.results, one.duration, tput_per_gpu_divisor=1)
    m3 = compute_metrics(many.results, many.duration, tput_per_gpu_divisor=1)
    assert m3["completed"] == m1["completed"] == 24
    assert m3["total_output_tokens"] == m1["total_output_tokens"] == 24 * 25
    for key in ("duration", "median_ttft_ms", "median_itl_ms", "median_e2el_ms", "output_throughput"):
        assert m3[key] == pytest.approx(m1[key], rel=0.1), key
    true = truth(server)  # and every merged request is still measured against the truth
    for r in many.results:
        t = true[r.response_id]
        assert abs(r.ttft - (t["sent"][0] - t["received"])) < TOLERANCE_S


def test_token_count_mismatches_are_recorded_and_flagged(server):
    fine = load(server, {"ttft_ms": 5, "itl_ms": 1}, n=4, osl=10)
    ok = check_tokens(fine.results, words)
    assert ok["flagged"] == [] and ok["output"]["mismatched_requests"] == 0
    assert ok["retokenized"]["ratio"] == pytest.approx(1.0)

    short = load(server, {"ttft_ms": 5, "itl_ms": 1, "stop_after": 6}, n=4, osl=10)
    rec = check_tokens(short.results, words)
    assert rec["output"]["mismatched_requests"] == 4
    assert rec["output"]["examples"][0] == {"expected": 10, "reported": 6}
    assert "4 of 4 requests got another number of output tokens than asked" in rec["flagged"][0]

    lying = load(server, {"ttft_ms": 5, "itl_ms": 1, "usage_offset": 3, "prompt_tokens": 5}, n=4, osl=10)
    rec = check_tokens(lying.results, words)
    assert rec["output"]["reported_tokens"] == 4 * 13 and rec["input"]["mismatched_requests"] == 4
    assert any("prompt lengths" in f for f in rec["flagged"])
    assert any("re-tokenizing" in f for f in rec["flagged"])  # 10 tokens of text against 13 reported


def test_prefix_cache_hit_rate_is_read_from_metrics():
    with calibration_server("--prefix-hit-rate", "0.5", "--metrics-flavor", "sglang") as base:
        before, why = read_counters(base)
        assert why == "" and before.engine == "sglang"
        load(base, {"ttft_ms": 5, "itl_ms": 1}, n=4, osl=4)
        after, _ = read_counters(base)
        rec = cache_record(before, after, "", first_prompt_tokens=4, warmups=1)
    assert rec["available"] and rec["query_tokens"] == 16 and rec["hit_tokens"] == 8
    assert rec["hit_rate"] == pytest.approx(0.5)
    assert "served 8 of 16 prompt tokens" in rec["warning"]


def test_prefix_cache_record_rules(server):
    counters, why = read_counters(server)
    assert counters is not None and counters.engine == "vllm"
    # 8 warmups of a 100-token first prompt: 7 copies and the first timed request may hit (800 tokens)
    a, b = CacheCounters("vllm", 1000, 0), CacheCounters("vllm", 11000, 800)
    assert cache_record(a, b, "", first_prompt_tokens=100, warmups=8)["warning"] is None
    assert cache_record(a, b, "", first_prompt_tokens=100, warmups=0)["warning"]
    more = CacheCounters("vllm", 11000, 800 + 200)  # 2% of the queries beyond the warmed prompt
    assert cache_record(a, more, "", first_prompt_tokens=100, warmups=8)["warning"]
    missing = cache_record(None, None, "GET /metrics answered HTTP 404", 0, False)
    assert missing == {"available": False, "why": "GET /metrics answered HTTP 404"}
    none, why = read_counters("http://127.0.0.1:9")
    assert none is None and "GET /metrics failed" in why


def test_a_workload_the_server_counts_otherwise_is_a_failure_not_a_warning(server):
    # the server counts 5 tokens for each 4-token prompt: 25% off, the tokenizers differ
    other = load(server, {"ttft_ms": 5, "itl_ms": 1, "prompt_tokens": 5}, n=4, osl=10)
    rec = check_tokens(other.results, words)
    assert rec["input"]["mean_relative_gap"] == pytest.approx(0.25)
    assert len(rec["failures"]) == 1 and "did not run the ISL it names" in rec["failures"][0]
    assert "transformers 5" in rec["failures"][0] and "--tokenizer" in rec["failures"][0]
    # ... unless it is the BOS the tokenizer adds, which the server counts and the client does not
    assert check_tokens(other.results, words, special_tokens=1)["failures"] == []

    short = load(server, {"ttft_ms": 5, "itl_ms": 1, "stop_after": 6}, n=4, osl=10)
    rec = check_tokens(short.results, words)
    assert len(rec["failures"]) == 1 and "did not run the OSL it names" in rec["failures"][0]
    assert "ignore_eos" in rec["failures"][0]
    assert check_tokens(short.results, words, ignore_eos=False)["failures"] == []  # then short answers are fine

    # below 1% on average: flagged as a mismatch, not a failure (1 token off in one of 4 x 100-token answers)
    one_off = load(server, {"ttft_ms": 1, "itl_ms": 0.1}, n=4, osl=100)
    one_off.results[0].output_tokens = 99
    rec = check_tokens(one_off.results, words)
    assert rec["failures"] == [] and rec["output"]["mismatched_requests"] == 1 and rec["flagged"]


def test_bench_cli_fails_a_point_whose_prompts_the_server_counts_otherwise(server, smollm2_model, tmp_path, capsys):
    from pytest_inferencemax.cli import bench
    out = tmp_path / "r.json"
    rc = bench.main(["--base-url", server, "--model", "calibration", "--tokenizer", str(smollm2_model),
                     "--isl", "16", "--osl", "4", "--conc", "1", "--num-prompts", "2", "--num-warmups", "0",
                     "--extra-body", '{"calibration": {"ttft_ms": 1, "itl_ms": 1, "prompt_tokens": 80}}',
                     "--out", str(out), "-q"])
    assert rc == 1
    import json
    rec = json.loads(out.read_text())  # the record is on disk all the same, saying why
    assert rec["inferencemax"]["token_check"]["input"]["mean_relative_gap"] == pytest.approx(4.0)
    assert "did not run the ISL it names" in rec["inferencemax"]["token_check"]["failures"][0]
