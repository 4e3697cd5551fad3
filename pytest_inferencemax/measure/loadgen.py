"""The load generator: a closed loop of streaming ``/v1/completions`` requests.

asyncio (uvloop when installed) over the lean streaming client of ``http_stream``. Semantics follow the InferenceMAX client
(docs/metrics.md): at most ``concurrency`` requests in flight, sent in workload order
with no pacing (request rate inf); ``num_warmups`` copies of the first request run first
under their own limit and are discarded; the timer starts after them. Each read's arrival
time is taken before any parsing and given to the events it completes. TTFT is the time to
the first event with non-empty ``choices``; ITL the gaps between such events; E2EL the
time to the last one; output tokens come from the final ``usage`` event.
"""
from __future__ import annotations

import asyncio
import gc
from array import array
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

from pytest_inferencemax.measure.aio import run_async  # noqa: F401  (the loop every client runs on)
from pytest_inferencemax.serve.api import auth_headers
from pytest_inferencemax.measure.http_stream import HTTPStreamError, StreamingClient
from pytest_inferencemax.measure.looplag import LoopLagMonitor, LoopLag
from pytest_inferencemax.measure.sse import DONE_BYTES, SSEParser

try:  # msgspec decodes an event several times faster than json; the client's CPU is its capacity
    from msgspec.json import decode as decode_json
except ImportError:  # pragma: no cover - msgspec is a dependency; kept working without it
    decode_json = json.loads
from pytest_inferencemax.measure.workload import RequestSpec

from pytest_inferencemax.plan.values import CLIENTS  # noqa: F401  (re-exported: the load generators)



