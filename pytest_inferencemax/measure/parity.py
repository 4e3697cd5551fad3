"""Parity, the runs: one point run with both load generators, alternating, against the same server.

    python -m pytest_inferencemax.cli.parity --server-url http://127.0.0.1:8000 --model NAME --tokenizer PATH \\
        --isl 128 --osl 64 --conc 4 --parity-rounds 3 --out parity/

Runs precise, reference, precise, reference, … (``--parity-rounds`` of each), every run with its own
``cache_salt`` (so no run reuses KV blocks another left in the prefix cache) and the same prompts, and
reads the server's ``/metrics`` around each run. The table lists every reference key: both clients'
means over their rounds, the difference, each client's run-to-run spread, and under it the server's own
view of each run (judged in ``judge/parity.py``, rendered in ``publish/parity_report.py``). Judged (exit 1 when one fails): token totals identical in every run; for throughputs
and TPOT, the difference of the means within the larger of the two clients' run-to-run spreads (max -
min): a CPU server alone moves several percent between runs, so single runs prove nothing. TTFT, ITL
and E2E differences are shown and explained, not judged (docs/metrics.md, "Two clients").
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferencemax.plan.values import CLIENTS

from pytest_inferencemax.measure.figures import PARITY_IDENTICAL
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.multiclient import run_client_load
from pytest_inferencemax.measure.metrics import PERCENTILE_METRICS, compute_metrics
from pytest_inferencemax.serve.server_metrics import read_totals, server_view
from pytest_inferencemax.measure.workload import RequestSpec

COUNT_KEYS = PARITY_IDENTICAL  # the counts (measure/figures.py): identical in every run
RATE_KEYS = ("duration", "request_throughput", "output_throughput", "total_token_throughput")
# The latency keys compute_metrics writes (the reference's ttft/tpot/itl/e2el, and our token_itl)
LATENCY_KEYS = tuple(f"{stat}_{m}_ms" for m in PERCENTILE_METRICS for stat in ("mean", "median", "std", "p99"))
REFERENCE_KEYS = COUNT_KEYS + RATE_KEYS + LATENCY_KEYS


class ParityAborted(RuntimeError):
    """A parity run was cut short (the server died or stalled); the message says which run and why."""


@dataclass
class ParityRun:
    """One run of one client: its reference-key figures and the server's view of it."""

    client: str
    round: int
    figures: dict[str, float]
    server: dict[str, Any]
    failed: int = 0


def run_parity(point: str, base_url: str, model: str, requests: Sequence[RequestSpec], *, concurrency: int,
               num_warmups: int, rounds: int, count_tokens: Callable[[str], int] | None = None,
               api_key: str | None = None, extra_body: dict[str, Any] | None = None, request_timeout: float = 3600.0,
               on_run: Callable[[ParityRun], None] | None = None, abort_check: Callable[[], str | None] | None = None,
               stall_timeout: float | None = 300.0) -> list[ParityRun]:
    """``rounds`` runs of each client, alternating precise and reference (``judge.parity.judge`` compares them).

    ``abort_check`` and ``stall_timeout`` are ``run_load``'s (a dead or hung server stops the comparison
    with :class:`ParityAborted` instead of leaving the reference client waiting out its 6 h timeout)."""
    if rounds < 2:
        raise ValueError("parity needs at least 2 rounds per client: one run shows no run-to-run spread")
    runs: list[ParityRun] = []
    for rnd in range(1, rounds + 1):
        for kind in CLIENTS:
            client = ClientConfig(base_url=base_url, model=model, request_timeout=request_timeout, api_key=api_key,
                                  client=kind, extra_body={**(extra_body or {}), "cache_salt": uuid.uuid4().hex})
            before, _ = read_totals(base_url, api_key=api_key)
            load = run_client_load(client, requests, concurrency=concurrency, num_warmups=num_warmups,
                                   abort_check=abort_check, stall_timeout=stall_timeout)  # the reference: its process
            if load.aborted:
                raise ParityAborted(f"parity {point}: round {rnd} of the {kind} client stopped: {load.aborted}")
            view = server_view(before, read_totals(base_url, api_key=api_key)[0])
            m = compute_metrics(load.results, load.duration, tput_per_gpu_divisor=1, count_tokens=count_tokens)
            run = ParityRun(kind, rnd, {k: float(m[k]) for k in REFERENCE_KEYS},
                            {**view.as_dict(), "described": view.describe()}, int(m["failed"]))
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs
