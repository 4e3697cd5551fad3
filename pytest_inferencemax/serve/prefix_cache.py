"""Prefix-cache state around a point, from the server's Prometheus ``/metrics``.

A random workload should not hit the prefix cache; when it does, TTFT and throughput look better
than the workload deserves (an earlier point's prompts, a repeated seed, warmups). Counters read
before and after the timed run give the point's own hit rate:

- vLLM: ``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits`` (tokens; ``_total`` counters,
  summed over engines);
- SGLang: ``sglang:prompt_tokens_total`` (queries) and ``sglang:cached_tokens_total`` (hits, summed
  over cache sources).

The counters are read before the warmups, which send copies of the first request: every copy
after the first, and the timed run's first request, may be served from the cache. The warning
discounts those (warmups x the first prompt's tokens) and is raised only beyond them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import requests

from pytest_inferencemax.plan.part import Part as _Part
from pytest_inferencemax.serve import api
from pytest_inferencemax.serve.server_metrics import read_totals

COUNTERS = {  # engine: (queries, hits), family names as the parser gives them (no _total)
    "vllm": ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits"),
    "sglang": ("sglang:prompt_tokens", "sglang:cached_tokens"),
}
Number = Union[int, float]  # kept as written (record.Number)
WARN_ABOVE = 0.01  # hit rate, once the first request's prompt is discounted


class PrefixCacheCheck(_Part):
    """What the server's prefix cache served during the point (a random workload should hit nothing)."""

    available: bool
    why: Optional[str] = None
    engine: Optional[str] = None
    query_tokens: Optional[Number] = None
    hit_tokens: Optional[Number] = None
    hit_rate: Optional[Number] = None
    warning: Optional[str] = None
    reset: Optional[bool] = None  # --reset-prefix-cache: emptied before the point (None: not asked)
    reset_note: Optional[str] = None  # how, or why it could not be


# Each engine's way to empty its prefix cache; vLLM serves it only with VLLM_SERVER_DEV_MODE=1 (a development
# endpoint, vllm/entrypoints/serve/dev/cache), which a launched recipe gets when its cache is to be reset
RESET_PATHS = {"vllm": "/reset_prefix_cache", "sglang": "/flush_cache"}
DEV_MODE_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
CACHE_OFF_FLAGS = {"vllm": "--no-enable-prefix-caching", "sglang": "--disable-radix-cache"}


def caching_enabled(engine: str, argv: Sequence[str]) -> bool | None:
    """Whether a server launched with ``argv`` caches prefixes: vLLM and SGLang do unless told not to
    (``--no-enable-prefix-caching``, ``--disable-radix-cache``); None for another engine (unknown)."""
    if engine not in CACHE_OFF_FLAGS:
        return None
    return CACHE_OFF_FLAGS[engine] not in argv


def reset_cache(base_url: str, engine: str, api_key: str | None = None) -> tuple[bool, str]:
    """Empty the server's prefix cache (vLLM's ``POST /reset_prefix_cache``, SGLang's ``POST /flush_cache``):
    (done, how it went, in words)."""
    path = RESET_PATHS.get(engine)
    if path is None:
        return False, f"no prefix-cache reset known for engine {engine!r}"
    for _ in range(5):  # vLLM refuses while blocks are held (a request still finishing): a moment later it can
        try:
            r = api.post(base_url, path, {}, api_key=api_key, timeout=30)
        except requests.RequestException as exc:
            return False, f"POST {path} failed: {exc}"
        if r.status_code == 404:
            return False, (f"the server has no POST {path}" + (" (vLLM serves it only with VLLM_SERVER_DEV_MODE=1)"
                                                               if engine == "vllm" else ""))
        if r.status_code >= 400:
            return False, f"POST {path} answered HTTP {r.status_code}: {r.text[:200]}"
        if engine != "vllm" or (r.json() or {}).get("success", True):
            return True, f"POST {path} before the point's warmups"
        time.sleep(0.2)
    return False, f"POST {path} answered success=false five times (blocks still held)"


@dataclass(frozen=True)
class CacheCounters:
    engine: str
    queries: float
    hits: float


def counters_from(totals: dict[str, float]) -> CacheCounters | None:
    """The prefix-cache counters among a ``/metrics`` page's totals, or None when it has neither engine's."""
    for engine, (queries, hits) in COUNTERS.items():
        if queries in totals and hits in totals:
            return CacheCounters(engine, totals[queries], totals[hits])
    return None


def read_counters(base_url: str, *, timeout: float = 10.0, api_key: str | None = None) -> tuple[CacheCounters | None, str]:
    """Counters from ``base_url``/metrics, with why they are missing when they are."""
    totals, why = read_totals(base_url, timeout=timeout, api_key=api_key)
    if totals is None:
        return None, why
    counters = counters_from(totals)
    return counters, "" if counters else "/metrics has no prefix-cache counters of vLLM or SGLang"


def cache_record(before: CacheCounters | None, after: CacheCounters | None, why: str,
                 first_prompt_tokens: int, warmups: int, reset: tuple[bool, str] | None = None) -> PrefixCacheCheck:
    """The point's ``prefix_cache`` record; ``warning`` is set when a random workload hit the cache."""
    done = {"reset": reset[0], "reset_note": reset[1]} if reset is not None else {}
    if before is None or after is None or before.engine != after.engine:
        return PrefixCacheCheck(available=False, why=why or "the counters changed engine between readings", **done)
    queries, hits = after.queries - before.queries, after.hits - before.hits
    rate = hits / queries if queries > 0 else None
    explained = first_prompt_tokens * warmups  # warmup copies 2..n and the first timed request
    excess = max(0.0, hits - explained) / queries if queries > 0 else 0.0
    rec: dict[str, Any] = {"available": True, "engine": after.engine, "query_tokens": queries, "hit_tokens": hits,
                           "hit_rate": rate, "warning": None}
    if excess > WARN_ABOVE:
        rec["warning"] = (f"the prefix cache served {hits:.0f} of {queries:.0f} prompt tokens ({rate:.1%}) of a "
                          f"random workload beyond the warmed first prompt: an earlier run's prompts or a repeated "
                          f"seed; TTFT and throughput "
                          f"are flattered (--reset-prefix-cache on, restart the server, change --seed, or disable "
                          f"prefix caching)")
    return PrefixCacheCheck(**rec, **done)
