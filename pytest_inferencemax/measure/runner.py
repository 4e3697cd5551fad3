"""One point measured: workload -> load generator -> metrics and self-checks (a :class:`Measurement`).

Turning a measurement into a record and writing it is the results stage's job
(``results/build.py``); the pytest fixture and ``cli.bench`` call that, which calls this.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from pytest_inferencemax.measure.loadtypes import ClientConfig, LiveStats, LoadResult
from pytest_inferencemax.measure.checks import (
    ClientCheck, GoodputCheck, InitialRequestCheck, StreamCheck, client_record, goodput_check, initial_request_record,
    stream_check,
)
from pytest_inferencemax.measure.metrics import PointFigures, compute_metrics, reference_output_lens
from pytest_inferencemax.measure.multiclient import run_client_load
from pytest_inferencemax.serve.prefix_cache import PrefixCacheCheck, cache_record, read_counters, reset_cache
from pytest_inferencemax.serve.telemetry import Telemetry, TelemetrySampler
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.progress import Progress, last_log_line, log_tail
from pytest_inferencemax.measure.token_check import TokenCheck, check_tokens
from pytest_inferencemax.measure.workload import Workload, random_workload, token_counter
from pytest_inferencemax.errors import PointError


DEATH_GRACE_S = 3.0  # after a run with failed requests: how long to watch for the server's death


def default_request_timeout(osl: int) -> float:
    """A per-request deadline from the output length: 300 s plus 0.5 s per output token."""
    return 300.0 + 0.5 * osl


@dataclass(frozen=True)
class RunSettings:
    """How points run, whatever the point."""

    seed: int = 0
    request_timeout: float | None = None  # None: default_request_timeout(osl)
    save_detailed: bool = False
    stall_timeout: float | None = 300.0  # seconds without any bytes while requests are in flight
    client_procs: int = 1  # client processes the load is spread over
    client: str = "precise"  # the load generator: "precise" or "reference" (plan.values.ClientKind)
    client_lag_limit_ms: float | None = None  # None: looplag.lag_limit_ms of the point's median gap
    extra_body: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    telemetry_interval: float = 1.0  # seconds between samples of /metrics and the GPUs; 0: no sampling
    gpu_ids: tuple[str, ...] | None = None  # the server's GPUs (None: every GPU the tool reports)
    goodput: dict[str, float] | None = None  # SLOs in ms (--goodput): request_goodput: and ours.goodput
    cache_reset_engine: str | None = None  # empty this engine's prefix cache before the point (None: leave it)
    # the request fields that ask every request for exactly max_tokens (serve/engines.py); () for an engine without
    ignore_eos_fields: tuple[tuple[str, Any], ...] = (("ignore_eos", True),)

    @classmethod
    def from_options(cls, values: Any, **more: Any) -> "RunSettings":
        """The fields a run reads, taken by name from ``values``: pytest's ``Settings`` or a command's parsed
        arguments, both made from the one option table (``plan/options.py``); ``more`` adds or replaces."""
        taken = {f.name: getattr(values, f.name) for f in fields(cls) if hasattr(values, f.name)}
        return cls(**{**taken, **more})


@dataclass
class Measurement:
    """What one point measured, typed, before it becomes a record: the requests' results, the workload, the
    figures and the self-checks."""

    point: Point
    load: LoadResult
    workload: Workload
    figures: PointFigures
    request_timeout: float
    client_check: ClientCheck
    prefix_cache: PrefixCacheCheck
    token_check: TokenCheck
    stream: StreamCheck
    goodput: GoodputCheck | None = None
    aborted: str | None = None  # why the point was cut short (the figures cover the requests that finished)
    telemetry: Telemetry | None = None  # the server's and the GPUs' samples through the point
    aborted_report: str = ""  # the same with the server log's tail, for the failure message
    initial_request: InitialRequestCheck | None = None  # the initial test request's outcome (499c0b1's client)
    output_lens: list[int] = field(default_factory=list)  # the bounty client's per-request output counts

    @property
    def initial_request_failed(self) -> bool:
        return bool(self.initial_request and self.initial_request.success is False)


def measure_point(
    point: Point,
    *,
    base_url: str,
    served_model: str,
    tokenizer: Any,
    settings: RunSettings,
    progress: Progress,
    abort_check: Callable[[], str | None] | None = None,
    server_log: Path | None = None,
) -> Measurement:
    """Measure ``point`` against the server at ``base_url``; :class:`PointAborted` when it was cut short."""
    workload = random_workload(tokenizer, input_len=point.isl, output_len=point.osl, num_prompts=point.num_prompts,
                               range_ratio=point.range_ratio, seed=settings.seed, builder=point.client.prompt_builder)
    timeout = settings.request_timeout or default_request_timeout(point.osl)
    client = ClientConfig(base_url=base_url, model=served_model, request_timeout=timeout,
                          extra_body=dict(settings.extra_body), api_key=settings.api_key, client=settings.client,
                          ignore_eos=bool(settings.ignore_eos_fields), ignore_eos_fields=settings.ignore_eos_fields)
    initial = "1 initial test request, " if point.client.initial_test_request else ""
    progress.line(f"inferencemax: {point.id}: {initial}{point.num_warmups} warmups, then {point.num_prompts} "
                  f"requests at concurrency {point.conc} (ISL {point.isl}, OSL {point.osl}), {settings.client} client")
    reset = (reset_cache(base_url, settings.cache_reset_engine, settings.api_key)
             if settings.cache_reset_engine else None)  # before the counters, so that they show this point alone
    if reset is not None and not reset[0]:
        progress.line(f"inferencemax: {point.id}: WARNING: the prefix cache was not reset: {reset[1]}")
    cache_before, cache_why = read_counters(base_url, api_key=settings.api_key)
    on_tick = lambda live: progress.status(point_status(point.id, live, server_log))  # noqa: E731
    sampler = (TelemetrySampler(base_url, interval=settings.telemetry_interval, api_key=settings.api_key,
                                gpu_ids=settings.gpu_ids) if settings.telemetry_interval else None)
    with sampler or nullcontext():
        load = run_client_load(client, workload.requests, concurrency=point.conc, num_warmups=point.num_warmups,
                               initial_test=point.client.initial_test_request, procs=settings.client_procs,
                               on_tick=on_tick, abort_check=abort_check, stall_timeout=settings.stall_timeout,
                               on_timed=(lambda: sampler.mark("start")) if sampler else None)
        if sampler:
            sampler.mark("end")
    progress.done()
    if not load.aborted and abort_check is not None:
        # the server may have died faster than the periodic check: requests then fail at once,
        # while the dying process may take a moment to be seen as gone
        load.aborted = abort_check()
        deadline = time.monotonic() + (DEATH_GRACE_S if any(not r.success for r in load.results) else 0.0)
        while not load.aborted and time.monotonic() < deadline:
            time.sleep(0.1)
            load.aborted = abort_check()
    report = ""
    if load.aborted:
        tail = f"\n--- last lines of {server_log} ---\n{log_tail(server_log)}" if server_log else ""
        report = f"{point.id} stopped: {load.aborted}{tail}"
        load.duration = max(load.duration, 1e-9)  # cut short before or in the warmups: no timed run, no figures
    count_tokens = token_counter(tokenizer)
    metrics = compute_metrics(load.results, load.duration, tput_per_gpu_divisor=point.tput_per_gpu_divisor,
                              count_tokens=count_tokens, goodput=settings.goodput)
    cache_after, why_after = read_counters(base_url, api_key=settings.api_key)
    first_len = workload.requests[0].prompt_len if workload.requests else 0
    ignore_eos = client.asks_ignore_eos(client.payload(workload.requests[0])) if workload.requests else True
    return Measurement(
        point=point, load=load, workload=workload, figures=PointFigures.of(metrics), request_timeout=timeout,
        client_check=client_record(load, float(metrics.get("median_itl_ms") or 0.0), settings.client_lag_limit_ms),
        stream=stream_check(load.results),
        goodput=goodput_check(settings.goodput, metrics["good_requests"], len(load.results)),
        prefix_cache=cache_record(cache_before, cache_after, cache_why or why_after, first_len,
                                  point.num_warmups + (load.initial_request is not None), reset),  # repeats of prompt 0
        token_check=check_tokens(load.results, count_tokens, special_tokens=special_token_count(tokenizer),
                                 ignore_eos=ignore_eos),
        aborted=load.aborted, aborted_report=report, telemetry=sampler.telemetry if sampler else None,
        initial_request=initial_request_record(point, load),
        output_lens=reference_output_lens(load.results, count_tokens),
    )


def point_status(label: str, live: LiveStats, server_log: Path | None) -> str:
    """``[gptoss-1024-1024-c4] 1m02s 37/40 req, 812 tok/s | <server log line>``."""
    elapsed = live.elapsed
    rate = live.streamed_events / elapsed if elapsed > 0 else 0.0
    minutes, seconds = divmod(int(elapsed), 60)
    text = f"[{label}] {minutes}m{seconds:02d}s {live.done}/{live.total} req"
    if live.failed:
        text += f" ({live.failed} failed)"
    text += f", {rate:,.0f} tok/s"
    log = last_log_line(server_log, 60)
    return f"{text} | {log}" if log else text


def special_token_count(tokenizer: Any) -> int:
    """Tokens the tokenizer adds around a text (a BOS): the server counts them in usage.prompt_tokens,
    the reference client's prompt length does not."""
    try:
        return max(0, len(tokenizer.encode("hello")) - len(tokenizer.encode("hello", add_special_tokens=False)))
    except (TypeError, ValueError):
        return 0


class PointAborted(PointError):
    """The point was cut short (the server died, or a stall); the message says why. ``record_path`` is
    the point's record, written before this was raised (with the requests that finished)."""

    def __init__(self, message: str, record_path: Path | None = None) -> None:
        super().__init__(message)
        self.record_path = record_path


class InitialRequestFailed(PointAborted):
    """The stage's client sent its initial test request and it failed: as the bounty client (499c0b1), the
    point stops before its timed run, with the client's own reason and the request's error."""
