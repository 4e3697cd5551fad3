"""Point metrics, checked against arithmetic written out by hand."""
from __future__ import annotations

import math

import pytest

from pytest_inferencemax.measure.loadtypes import RequestResult
from pytest_inferencemax.measure.metrics import PointFigures, compute_metrics, distribution, output_token_counts

approx = pytest.approx


def ok(prompt_len, output_tokens, ttft, latency, itl, text="", requested=None, usage_chunk=True):
    """A successful request; ``usage_chunk``: the server's usage came in a chunk without choices (as vLLM sends
    it), which is where the bounty client reads it (a None count there: it re-tokenizes the text)."""
    return RequestResult(prompt_len=prompt_len, output_len_requested=requested or (output_tokens or 0),
                         success=True, ttft=ttft, latency=latency, itl=list(itl), output_tokens=output_tokens,
                         reference_output_tokens=output_tokens if usage_chunk else 0, generated_text=text)


def words(text: str) -> int:
    return len(text.split())


# Four successful requests and one failure, with numbers chosen so every figure can be
# worked out on paper.
R1 = ok(100, 5, 0.100, 0.500, [0.080, 0.090, 0.110, 0.120])  # TPOT (0.5-0.1)/(5-1) = 0.1 s
R2 = ok(200, 3, 0.200, 0.600, [0.150, 0.250])  # TPOT (0.6-0.2)/(3-1) = 0.2 s
R3 = ok(50, 1, 0.300, 0.300, [])  # one token: no TPOT
R4 = ok(150, None, 0.050, 0.350, [0.100, 0.100, 0.100], text="w1 w2 w3 w4")  # usage without a count: 4 re-tokenized
FAILED = RequestResult(prompt_len=999, output_len_requested=77, success=False, error="HTTP 500",
                       ttft=9.0, latency=9.5, itl=[5.0, 6.0], output_tokens=77, generated_text="x y z")
RESULTS = [R1, R2, FAILED, R3, R4]
DURATION = 2.0


@pytest.fixture(scope="module")
def m():
    return compute_metrics(RESULTS, DURATION, tput_per_gpu_divisor=8, count_tokens=words)


def test_counts_and_totals(m):
    assert m["duration"] == 2.0
    assert m["completed"] == 4
    assert m["failed"] == 1
    assert m["total_input_tokens"] == 100 + 200 + 50 + 150 == 500
    assert m["total_output_tokens"] == 5 + 3 + 1 + 4 == 13
    assert m["output_tokens_from_usage"] == 3
    assert m["output_tokens_retokenized"] == 1
    assert m["total_output_tokens_counted"] == 13  # ours agrees: every request had a usage chunk
    assert "request_goodput:" in m and m["request_goodput:"] is None


def test_throughputs(m):
    assert m["request_throughput"] == approx(4 / 2.0) == 2.0
    assert m["output_throughput"] == approx(13 / 2.0) == 6.5
    assert m["total_token_throughput"] == approx((500 + 13) / 2.0) == 256.5
    assert m["tput_per_gpu"] == approx(256.5 / 8) == 32.0625
    assert m["tput_per_gpu_divisor"] == 8


def test_ttft(m):
    # ms: 100, 200, 300, 50
    mean = (100 + 200 + 300 + 50) / 4  # 162.5
    var = ((100 - mean) ** 2 + (200 - mean) ** 2 + (300 - mean) ** 2 + (50 - mean) ** 2) / 4
    # sorted 50, 100, 200, 300: median (100 + 200) / 2; p99 at rank 0.99 * 3 = 2.97
    p99 = 200 + 0.97 * (300 - 200)
    assert m["mean_ttft_ms"] == approx(162.5)
    assert m["median_ttft_ms"] == approx(150.0)
    assert m["std_ttft_ms"] == approx(math.sqrt(var)) == approx(96.0143218483576)
    assert m["p99_ttft_ms"] == approx(p99) == approx(297.0)