@dataclass(frozen=True)
class ClientConfig:
    """Where and how to send requests."""

    base_url: str
    model: str  # the served model name put in each payload
    endpoint: str = "/v1/completions"
    request_timeout: float = 3600.0  # seconds, per request, connect to last byte
    ignore_eos: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)  # never printed or saved
    kernel_stamps: bool | None = None  # stamp reads with the kernel's receive time; None: where supported
    client: str = "precise"  # which load generator: "precise" (this module) or "reference" (refclient)

    def __post_init__(self) -> None:
        if self.client not in CLIENTS:
            raise ValueError(f"unknown client {self.client!r}: choose one of {', '.join(CLIENTS)}")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.endpoint

    def payload(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": spec.prompt,
            "temperature": 0.0,
            "best_of": 1,
            "max_tokens": spec.output_len,
            "logprobs": None,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body["ignore_eos"] = True
        body.update(self.extra_body)
        return body

    def headers(self) -> dict[str, str]:
        return auth_headers(self.api_key)


@dataclass(slots=True)
class RequestResult:
    """What one request measured. Times are ``time.perf_counter()`` seconds."""

    prompt_len: int
    output_len_requested: int
    success: bool = False
    error: str = ""
    start: float = 0.0
    ttft: float = 0.0
    latency: float = 0.0  # E2EL: last choices event minus start
    # Per-event series are compact arrays (8 or 4 bytes an event, not a Python object each):
    # thousands of streams of thousands of events must fit in a small client.
    itl: Sequence[float] = field(default_factory=lambda: array("d"))  # gaps between events with choices
    event_tokens: Sequence[int] = field(default_factory=lambda: array("l"))  # tokens per event, from usage on every event
    event_text_ends: Sequence[int] = field(default_factory=lambda: array("l"))  # where each event's text ends
    output_tokens: int | None = None  # usage.completion_tokens from the server
    server_prompt_tokens: int | None = None  # usage.prompt_tokens from the server
    generated_text: str = ""
    events: int = 0  # SSE events with choices
    response_id: str | None = None  # the "id" of the server's first chunk (matches server logs)
    malformed_events: int = 0  # stream events that were not JSON objects: skipped, as the reference skips them
    malformed_example: str | None = None  # the first of them, shortened


@dataclass
class LiveStats:
    """Counters the progress display reads while a run goes on."""

    total: int
    done: int = 0
    failed: int = 0
    streamed_events: int = 0  # events with choices so far (about one token each on vLLM)
    in_flight: int = 0
    started: float = field(default_factory=time.perf_counter)
    last_progress: float = field(default_factory=time.perf_counter)  # last bytes received or request ended

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class LoadResult:
    results: list[RequestResult]
    duration: float  # seconds of the timed run, warmups excluded
    started_at: str  # ISO 8601 wall-clock time the timed run began
    warmups: int
    warmup_failures: int
    aborted: str | None = None  # why the run was cut short, if it was
    lag: LoopLag | None = None  # the client's own event-loop lag during the timed run
    client_cpu_s: float = 0.0  # CPU seconds the client process(es) used during the timed run
    client_procs: int = 1
    t0: float = 0.0  # perf_counter() when the timed run began (one clock for all client processes)
    arrival_clock: str = "read"  # "kernel": reads stamped with the kernel's receive time; "read": when read
    client: str = "precise"  # the load generator that made it (ClientConfig.client)


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
    out.generated_text = "".join(state.texts)
    if out.events == 0:
        out.error = out.error or "the stream ended without any event carrying choices"
        return out
    out.success = not out.error
    out.latency = state.last - out.start
    return out  # event_tokens is used only when usage came on every event (metrics.event_token_counts)


def note_malformed(out: RequestResult, data: bytes | str) -> None:
    """Count a stream event that is not a JSON object (the figures skip it; the record counts it)."""
    out.malformed_events += 1
    if out.malformed_example is None:
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        out.malformed_example = text[:120]


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
                obj = json.loads(data.decode("utf-8", errors="replace"))  # stray bytes in the text
            except ValueError:
                obj = None  # not JSON: skipped, as the reference client does, but counted
        if not isinstance(obj, dict):
            note_malformed(out, data)
            return
        if out.response_id is None:
            out.response_id = obj.get("id")
        if obj.get("error"):
            err = obj["error"]
            out.error = "server error in stream: " + (err.get("message", str(err)) if isinstance(err, dict) else str(err))
            return
        choices = obj.get("choices")
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
            if usage.get("completion_tokens") is not None:
                out.output_tokens = self.usage_seen = int(usage["completion_tokens"])
            if usage.get("prompt_tokens") is not None:
                out.server_prompt_tokens = int(usage["prompt_tokens"])


async def run_load(
    client: ClientConfig,
    requests: Sequence[RequestSpec],
    *,
    concurrency: int,
    num_warmups: int = 0,
    on_tick: Callable[[LiveStats], None] | None = None,
    abort_check: Callable[[], str | None] | None = None,
    tick_interval: float = 1.0,
    stall_timeout: float | None = None,
    before_timed: Callable[[], None] | None = None,
) -> LoadResult:
    """Run warmups, then every request of the workload with ``concurrency`` in flight.

    ``before_timed`` is called between the warmups and the timed run (``multiclient`` holds each
    client process there until all are ready, so that their timed runs start together).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    sender = make_sender(client, concurrency)
    try:
        warm_fail = 0
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
                return LoadResult([], 0.0, "", num_warmups, num_warmups, f"during warmups: {exc}",
                                  client=client.client)
            warm_fail = sum(not r.success for r in warm_results)

        live = LiveStats(total=len(requests))
        sem = asyncio.Semaphore(concurrency)

        async def limited(spec: RequestSpec) -> RequestResult:
            async with sem:
                return await _tracked(sender, spec, live)

        if before_timed is not None:
            before_timed()
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
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
            lag = await monitor.stop()
            gc.unfreeze()
    finally:
        await sender.close()
    return LoadResult(list(results), duration, started_at, num_warmups, warm_fail, aborted, lag=lag, client_cpu_s=cpu,
                      t0=t0, arrival_clock=sender.arrival_clock, client=client.client)


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
    """Await ``gathered`` while calling the progress, abort and stall checks every ``interval`` s."""
    while True:
        done, _ = await asyncio.wait({gathered}, timeout=min(interval, stall_timeout or interval))
        if done:
            return gathered.result()
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
