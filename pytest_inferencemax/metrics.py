"""Point metrics from request results, with the reference client's names and formulas.

``calculate_metrics`` semantics (docs/metrics.md): successful requests only; per-request
TPOT = (E2EL - TTFT) / (output_tokens - 1) when output_tokens > 1; ITL pools every gap of
every request; each metric gets mean, median, std (population) and the chosen percentiles
in milliseconds, through numpy; throughputs are totals over the timed run's duration.
On top: the bounty's ``tput_per_gpu`` and ``interactivity`` (1000 / median TPOT).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from .loadgen import RequestResult

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_PERCENTILES = (99.0,)


@dataclass(frozen=True)
class TokenCounts:
    """Per-request output token counts and where they came from."""

    output: list[int]
    from_usage: int  # requests whose count came from the server's usage event
    retokenized: int  # requests counted by re-tokenizing the generated text


def output_token_counts(results: Sequence[RequestResult], count_tokens: Callable[[str], int] | None) -> TokenCounts:
    """``usage.completion_tokens`` when the server sent it, otherwise the re-tokenized text."""
    counts, from_usage, retok = [], 0, 0
    for r in results:
        if r.output_tokens is not None:
            counts.append(r.output_tokens)
            from_usage += 1
        elif count_tokens is not None:
            counts.append(count_tokens(r.generated_text))
            retok += 1
        else:
            counts.append(0)
    return TokenCounts(counts, from_usage, retok)


def _pct_key(p: float) -> str:
    return f"p{int(p)}" if float(p).is_integer() else f"p{p:g}"


def distribution(name: str, values_s: Iterable[float], percentiles: Sequence[float]) -> dict[str, float]:
    """mean/median/std/percentiles of seconds, reported in ms under ``<stat>_<name>_ms``."""
    arr = np.asarray(list(values_s), dtype=float) * 1000.0
    if arr.size == 0:
        arr = np.zeros(1)  # the reference reports 0 for an empty metric (e.g. TPOT when OSL is 1)
    out = {
        f"mean_{name}_ms": float(np.mean(arr)),
        f"median_{name}_ms": float(np.median(arr)),
        f"std_{name}_ms": float(np.std(arr)),
    }
    for p in percentiles:
        out[f"{_pct_key(p)}_{name}_ms"] = float(np.percentile(arr, p))
    return out


def compute_metrics(
    results: Sequence[RequestResult],
    duration: float,
    *,
    tput_per_gpu_divisor: float,
    count_tokens: Callable[[str], int] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, float | int]:
    """Every figure of one point, keyed as the reference client's result JSON."""
    if duration <= 0:
        raise ValueError("duration must be positive")
    ok = [r for r in results if r.success]
    counts = output_token_counts(ok, count_tokens)
    total_input = sum(r.prompt_len for r in ok)
    total_output = sum(counts.output)
    tpots = [(r.latency - r.ttft) / (n - 1) for r, n in zip(ok, counts.output) if n > 1]
    m: dict[str, float | int] = {
        "duration": duration,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(ok) / duration,
        "request_goodput:": None,  # sic: the reference key has the colon; no goodput SLO here
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "output_tokens_from_usage": counts.from_usage,
        "output_tokens_retokenized": counts.retokenized,
    }
    m.update(distribution("ttft", (r.ttft for r in ok), percentiles))
    m.update(distribution("tpot", tpots, percentiles))
    m.update(distribution("itl", (gap for r in ok for gap in r.itl), percentiles))
    m.update(distribution("e2el", (r.latency for r in ok), percentiles))
    m["tput_per_gpu"] = m["total_token_throughput"] / tput_per_gpu_divisor
    m["tput_per_gpu_divisor"] = tput_per_gpu_divisor
    median_tpot = m["median_tpot_ms"]
    m["interactivity"] = 1000.0 / median_tpot if median_tpot else 0.0
    return m