def test_tpot(m):
    # per request (latency - ttft) / (n - 1), in ms: R1 400/4 = 100, R2 400/2 = 200, R4 300/3 = 100
    # R3 (one token) has none.
    tpots = [(500 - 100) / (5 - 1), (600 - 200) / (3 - 1), (350 - 50) / (4 - 1)]
    assert tpots == approx([100.0, 200.0, 100.0])
    mean = sum(tpots) / 3
    var = sum((t - mean) ** 2 for t in tpots) / 3
    # sorted 100, 100, 200: median 100; p99 at rank 0.99 * 2 = 1.98 -> 100 + 0.98 * 100
    assert m["mean_tpot_ms"] == approx(400 / 3)
    assert m["median_tpot_ms"] == approx(100.0)
    assert m["std_tpot_ms"] == approx(math.sqrt(var)) == approx(47.14045207910317)
    assert m["p99_tpot_ms"] == approx(198.0)


def test_itl_pools_every_gap_of_successful_requests(m):
    gaps = [80, 90, 110, 120, 150, 250, 100, 100, 100]  # R1, R2, R4; the failure's 5 s and 6 s are out
    mean = sum(gaps) / 9  # 1100 / 9
    var = sum((g - mean) ** 2 for g in gaps) / 9
    # sorted 80 90 100 100 100 110 120 150 250: median 100; p99 at rank 0.99 * 8 = 7.92
    p99 = 150 + 0.92 * (250 - 150)
    assert m["mean_itl_ms"] == approx(1100 / 9)
    assert m["median_itl_ms"] == approx(100.0)
    assert m["std_itl_ms"] == approx(math.sqrt(var))
    assert m["p99_itl_ms"] == approx(p99) == approx(242.0)


def test_e2el(m):
    e2el = [500, 600, 300, 350]
    mean = sum(e2el) / 4  # 437.5
    var = sum((e - mean) ** 2 for e in e2el) / 4
    # sorted 300 350 500 600: median 425; p99 at rank 2.97 -> 500 + 0.97 * 100
    assert m["mean_e2el_ms"] == approx(437.5)
    assert m["median_e2el_ms"] == approx(425.0)
    assert m["std_e2el_ms"] == approx(math.sqrt(var)) == approx(math.sqrt(56875 / 4))  # devs 62.5, 162.5, -137.5, -87.5
    assert m["p99_e2el_ms"] == approx(597.0)


def test_interactivity_is_1000_over_median_tpot(m):
    assert m["interactivity"] == approx(1000 / 100.0) == 10.0


def test_every_key_is_present_and_plain(m):
    expected = {"duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
                "request_throughput", "request_goodput:", "output_throughput", "total_token_throughput",
                "output_tokens_from_usage", "output_tokens_retokenized", "total_output_tokens_counted", "tput_per_gpu",
                "tput_per_gpu_divisor", "interactivity", "token_itl_counts_from", "good_requests"}
    for name in ("ttft", "tpot", "itl", "token_itl", "e2el"):
        expected |= {f"mean_{name}_ms", f"median_{name}_ms", f"std_{name}_ms", f"p99_{name}_ms"}
    assert set(m) == expected
    assert m["token_itl_counts_from"] == {"one_per_event": 3, "unknown": 1}  # R4 sent no usage
    for k, v in m.items():
        if k not in ("request_goodput:", "token_itl_counts_from", "good_requests"):
            assert type(v) in (int, float), k  # JSON-ready, no numpy scalars


def test_failed_requests_change_nothing_but_failed():
    with_failures = compute_metrics(RESULTS + [FAILED], DURATION, tput_per_gpu_divisor=8, count_tokens=words)
    without = compute_metrics([R1, R2, R3, R4], DURATION, tput_per_gpu_divisor=8, count_tokens=words)
    assert with_failures["failed"] == 2
    assert without["failed"] == 0
    del with_failures["failed"], without["failed"]
    assert with_failures == without


