"""The load generator: a closed loop of streaming ``/v1/completions`` requests.

asyncio (uvloop when installed) over the lean streaming client of ``http_stream``. Semantics follow the
bounty client (docs/metrics.md), its phases as the stage's client version has them (plan/suite.py
``ClientVersion``): first, when asked (499c0b1), one initial test request of the first prompt, alone,
untimed and not counted, which must succeed or the run stops with the client's own reason; then
``num_warmups`` copies of the first request (ee86723) under their own limit, discarded; then the timed
run: at most ``concurrency`` requests in flight, sent in workload order with no pacing (request rate
inf). Each read's arrival time is taken before any parsing and given to the events it completes. TTFT
is the time to the first event with non-empty ``choices``; ITL the gaps between such events; E2EL the
time to the last one; output tokens come from the final ``usage`` event.

``run_load`` drives either client. For the reference client it adds nothing to the client's process that
the bounty client does not run there: no loop-lag probe and no ``gc.freeze`` at the timed run (its own
``gc.freeze`` comes before the loop starts, in ``multiclient``, as the bounty client's ``main`` does).
"""
from __future__ import annotations

import asyncio
import gc
import json
import time
from datetime import datetime, timezone
from typing import Callable, Protocol, Sequence

from pytest_inferencemax.measure.aio import run_async  # noqa: F401  (the loop every client runs on)
from pytest_inferencemax.measure.http_stream import HTTPStreamError, StreamingClient
from pytest_inferencemax.measure.loadtypes import (  # noqa: F401  (re-exported: the load generators' data)
    INITIAL_TEST_FAILED, ClientConfig, InitialRequest, LiveStats, LoadResult, RequestResult, note_malformed,
)
from pytest_inferencemax.measure.looplag import LoopLagMonitor
from pytest_inferencemax.measure.sse import DONE_BYTES, SSEParser
from pytest_inferencemax.measure.workload import RequestSpec
from pytest_inferencemax.plan.values import CLIENTS  # noqa: F401  (re-exported: the load generators)

try:  # msgspec decodes an event several times faster than json; the client's CPU is its capacity
    from msgspec.json import decode as decode_json
except ImportError:  # pragma: no cover - msgspec is a dependency; kept working without it
    decode_json = json.loads


class Sender(Protocol):
    """One load generator's way of sending a request and measuring it: the precise client below, or the
    reference-parity client (``refclient.ReferenceSender``). ``run_load`` drives either the same way."""

    arrival_clock: str  # how arrival times were taken: "kernel", "read" or "reference"

    async def send(self, spec: RequestSpec, live: LiveStats | None) -> RequestResult: ...

    async def close(self) -> None: ...


class PreciseSender:
    """Our client: pooled keep-alive connections over ``http_stream``, reads stamped on arrival."""

    def __init__(self, client: ClientConfig, concurrency: int) -> None:
        self.client = client
        self.http = StreamingClient(client.base_url, limit=concurrency, headers=client.headers(),
                                    kernel_stamps=client.kernel_stamps)
        self.arrival_clock = "kernel" if self.http.kernel_stamps else "read"

    async def send(self, spec: RequestSpec, live: LiveStats | None) -> RequestResult:
        return await send_request(self.http, self.client, spec, live)

    async def close(self) -> None:
        await self.http.close()


def make_sender(client: ClientConfig, concurrency: int) -> Sender:
    """The load generator ``client.client`` names."""
    if client.client == "reference":
        from pytest_inferencemax.measure.refclient import ReferenceSender  # aiohttp is imported only when asked for
        return ReferenceSender(client)
    return PreciseSender(client, concurrency)


class RunAborted(Exception):
    """Raised inside the run when the abort check names a reason."""


