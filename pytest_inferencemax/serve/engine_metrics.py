"""What an engine's Prometheus metrics mean, as data: one table per role, the names each engine uses.

A sample of the server (``serve/telemetry.py``) keeps, for each role below, the first of its names
that the ``/metrics`` page holds (summed over labels, ``_total`` dropped: ``server_metrics.parse_totals``).
vLLM names are those of vLLM's V1 engine (``vllm/v1/metrics/loggers.py``; older names second);
SGLang's come from ``python/sglang/srt/metrics/collector.py`` (sgl-project/sglang, commit 00ae9c1),
where a retraction (a request evicted to free KV cache) is its preemption. Adding an engine is adding
its names here.
"""
from __future__ import annotations

from typing import Mapping

# gauges: sampled as they are
GAUGES: Mapping[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs"),  # requests in the running batch
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs"),  # requests queued in the server
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),  # 0..1
}
# counters: totals since the server started; a point reads their growth
COUNTERS: Mapping[str, tuple[str, ...]] = {
    "preemptions": ("vllm:num_preemptions", "sglang:num_retracted_requests"),
    "prompt_tokens": ("vllm:prompt_tokens", "sglang:prompt_tokens"),
    "generation_tokens": ("vllm:generation_tokens", "sglang:generation_tokens"),
    "prefix_queries": ("vllm:prefix_cache_queries",),
    "prefix_hits": ("vllm:prefix_cache_hits", "sglang:cached_tokens"),
}
# histograms (seconds): a point reads the growth of their _sum and _count, i.e. the mean over the point
HISTOGRAMS: Mapping[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
            "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
    "queue": ("vllm:request_queue_time_seconds", "sglang:queue_time_seconds"),
    "prefill": ("vllm:request_prefill_time_seconds",),
    "decode": ("vllm:request_decode_time_seconds",),
    "e2e": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"),
}


def pick(totals: Mapping[str, float]) -> dict[str, float]:
    """One sample's values by role: gauges and counters under their role, histograms as
    ``<role>_sum`` and ``<role>_count``; roles the page does not have are left out."""
    row: dict[str, float] = {}
    for table in (GAUGES, COUNTERS):
        for role, names in table.items():
            if (name := next((n for n in names if n in totals), None)) is not None:
                row[role] = totals[name]
    for role, names in HISTOGRAMS.items():
        if (name := next((n for n in names if f"{n}_count" in totals), None)) is not None:
            row[f"{role}_sum"], row[f"{role}_count"] = totals.get(f"{name}_sum", 0.0), totals[f"{name}_count"]
    return row