def test_failed_request_without_usage_is_not_retokenized():
    calls = []

    def counting(text):
        calls.append(text)
        return words(text)

    failed = RequestResult(prompt_len=10, output_len_requested=4, success=False, error="x",
                           output_tokens=None, generated_text="a b c")
    m = compute_metrics([R4, failed], 1.0, tput_per_gpu_divisor=1, count_tokens=counting)
    assert calls == ["w1 w2 w3 w4"]
    assert m["output_tokens_retokenized"] == 1
    assert m["total_output_tokens"] == 4
    assert m["total_input_tokens"] == 150


def test_custom_percentiles():
    m = compute_metrics([R1, R2, R3, R4], DURATION, tput_per_gpu_divisor=1, count_tokens=words,
                        percentiles=(50, 90, 99.9))
    # e2el sorted 300 350 500 600
    assert m["p50_e2el_ms"] == approx(425.0)
    assert m["p90_e2el_ms"] == approx(500 + 0.7 * 100)  # rank 0.9 * 3 = 2.7
    assert m["p99.9_e2el_ms"] == approx(500 + 0.997 * 100)  # rank 2.997
    assert "p99_e2el_ms" not in m
    assert m["tput_per_gpu"] == approx(256.5)


def test_output_tokens_fall_back_to_retokenized_text():
    results = [ok(10, None, 0.1, 0.4, [0.1, 0.1, 0.1], text="one two three four"),
               ok(20, None, 0.2, 0.5, [0.3], text="alpha beta")]
    m = compute_metrics(results, 1.0, tput_per_gpu_divisor=1, count_tokens=words)
    assert m["total_output_tokens"] == 4 + 2
    assert m["output_tokens_retokenized"] == 2
    assert m["output_tokens_from_usage"] == 0
    # TPOT uses the re-tokenized counts: (400-100)/3 = 100 ms, (500-200)/1 = 300 ms
    assert m["mean_tpot_ms"] == approx(200.0)
    assert m["median_tpot_ms"] == approx(200.0)
    assert m["output_throughput"] == approx(6.0)


def test_usage_count_wins_over_retokenizing():
    r = ok(10, 7, 0.1, 0.7, [0.1] * 6, text="only three words")
    counts = output_token_counts([r], words)
    assert counts.output == [7]
    assert (counts.from_usage, counts.retokenized) == (1, 0)


def test_no_usage_and_no_tokenizer_counts_zero():
    r = ok(10, None, 0.1, 0.7, [0.1], text="some text")
    counts = output_token_counts([r], None)
    assert counts.output == [0]
    assert (counts.from_usage, counts.retokenized) == (0, 0)


def test_interactivity_zero_when_every_request_has_one_token():
    results = [ok(10, 1, 0.1, 0.1, []), ok(10, 1, 0.3, 0.3, [])]
    m = compute_metrics(results, 1.0, tput_per_gpu_divisor=1)
    assert m["interactivity"] == 0.0
    for stat in ("mean", "median", "std", "p99"):
        assert m[f"{stat}_tpot_ms"] == 0.0
        assert m[f"{stat}_itl_ms"] == 0.0
    assert m["mean_ttft_ms"] == approx(200.0)
    assert m["total_output_tokens"] == 2


def test_all_requests_failed():
    m = compute_metrics([FAILED, FAILED], 3.0, tput_per_gpu_divisor=2)
    assert m["completed"] == 0
    assert m["failed"] == 2
    assert m["total_input_tokens"] == m["total_output_tokens"] == 0
    assert m["request_throughput"] == m["output_throughput"] == m["total_token_throughput"] == 0.0
    assert m["mean_ttft_ms"] == m["p99_e2el_ms"] == 0.0
    assert m["tput_per_gpu"] == 0.0
    assert m["interactivity"] == 0.0


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_duration_must_be_positive(duration):
    with pytest.raises(ValueError, match="duration"):
        compute_metrics([R1], duration, tput_per_gpu_divisor=1)