async def send_request(http: StreamingClient, client: ClientConfig, spec: RequestSpec,
                       live: LiveStats | None = None) -> RequestResult:
    """Send one streaming request and measure it."""
    out = RequestResult(prompt_len=spec.prompt_len, output_len_requested=spec.output_len)
    parser = SSEParser()
    state = _StreamState(out, live)

    def sink(body: bytes, arrived: float) -> None:
        if live is not None:
            live.last_progress = arrived
        for event in parser.feed(body, arrived):
            state.handle(event.raw, event.arrived)

    def sent(at: float) -> None:
        out.start = at

    body = json.dumps(client.payload(spec)).encode()
    out.start = time.perf_counter()  # until the request is on the socket (a failed connect keeps this)
    try:
        resp = await http.post(client.endpoint, body, sink, timeout=client.request_timeout, on_sent=sent)
        if resp.status != 200:
            out.error = f"HTTP {resp.status} {resp.reason}: {resp.body[:300].decode('utf-8', 'replace')}"
            return out
        for event in parser.close(time.perf_counter()):
            state.handle(event.raw, event.arrived)
    except asyncio.TimeoutError:
        out.error = f"request timed out after {client.request_timeout:g} s"
        return out
    except HTTPStreamError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    if parser.unreadable:  # a line the bounty client's json.loads fails on (sse.py): the request fails there too
        out.malformed_events += parser.unreadable
        out.malformed_example = out.malformed_example or parser.unreadable_example.decode("utf-8", "replace")
        out.error = out.error or ("stream line the bounty client cannot read (it fails the request): "
                                  f"{parser.unreadable_example!r}")
    out.generated_text = "".join(state.texts)
    if out.events == 0:
        out.error = out.error or "the stream ended without any event carrying choices"
        return out
    out.success = not out.error
    out.latency = state.last - out.start
    return out  # event_tokens is used only when usage came on every event (metrics.event_token_counts)


class _StreamState:
    """What one stream has shown so far; ``handle`` takes each event's data as it arrives."""

    __slots__ = ("out", "live", "last", "texts", "chars", "usage_seen")

    def __init__(self, out: RequestResult, live: LiveStats | None) -> None:
        self.out, self.live = out, live
        self.last = 0.0
        self.texts: list[str] = []
        self.chars = 0
        self.usage_seen = 0  # completion tokens the last usage said

    def handle(self, data: bytes, arrived: float) -> None:
        out = self.out
        if data == DONE_BYTES:
            return
        try:
            obj = decode_json(data)
        except ValueError:
            try:
                obj = json.loads(data.decode("utf-8"))  # what msgspec refuses and json takes (NaN), as there
            except ValueError:
                obj = None  # not JSON (or not UTF-8): the bounty client's json.loads fails the request
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or (choices and not isinstance(choices[0], dict)):
            note_malformed(out, data)  # its .get fails the request in the bounty client: so here
            out.error = out.error or f"stream event the bounty client cannot read (it fails the request): {data[:120]!r}"
            return
        if out.response_id is None:
            out.response_id = obj.get("id")
        if obj.get("error"):  # the bounty client ignores an error event (no choices, no usage): counted, not failed
            out.error_events += 1
        usage = obj.get("usage")
        if choices:
            if out.events == 0:
                out.ttft = arrived - out.start
            else:
                out.itl.append(arrived - self.last)
            out.events += 1
            text = choices[0].get("text") or ""
            self.texts.append(text)
            self.chars += len(text)
            out.event_text_ends.append(self.chars)
            if self.live is not None:
                self.live.streamed_events += 1
            self.last = arrived
            if usage and usage.get("completion_tokens") is not None:
                tokens = int(usage["completion_tokens"])
                out.event_tokens.append(tokens - self.usage_seen)
        if usage:
            completion = usage.get("completion_tokens")
            if completion is not None:
                out.output_tokens = self.usage_seen = int(completion)
            if not choices:  # the bounty client reads usage only from a chunk without choices
                out.reference_output_tokens = None if completion is None else int(completion)
            if usage.get("prompt_tokens") is not None:
                out.server_prompt_tokens = int(usage["prompt_tokens"])


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
