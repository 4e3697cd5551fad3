"""A deliberately faulty OpenAI-compatible server for fault tests (no real server misbehaves on cue).

Modes: ``hang`` accepts streaming completions and never answers; ``midstream`` sends a few
token events and then goes silent (after ``ok_streams`` streams that complete); ``ok`` streams normally; ``quirky`` streams what clients must
survive (usage on token events that disagrees with the final usage, an error event without
choices, a malformed event, a comment line); ``malformed`` streams normally but sends a broken JSON
event after the first token (and no prompt_tokens in its usage); ``error500`` answers streaming
requests with HTTP 500; ``unhealthy`` answers ``/health`` with 503 (a server still loading) and
counts the checks in ``health_checks``; ``raw`` streams the bytes given in ``raw``, one write each, and
nothing else (for exact SSE lines); ``fail_first`` answers the first streaming request with HTTP 500 and
streams normally after it.
Every completion request's client port and headers are kept in ``peers`` and ``headers``. Non-streaming requests (the
readiness check) and ``/health`` always work, so the fault shows only during a point.
Non-streaming answers carry no logprobs (like a server that cannot return prompt logprobs),
except in mode ``logprobs``, which answers ``echo``/``logprobs`` requests like vLLM (one
made-up logprob of -1.0 per whitespace-separated prompt word), and mode ``logprobs_under_load``, whose logprobs are
-3.0 for a request that overlaps another one (each answer takes 50 ms): right alone, wrong in a batch, as a kernel
can be. Streams report ``calibration.prompt_tokens`` of the request body (``--extra-body``) as their prompt tokens, else
1. ``/v1/models`` reports
``max_model_len`` (4096) for the model ``faulty``.
Runs in a background thread on 127.0.0.1 with a free port.
"""
from __future__ import annotations

import asyncio
import json

from aiohttp import web

from loopback_server import LoopbackServer


class FaultyServer(LoopbackServer):
    def __init__(self, mode: str, tokens_before_stall: int = 3, models: tuple[str, ...] = ("faulty",),
                 ok_streams: int = 0, prompt_tokens: bool = True, raw: tuple[bytes, ...] = ()) -> None:
        super().__init__()
        self.mode = mode
        self.raw = raw  # mode raw: the stream's bytes, written one item at a time
        self.stream_requests = 0  # streaming completion requests received
        self.prompt_tokens = prompt_tokens  # False: usage without prompt_tokens (nothing to check the ISL against)
        self.ok_streams = ok_streams  # midstream: this many streams complete before the others stall
        self.streams = 0
        self.models = models  # what /v1/models lists (the first with max_model_len 4096)
        self.tokens_before_stall = tokens_before_stall
        self.peers: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.health_checks = 0
        self.echo_in_flight = 0  # logprobs_under_load: echo requests being answered now
        self.echo_overlapped = 0  # ... and how many of them overlapped another one

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)

    async def _health(self, request: web.Request) -> web.Response:
        self.health_checks += 1
        return web.Response(status=503, text="loading") if self.mode == "unhealthy" else web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "max_model_len": 4096}
                                                              for m in self.models]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.peers.append(request.transport.get_extra_info("peername")[1])
        self.headers.append(dict(request.headers))
        if not body.get("stream"):
            if self.mode == "logprobs" and body.get("echo") and body.get("logprobs"):
                return web.json_response(_echo_logprobs(str(body.get("prompt", ""))))
            if self.mode == "logprobs_under_load" and body.get("echo") and body.get("logprobs"):
                return web.json_response(await self._echo_under_load(str(body.get("prompt", ""))))
            return web.json_response({"choices": [{"index": 0, "text": "x"}],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        self.stream_requests += 1
        if self.mode == "hang":
            await self.stopped()
            return web.Response(status=503)
        if self.mode == "error500" or (self.mode == "fail_first" and self.stream_requests == 1):
            return web.Response(status=500, text="boom")
        if self.mode == "raw":
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for piece in self.raw:
                await resp.write(piece)
                await asyncio.sleep(0.005)
            return resp
        if self.mode == "quirky":
            return await _quirky(request, body.get("max_tokens", 1))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        n = body.get("max_tokens", 1)
        self.streams += 1
        stalls = self.mode == "midstream" and self.streams > self.ok_streams
        limit = self.tokens_before_stall if stalls else n
        for i in range(min(n, limit)):
            await resp.write(b"data: " + json.dumps({"choices": [{"index": 0, "text": "t"}]}).encode() + b"\n\n")
            if self.mode == "malformed" and i == 0:
                await resp.write(b'data: {"choices": [{"index": 0, "text": "t"\n\n')
            await asyncio.sleep(0.01)
        if stalls:
            await self.stopped()
            return resp
        prompt = (body.get("calibration") or {}).get("prompt_tokens", 1)  # --extra-body, as the calibration server
        usage = {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": n}}
        if self.mode == "malformed" or not self.prompt_tokens:
            del usage["usage"]["prompt_tokens"]
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        return resp

    async def _echo_under_load(self, prompt: str) -> dict:
        """-1.0 per token for a request answered alone, -3.0 when another one overlaps it."""
        self.echo_in_flight += 1
        overlapped = self.echo_in_flight > 1
        try:
            await asyncio.sleep(0.05)  # the server's compute time: requests sent together overlap
            overlapped = overlapped or self.echo_in_flight > 1
        finally:
            self.echo_in_flight -= 1
        self.echo_overlapped += overlapped
        return _echo_logprobs(prompt, -3.0 if overlapped else -1.0)


async def _quirky(request: web.Request, n: int) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(n):  # usage on token events claims 999 tokens: only the final usage event counts
        event = {"id": "q-1", "choices": [{"index": 0, "text": "t"}], "usage": {"completion_tokens": 999}}
        await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        if i == 0:
            await resp.write(b": ping\n\ndata: {\"error\": {\"message\": \"transient\"}}\n\ndata: {not json\n\n")
        await asyncio.sleep(0.01)
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": n}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return resp




def _echo_logprobs(prompt: str, logprob: float = -1.0) -> dict:
    """vLLM's shape for echo=true, logprobs=1, max_tokens=1: the prompt's tokens (first without a logprob) + one."""
    tokens = prompt.split() + ["x"]
    lps = [None] + [logprob] * (len(tokens) - 1)
    top = [None] + [{t: logprob} for t in tokens[1:]]
    return {"choices": [{"index": 0, "text": prompt + "x",
                         "logprobs": {"tokens": tokens, "token_logprobs": lps, "top_logprobs": top,
                                      "text_offset": list(range(len(tokens)))}}],
            "usage": {"prompt_tokens": len(tokens) - 1, "completion_tokens": 1}}