def test_distribution_of_one_value_and_of_none():
    d = distribution("x", [0.25], (50.0, 99.0))
    assert d == {"mean_x_ms": 250.0, "median_x_ms": 250.0, "std_x_ms": 0.0, "p50_x_ms": 250.0, "p99_x_ms": 250.0}
    empty = distribution("y", [], (99.0,))
    assert empty == {"mean_y_ms": 0.0, "median_y_ms": 0.0, "std_y_ms": 0.0, "p99_y_ms": 0.0}


def test_per_token_itl_shares_each_gap_among_the_tokens_of_the_later_event():
    from pytest_inferencemax.measure.metrics import per_token_itl
    # first event 2 tokens (one extra arrived with it: gap 0), then 4 tokens after 0.2 s,
    # an empty event after 0.1 s (its gap goes on), then 1 token after 0.3 s
    gaps = [0.2, 0.1, 0.3]
    counts = [2, 4, 0, 1]
    assert per_token_itl(gaps, counts) == [0.0, 0.05, 0.05, 0.05, 0.05, approx(0.4)]
    assert sum(per_token_itl(gaps, counts)) == approx(sum(gaps))  # adds up to E2EL - TTFT
    assert per_token_itl([0.1, 0.1], [1, 1, 1]) == [0.1, 0.1]  # one token per event: the gaps themselves
    assert per_token_itl([], [1]) == []


def test_event_token_counts_prefer_usage_then_one_each_then_the_tokenizer():
    from pytest_inferencemax.measure.metrics import event_token_counts
    packed = RequestResult(prompt_len=1, output_len_requested=9, success=True, itl=[0.1, 0.1],
                           output_tokens=9, generated_text="a b c d e f g h i")
    assert event_token_counts(packed, None) == ([1, 1, 1], "unknown")
    packed.event_text_ends = [1, 9, 17]  # "a", " b c d e", " f g h i"
    assert event_token_counts(packed, words) == ([1, 4, 4], "tokenizer")
    packed.event_tokens = [1, 4, 4]
    assert event_token_counts(packed, words) == ([1, 4, 4], "usage")
    single = ok(1, 3, 0.1, 0.3, [0.1, 0.1])
    assert event_token_counts(single, words) == ([1, 1, 1], "one_per_event")


def test_reference_itl_keys_hold_gaps_between_events_and_ours_hold_per_token_gaps():
    """Speculative decoding or a stream interval > 1 packs several tokens in an event: the reference's
    ``*_itl_ms`` keys are still the gaps between events; the per-token figures go under ``*_token_itl_ms``."""
    packed = RequestResult(prompt_len=4, output_len_requested=9, success=True, ttft=0.1, latency=0.5,
                           itl=[0.2, 0.2], output_tokens=9, reference_output_tokens=9, event_tokens=[1, 4, 4])
    m = compute_metrics([packed], 1.0, tput_per_gpu_divisor=1)
    assert m["mean_itl_ms"] == m["median_itl_ms"] == m["p99_itl_ms"] == approx(200.0)
    assert m["std_itl_ms"] == approx(0.0)
    assert m["median_token_itl_ms"] == approx(50.0)  # each 200 ms gap shared by the 4 tokens it brought
    assert m["mean_token_itl_ms"] == approx(m["mean_tpot_ms"]) == approx(400 / 8)


# --- the bounty client's count when the usage chunk is missing ---------------------------------------


