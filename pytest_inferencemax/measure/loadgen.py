"""The schedule: a closed loop of streaming ``/v1/completions`` requests, driven through whichever client the
point names (``clients.make_sender``: the precise or the reference client, peers behind ``loadtypes.Sender``).

Semantics follow the bounty client (docs/metrics.md), its phases as the stage's client version has them
(plan/suite.py ``ClientVersion``): first, when asked (499c0b1), one initial test request of the first prompt,
alone, untimed and not counted, which must succeed or the run stops with the client's own reason; then
``num_warmups`` copies of the first request (ee86723) under their own limit, discarded; then the timed run: at
most ``concurrency`` requests in flight, sent in workload order with no pacing (request rate inf); the stall and
abort checks beside it.

``run_load`` adds nothing to the reference client's process that the bounty client does not run there: no
loop-lag probe and no ``gc.freeze`` at the timed run (its own ``gc.freeze`` comes before the loop starts, in
``multiclient``, as the bounty client's ``main`` does).
"""
from __future__ import annotations

import asyncio
import gc
import time
from datetime import datetime, timezone
from typing import Callable, Sequence

from pytest_inferencemax.measure.clients import make_sender
from pytest_inferencemax.measure.loadtypes import (ClientConfig, InitialRequest, LiveStats,
                                                   LoadResult, RequestResult, Sender)
from pytest_inferencemax.measure.looplag import LoopLagMonitor
from pytest_inferencemax.measure.workload import RequestSpec


class RunAborted(Exception):
    """Raised inside the run when the abort check names a reason."""


async def run_load(
    client: ClientConfig,
    requests: Sequence[RequestSpec],
    *,
    concurrency: int,
    num_warmups: int = 0,
    initial_test: bool = False,
    on_tick: Callable[[LiveStats], None] | None = None,
    abort_check: Callable[[], str | None] | None = None,
    tick_interval: float = 1.0,
    stall_timeout: float | None = None,
    sync: Callable[[str], str | None] | None = None,
) -> LoadResult:
    """The initial test request when asked, then warmups, then every request of the workload with
    ``concurrency`` in flight.

    ``sync(phase)`` is called before the warmups (``"warmups"``) and before the timed run (``"timed"``); a
    reason it returns stops the run there (``multiclient`` holds each client process at both until all
    are ready, so that the initial request comes first and the timed runs start together)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    sender = make_sender(client, concurrency)
    loop = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"

    def stopped(reason: str | None, initial: InitialRequest | None = None, warmups: int = 0,
                warm_errors: Sequence[str] | None = None) -> LoadResult:
        """No timed run: stopped before it. Warmups cut short count as failed; finished ones by their errors."""
        failed = warmups if warm_errors is None else len(warm_errors)
        return LoadResult([], 0.0, "", warmups, failed, reason,
                          client=client.client, initial_request=initial, arrival_clock=sender.arrival_clock,
                          event_loop=loop, warmup_errors=list(warm_errors or ()))

    try:
        initial = None
        if initial_test and requests:  # 499c0b1: awaited alone, before anything else; not timed, not counted
            first_live = LiveStats(total=1)
            try:
                first = await _guarded(asyncio.ensure_future(_tracked(sender, requests[0], first_live)),
                                       abort_check, None, first_live, tick_interval, stall_timeout)
            except RunAborted as exc:
                return stopped(f"during the initial test request: {exc}")
            initial = InitialRequest(first.success, first.error, first.latency)
            if not initial.success:
                return stopped(initial.failure, initial)
        if sync is not None and (reason := sync("warmups")):
            return stopped(reason, initial)
        warm_errors: list[str] = []
        if num_warmups and requests:
            warm_sem = asyncio.Semaphore(concurrency)
            warm_live = LiveStats(total=num_warmups)

            async def warm() -> RequestResult:
                async with warm_sem:
                    return await _tracked(sender, requests[0], warm_live)

            try:
                warm_results = await _guarded(asyncio.gather(*(warm() for _ in range(num_warmups))),
                                              abort_check, None, warm_live, tick_interval, stall_timeout)
            except RunAborted as exc:
                return stopped(f"during warmups: {exc}", initial, num_warmups)
            warm_errors = [r.error or "unknown error" for r in warm_results if not r.success]

        live = LiveStats(total=len(requests))
        sem = asyncio.Semaphore(concurrency)

        async def limited(spec: RequestSpec) -> RequestResult:
            async with sem:
                return await _tracked(sender, spec, live)

        if sync is not None and (reason := sync("timed")):
            return stopped(reason, initial, num_warmups, warm_errors)
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        probe = not client.reference  # the bounty client's process runs no probe and no freeze here
        if probe:
            gc.collect()
            gc.freeze()  # keep the collector's pauses out of the timestamps
            monitor = LoopLagMonitor()
            monitor.start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        live.started = live.last_progress = t0
        aborted = None
        tasks = [asyncio.ensure_future(limited(s)) for s in requests]
        try:
            results = await _guarded(asyncio.gather(*tasks), abort_check, on_tick, live, tick_interval,
                                     stall_timeout)
        except RunAborted as exc:
            aborted = str(exc)  # the requests that had finished stay: the record shows what the point got to
            results = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        finally:
            duration = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            lag = await monitor.stop() if probe else None
            if probe:
                gc.unfreeze()
    finally:
        await sender.close()
    return LoadResult(list(results), duration, started_at, num_warmups, len(warm_errors), aborted, lag=lag,
                      client_cpu_s=cpu, t0=t0, arrival_clock=sender.arrival_clock, client=client.client,
                      initial_request=initial, event_loop=loop, warmup_errors=warm_errors)


async def _tracked(sender: Sender, spec: RequestSpec, live: LiveStats) -> RequestResult:
    live.in_flight += 1
    try:
        res = await sender.send(spec, live)
    finally:
        live.in_flight -= 1
        live.last_progress = time.perf_counter()
    live.done += 1
    live.failed += not res.success
    return res


def stall_reason(live: LiveStats, stall_timeout: float | None, now: float) -> str | None:
    """Why the run counts as stalled: requests in flight and no bytes for ``stall_timeout`` s."""
    if stall_timeout is None or live.in_flight == 0:
        return None
    quiet = now - live.last_progress
    if quiet < stall_timeout:
        return None
    return (f"stalled: no request made progress for {quiet:.0f} s with {live.in_flight} in flight "
            f"({live.done}/{live.total} done); limit --stall-timeout {stall_timeout:g} s")


async def _guarded(gathered: asyncio.Future, abort_check: Callable[[], str | None] | None,
                   on_tick: Callable[[LiveStats], None] | None, live: LiveStats,
                   interval: float, stall_timeout: float | None = None) -> list[RequestResult]:
    """Await ``gathered`` while calling the progress, abort and stall checks every ``interval`` s. Progress
    is also seen in the counters (a request ended, an event came), so a client that does not stamp each
    read (the reference client) is still watched for stalls."""
    seen = (live.done, live.streamed_events)
    while True:
        done, _ = await asyncio.wait({gathered}, timeout=min(interval, stall_timeout or interval))
        if done:
            return gathered.result()
        if (now_seen := (live.done, live.streamed_events)) != seen:
            seen, live.last_progress = now_seen, max(live.last_progress, time.perf_counter())
        if on_tick is not None:
            on_tick(live)
        reason = abort_check() if abort_check is not None else None
        reason = reason or stall_reason(live, stall_timeout, time.perf_counter())
        if reason:
            gathered.cancel()
            try:
                await gathered
            except (asyncio.CancelledError, Exception):
                pass
            raise RunAborted(reason)
