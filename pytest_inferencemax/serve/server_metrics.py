"""The server's own Prometheus ``/metrics``: read, summed over labels, and turned into what it saw of a run.

Parsed with prometheus-client's text parser. ``server_view`` takes two readings around a run and gives
the engine's own mean TTFT, inter-token latency and E2E latency over it (histogram sum / count deltas)
and the tokens it counted; the parity command and the vLLM cross-check print it beside the clients'
figures, so that a difference between two runs can be told apart from a difference between two clients.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import requests
from prometheus_client.parser import text_string_to_metric_families

from pytest_inferencemax.serve import api

# Per engine, the histogram (its name without _sum/_count) or counter (without _total) of each figure;
# the first name present wins (vLLM renamed time_per_output_token to inter_token_latency).
FIGURES = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
            "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
    "e2e": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"),
    "prompt_tokens": ("vllm:prompt_tokens", "sglang:prompt_tokens"),
    "generation_tokens": ("vllm:generation_tokens", "sglang:generation_tokens"),
}


def parse_totals(text: str) -> dict[str, float]:
    """Every sample of a ``/metrics`` page summed over its labels; ``x_total`` counters are named ``x``."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name[:-6] if sample.name.endswith("_total") else sample.name
            totals[name] = totals.get(name, 0.0) + float(sample.value)
    return totals


def read_totals(base_url: str, *, timeout: float = 10.0, api_key: str | None = None) -> tuple[dict[str, float] | None, str]:
    """``parse_totals`` of ``base_url``/metrics, or None with why it could not be read."""
    try:
        resp = api.get(base_url, "/metrics", api_key=api_key, timeout=timeout)
    except requests.RequestException as exc:
        return None, f"GET /metrics failed: {type(exc).__name__}"
    if resp.status_code != 200:
        return None, f"GET /metrics answered HTTP {resp.status_code}"
    try:
        return parse_totals(resp.text), ""
    except ValueError as exc:
        return None, f"/metrics is not Prometheus text: {exc}"


@dataclass(frozen=True)
class ServerView:
    """What the server measured between two readings (warmups included); None where it has no such metric."""

    mean_ttft_ms: float | None = None
    mean_itl_ms: float | None = None
    mean_e2e_ms: float | None = None
    requests: int | None = None
    prompt_tokens: int | None = None
    generation_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.requests is None and self.generation_tokens is None:
            return "n/a"
        def ms(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f} ms"
        return (f"mean TTFT {ms(self.mean_ttft_ms)}, mean ITL {ms(self.mean_itl_ms)}, mean E2E {ms(self.mean_e2e_ms)}, "
                f"{self.requests} requests, {self.prompt_tokens} prompt / {self.generation_tokens} generated tokens")


def server_view(before: Mapping[str, float] | None, after: Mapping[str, float] | None) -> ServerView:
    """The server's own figures over the interval between two ``read_totals`` readings."""
    if not before or not after:
        return ServerView()

    def delta(name: str) -> float | None:
        return after[name] - before.get(name, 0.0) if name in after else None

    def mean_ms(figure: str) -> tuple[float | None, int | None]:
        for name in FIGURES[figure]:
            total, count = delta(f"{name}_sum"), delta(f"{name}_count")
            if total is not None and count:
                return 1000.0 * total / count, int(count)
        return None, None

    def counter(figure: str) -> int | None:
        return next((int(d) for name in FIGURES[figure] if (d := delta(name)) is not None), None)

    ttft, n = mean_ms("ttft")
    itl, _ = mean_ms("itl")
    e2e, n_e2e = mean_ms("e2e")
    return ServerView(ttft, itl, e2e, n_e2e if n_e2e is not None else n, counter("prompt_tokens"),
                      counter("generation_tokens"))