def test_without_a_usage_chunk_the_reference_keys_count_zero_and_ours_retokenize():
    # R5: the server sent no usage at all; R6: usage only on the token events, none in a chunk without choices
    r5 = ok(10, None, 0.1, 0.4, [0.1, 0.1, 0.1], text="one two three four", usage_chunk=False)
    r6 = ok(20, 3, 0.2, 0.6, [0.2, 0.2], text="a b c", usage_chunk=False)
    m = compute_metrics([R1, r5, r6], 2.0, tput_per_gpu_divisor=1, count_tokens=words)
    # the bounty client's output_tokens stay at their default 0 for r5 and r6: 5 + 0 + 0
    assert m["total_output_tokens"] == 5
    assert m["output_throughput"] == approx(5 / 2.0)
    assert m["total_token_throughput"] == approx((10 + 20 + 100 + 5) / 2.0)
    assert m["mean_tpot_ms"] == approx(100.0)  # only R1 has more than one token in the bounty client's count
    assert m["interactivity"] == approx(10.0)
    # ours: R1's 5, r5 re-tokenized (4 words), r6 from its usage (3)
    assert m["total_output_tokens_counted"] == 5 + 4 + 3
    assert (m["output_tokens_from_usage"], m["output_tokens_retokenized"]) == (2, 1)


def test_the_reference_output_lens_are_zero_for_failures_and_missing_usage():
    from pytest_inferencemax.measure.metrics import reference_output_lens
    r5 = ok(10, None, 0.1, 0.4, [0.1], text="one two", usage_chunk=False)
    assert reference_output_lens([R1, FAILED, r5, R4], words) == [5, 0, 0, 4]


def test_a_usage_chunk_without_completion_tokens_is_retokenized_once():
    calls = []

    def counting(text):
        calls.append(text)
        return words(text)

    m = compute_metrics([R4], 1.0, tput_per_gpu_divisor=1, count_tokens=counting)
    assert m["total_output_tokens"] == m["total_output_tokens_counted"] == 4
    assert calls == ["w1 w2 w3 w4"]  # both counts from one tokenization


def test_point_figures_keep_the_reference_keys_in_order_and_type_ours(m):
    figs = PointFigures.of(m)
    ours = ("failed", "output_tokens_from_usage", "output_tokens_retokenized", "total_output_tokens_counted",
            "token_itl_counts_from", "tput_per_gpu", "tput_per_gpu_divisor", "interactivity", "good_requests")
    assert list(figs.reference) == [k for k in m if k not in ours]  # the record writes them in this order
    assert list(figs.reference)[:3] == ["duration", "completed", "total_input_tokens"]
    assert (figs.failed, figs.tput_per_gpu, figs.interactivity) == (m["failed"], m["tput_per_gpu"], m["interactivity"])
    assert figs["median_itl_ms"] == m["median_itl_ms"] and figs["tput_per_gpu_divisor"] == m["tput_per_gpu_divisor"]


# --goodput, worked out on paper from R1..R4 above (the failed request never counts; TPOT of R3, one token, is 0 as
# the reference client takes it; R4's TPOT uses its 4 re-tokenized tokens: (0.35 - 0.05) / 3 = 0.1 s)
@pytest.mark.parametrize("slos, good", [
    ({"ttft": 150}, 2),  # R1 0.1 s, R4 0.05 s within; R2 0.2, R3 0.3 not
    ({"tpot": 100}, 3),  # R1 0.1 (an SLO equal to the value is met), R3 0, R4 0.1; R2 0.2 not
    ({"ttft": 250, "e2el": 400}, 1),  # R4 only: R3's E2EL 0.3 is within but its TTFT 0.3 is not
    ({"ttft": 0}, 0),
])
def test_goodput_counts_the_requests_within_every_slo_as_the_reference_does(slos, good):
    m = compute_metrics(RESULTS, DURATION, tput_per_gpu_divisor=8, count_tokens=words, goodput=slos)
    assert m["good_requests"] == good and m["request_goodput:"] == good / DURATION


def test_without_slos_goodput_is_null_as_the_reference_writes_it(m):
    assert m["request_goodput:"] is None and m["good_requests"] is None
