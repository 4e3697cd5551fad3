"""Point metrics from request results, with the reference client's names and formulas.

``calculate_metrics`` semantics (docs/metrics.md): successful requests only; a request's output tokens
are the bounty client's count (the ``completion_tokens`` of its last chunk without ``choices``, 0 when no
such chunk came, the re-tokenized text when that chunk had no ``completion_tokens``), and every reference
key uses it: totals, throughputs, per-request TPOT = (E2EL - TTFT) / (output_tokens - 1) when
output_tokens > 1. Our own count (the server's usage from any event, else the re-tokenized text) goes
under keys of ours (``output_tokens_from_usage``, ``output_tokens_retokenized``,
``total_output_tokens_counted``). ITL pools every request's gaps between stream events, as the reference
does (so ``*_itl_ms`` mean what the reference's mean); our per-token ITL (each event's gap shared by the
tokens it brought; equal to ITL when every event carries one token, as on vLLM) goes under keys of its
own, ``*_token_itl_ms``; each metric gets mean, median, std (population) and the chosen percentiles in
milliseconds, through numpy; throughputs are totals over the timed run's duration.
On top: the bounty's ``tput_per_gpu`` and ``interactivity`` (1000 / median TPOT).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from pytest_inferencemax.measure.loadtypes import RequestResult

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "token_itl", "e2el")
DEFAULT_PERCENTILES = (99.0,)


@dataclass(frozen=True)
class TokenCounts:
    """Per-request output token counts and where they came from."""

    output: list[int]
    from_usage: int  # requests whose count came from the server's usage event
    retokenized: int  # requests counted by re-tokenizing the generated text


def output_token_counts(results: Sequence[RequestResult], count_tokens: Callable[[str], int] | None) -> TokenCounts:
    """Our count: ``usage.completion_tokens`` when the server sent it (on any event), else the re-tokenized text."""
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


def reference_output_counts(results: Sequence[RequestResult], ours: TokenCounts | None,
                            count_tokens: Callable[[str], int] | None) -> list[int]:
    """The bounty client's count per request (``calculate_metrics``' ``output_len``): its usage count, 0 without
    a usage chunk, the re-tokenized text when that chunk had no ``completion_tokens`` (``ours``, our counts of
    the same results, lends a re-tokenized text's count so that no text is tokenized twice)."""
    counts = []
    for i, r in enumerate(results):
        n = r.reference_output_tokens
        if n is None:
            if ours is not None and r.output_tokens is None:
                n = ours.output[i]  # re-tokenized there already (or 0 without a tokenizer)
            else:
                n = count_tokens(r.generated_text) if count_tokens is not None else 0
        counts.append(int(n))
    return counts


def reference_output_lens(results: Sequence[RequestResult], count_tokens: Callable[[str], int] | None) -> list[int]:
    """The bounty client's ``output_lens``: each request's count, 0 for a failed one (``--save-detailed``)."""
    ok = [r for r in results if r.success]
    counts = iter(reference_output_counts(ok, None, count_tokens))
    return [next(counts) if r.success else 0 for r in results]


def event_token_counts(r: RequestResult, count_tokens: Callable[[str], int] | None) -> tuple[list[int], str]:
    """Tokens in each event with choices, and where the counts came from.

    ``usage``: the server's cumulative usage on every event (deltas); ``one_per_event``: as many
    events as the final usage's tokens, so one each; ``tokenizer``: each event's text tokenized on
    its own (a server that packs tokens and sends no usage per event); ``unknown``: none of these.
    """
    events = len(r.itl) + 1  # the gaps are the truth about how many events came
    if len(r.event_tokens) == events:
        return list(r.event_tokens), "usage"
    if r.output_tokens == events:
        return [1] * events, "one_per_event"
    if count_tokens is not None and len(r.event_text_ends) == events:
        text, start, counts = r.generated_text, 0, []
        for end in r.event_text_ends:
            counts.append(count_tokens(text[start:end]) if end > start else 0)
            start = end
        return counts, "tokenizer"
    return [1] * events, "unknown"


def per_token_itl(gaps: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Per-token ITL: each gap between events shared by the tokens the later event brought.

    ``gaps[i]`` is the time from event ``i`` to event ``i+1``; event ``i+1`` brought ``counts[i+1]``
    tokens, so each gets ``gaps[i] / counts[i+1]``. Tokens of the first event beyond the first one
    arrived with it (a gap of 0). An event with no token hands its gap on to the next one. The
    values sum to E2EL - TTFT and number output tokens - 1, so their mean is the request's TPOT.
    """
    out = [0.0] * max(0, (counts[0] if counts else 1) - 1)
    carried = 0.0
    for gap, n in zip(gaps, counts[1:]):
        if n <= 0:
            carried += gap
            continue
        share = (gap + carried) / n
        out.extend([share] * n)
        carried = 0.0
    return out


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


def good_requests(ok: Sequence[RequestResult], counts: Sequence[int], slos: Mapping[str, float]) -> int:
    """Successful requests within every SLO (ms), as the reference client's ``calculate_metrics`` counts them for
    ``--goodput``: TTFT and E2EL from its stamps, TPOT = (E2EL - TTFT) / (n - 1) over its output count ``n``, and 0
    when ``n`` <= 1; a request meets an SLO when the SLO is at least its value (``s >= r``)."""
    limits = {name: ms / 1000.0 for name, ms in slos.items()}
    good = 0
    for r, n in zip(ok, counts):
        values = {"ttft": r.ttft, "tpot": (r.latency - r.ttft) / (n - 1) if n > 1 else 0.0, "e2el": r.latency}
        good += all(limit >= values[name] for name, limit in limits.items())
    return good


def compute_metrics(
    results: Sequence[RequestResult],
    duration: float,
    *,
    tput_per_gpu_divisor: float,
    count_tokens: Callable[[str], int] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    goodput: Mapping[str, float] | None = None,
) -> dict[str, float | int]:
    """Every figure of one point, keyed as the reference client's result JSON. With ``goodput`` (SLOs in ms, the
    reference's ``--goodput``), ``request_goodput:`` is the requests within every SLO per second, and
    ``good_requests`` (ours) their count; without, null and None as the reference writes them."""
    if duration <= 0:
        raise ValueError("duration must be positive")
    ok = [r for r in results if r.success]
    counts = output_token_counts(ok, count_tokens)  # ours
    reference = reference_output_counts(ok, counts, count_tokens)  # the bounty client's: every reference key's
    total_input = sum(r.prompt_len for r in ok)
    total_output = sum(reference)
    tpots = [(r.latency - r.ttft) / (n - 1) for r, n in zip(ok, reference) if n > 1]
    m: dict[str, float | int] = {
        "duration": duration,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(ok) / duration,
        "request_goodput:": None,  # sic: the reference key has the colon; filled below when SLOs are given
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "output_tokens_from_usage": counts.from_usage,
        "output_tokens_retokenized": counts.retokenized,
        "total_output_tokens_counted": sum(counts.output),
    }
    m.update(distribution("ttft", (r.ttft for r in ok), percentiles))
    m.update(distribution("tpot", tpots, percentiles))
    m.update(distribution("itl", (gap for r in ok for gap in r.itl), percentiles))  # per event: the reference's
    token_itl: list[float] = []
    sources: dict[str, int] = {}
    for r in ok:
        counts, source = event_token_counts(r, count_tokens)
        sources[source] = sources.get(source, 0) + 1
        token_itl.extend(per_token_itl(r.itl, counts))
    m.update(distribution("token_itl", token_itl, percentiles))  # per token: ours
    m["token_itl_counts_from"] = sources
    m.update(distribution("e2el", (r.latency for r in ok), percentiles))
    m["tput_per_gpu"] = m["total_token_throughput"] / tput_per_gpu_divisor
    m["tput_per_gpu_divisor"] = tput_per_gpu_divisor
    median_tpot = m["median_tpot_ms"]
    m["interactivity"] = 1000.0 / median_tpot if median_tpot else 0.0
    good = good_requests(ok, reference, goodput) if goodput else None
    m["good_requests"] = good
    if good is not None:
        m["request_goodput:"] = good / duration
    return m


@dataclass(frozen=True)
class PointFigures:
    """One point's figures, typed where they are computed: the reference client's keys, in its order (a record
    writes them at its top level byte for byte, docs/metrics.md), and ours (under ``inferencemax`` or beside the
    reference keys: tput_per_gpu, interactivity)."""

    reference: Mapping[str, Any]  # duration, completed, ..., p99_e2el_ms: the reference client's JSON keys
    failed: int
    output_tokens_from_usage: int
    output_tokens_retokenized: int
    total_output_tokens_counted: int
    token_itl_counts_from: Mapping[str, int]
    tput_per_gpu: float
    tput_per_gpu_divisor: float
    interactivity: float
    good_requests: int | None = None  # within every --goodput SLO; None without SLOs

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> "PointFigures":
        """Split :func:`compute_metrics`' result into the reference's keys and ours."""
        ours = {f.name for f in fields(cls)} - {"reference"}
        return cls(reference=MappingProxyType({k: v for k, v in metrics.items() if k not in ours}),
                   **{k: metrics[k] for k in ours})

    def __getitem__(self, key: str) -> Any:
        """A figure by its key, the reference's or ours (``figures["median_itl_ms"]``)."""
        return self.reference[key] if key in self.reference else getattr(self, key)
