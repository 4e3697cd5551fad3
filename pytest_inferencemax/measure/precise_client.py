"""The precise client: pooled keep-alive connections over ``http_stream``, each read stamped on arrival (the
kernel's receive stamp where the socket gives one), before any parsing, and given to the events it completes.
TTFT is the time to the first event with non-empty ``choices``; ITL the gaps between such events; E2EL the time to
the last one; output tokens come from the final ``usage`` event (docs/metrics.md). Hand-written on ``http_stream``
rather than aiohttp for those receive stamps."""
from __future__ import annotations

import asyncio
import json
import time

from pytest_inferencemax.measure.http_stream import HTTPStreamError, StreamingClient
from pytest_inferencemax.measure.loadtypes import ArrivalClock, ClientConfig, LiveStats, RequestResult, note_malformed
from pytest_inferencemax.measure.sse import DONE_BYTES, SSEParser
from pytest_inferencemax.measure.workload import RequestSpec

try:  # msgspec decodes an event several times faster than json; the client's CPU is its capacity
    from msgspec.json import decode as decode_json
except ImportError:  # pragma: no cover - msgspec is a dependency; kept working without it
    decode_json = json.loads


class PreciseSender:
    """Our client: pooled keep-alive connections over ``http_stream``, reads stamped on arrival."""

    def __init__(self, client: ClientConfig, concurrency: int) -> None:
        self.client = client
        self.http = StreamingClient(client.base_url, limit=concurrency, headers=client.headers(),
                                    kernel_stamps=client.kernel_stamps)
        self.arrival_clock = ArrivalClock.KERNEL if self.http.kernel_stamps else ArrivalClock.READ

    async def send(self, spec: RequestSpec, live: LiveStats | None) -> RequestResult:
        return await send_request(self.http, self.client, spec, live)

    async def close(self) -> None:
        await self.http.close()


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
