"""The reference-parity load generator (``--client reference``): the bounty client's request semantics on aiohttp.

Why a second client: B200 baselines and leaderboards were made with kimbochen/bench_serving
(``backend_request_func.py``, ``async_request_openai_completions``), whose way of timing differs from
ours (docs/metrics.md, "Two clients"). This one reproduces it, so that a team can show the numbers
the bounty's runner would have written for the same server. Read from its source (commit 00f9ee36):

- a new ``aiohttp.ClientSession`` per request (``trust_env=True``, a 6 h total timeout), so every
  request opens its own connection;
- the clock starts once the session exists and the payload is built, just before ``post`` (so the
  connect is inside TTFT);
- the body is iterated as aiohttp gives it (line by line), each piece decoded and split on ``\\n``; a
  line is stripped, ``:`` comments, empty lines and ``[DONE]`` are skipped, ``data: ``/``data:`` is
  removed; a piece that is not JSON is skipped;
- a chunk with non-empty ``choices`` is stamped after it was decoded and parsed; the first gives TTFT
  (a second clock reading, as there), later ones the ITL gaps; E2EL is the last one's stamp;
- ``usage`` is read only from a chunk without ``choices``; an error chunk (no ``choices``, no
  ``usage``) is ignored; success means a ``choices`` chunk arrived; a non-200 answer fails with its
  reason;
- the payload is the reference's, and the header ``Authorization: Bearer <key>`` is sent always, with
  ``None`` for a missing key, as there (the key comes from ``--api-key-env``; it is never logged or saved).

What it adds, without changing a figure: live progress counters, the stall and abort checks of
``loadgen.run_load`` (which drives it), the response id and ``usage.prompt_tokens`` for our token
checks, and where each event's text ends (for our per-token ITL, ``*_token_itl_ms``).
"""
from __future__ import annotations

import json
import time
import traceback
from array import array

import aiohttp

from pytest_inferencemax.measure.loadgen import ClientConfig, LiveStats, RequestResult, note_malformed
from pytest_inferencemax.measure.workload import RequestSpec

TIMEOUT = aiohttp.ClientTimeout(total=6 * 60 * 60)  # the reference's AIOHTTP_TIMEOUT


def sse_data(line: str) -> str | None:
    """A line's JSON text as the reference extracts it, or None for a line it skips."""
    line = line.strip()
    if not line or line.startswith(":"):
        return None
    if line.startswith("data:"):
        line = line[6:] if line.startswith("data: ") else line[5:]
    line = line.strip()
    return None if not line or line == "[DONE]" else line


def reference_payload(client: ClientConfig, spec: RequestSpec) -> dict:
    """The reference's request body: the same fields, in the same order, ``extra_body`` merged last."""
    body = {"model": client.model, "prompt": spec.prompt, "temperature": 0.0, "best_of": 1,
            "max_tokens": spec.output_len, "logprobs": None, "stream": True,
            "stream_options": {"include_usage": True}}
    if client.ignore_eos:
        body["ignore_eos"] = True
    if client.extra_body:
        body.update(client.extra_body)
    return body


def reference_headers(client: ClientConfig) -> dict[str, str]:
    """``Authorization: Bearer <key>``, sent whether or not a key is set (then ``Bearer None``, as there)."""
    return {"Authorization": f"Bearer {client.api_key}"}


class ReferenceSender:
    """``loadgen.Sender`` with the reference client's semantics (module doc)."""

    arrival_clock = "reference"  # stamped after decoding and parsing each chunk

    def __init__(self, client: ClientConfig) -> None:
        self.client = client
        self.url = client.url
        self.headers = reference_headers(client)

    async def send(self, spec: RequestSpec, live: LiveStats | None) -> RequestResult:
        out = RequestResult(prompt_len=spec.prompt_len, output_len_requested=spec.output_len)
        out.itl = array("d")
        texts: list[str] = []
        chars = 0
        async with aiohttp.ClientSession(trust_env=True, timeout=TIMEOUT) as session:
            payload = reference_payload(self.client, spec)
            st = out.start = time.perf_counter()
            last = st
            try:
                async with session.post(url=self.url, json=payload, headers=self.headers) as response:
                    if response.status != 200:
                        out.error = f"HTTP {response.status} {response.reason or ''}".rstrip()
                        return out
                    async for piece in response.content:
                        if live is not None:
                            live.last_progress = time.perf_counter()
                        if not piece:
                            continue
                        for line in piece.decode("utf-8").split("\n"):
                            if (text := sse_data(line)) is None:
                                continue
                            try:
                                data = json.loads(text)
                            except json.JSONDecodeError:
                                note_malformed(out, text)  # skipped, as the reference skips it; counted
                                continue
                            if out.response_id is None and isinstance(data, dict):
                                out.response_id = data.get("id")
                            if choices := data.get("choices"):
                                stamp = time.perf_counter()
                                if out.events == 0:
                                    out.ttft = time.perf_counter() - st
                                else:
                                    out.itl.append(stamp - last)
                                last = stamp
                                out.events += 1
                                text = choices[0].get("text") or ""
                                texts.append(text)
                                chars += len(text)
                                out.event_text_ends.append(chars)
                                if live is not None:
                                    live.streamed_events += 1
                            elif usage := data.get("usage"):
                                out.output_tokens = usage.get("completion_tokens")
                                out.server_prompt_tokens = usage.get("prompt_tokens")
            except Exception:  # noqa: BLE001 - the reference records any failure as the request's error
                out.error = traceback.format_exc(limit=2).strip().splitlines()[-1]
                return out
        out.generated_text = "".join(texts)
        if out.events == 0:
            out.error = "Never received a valid chunk to calculate TTFT."
            return out
        out.success = True
        out.latency = last - st
        return out

    async def close(self) -> None:
        return None  # nothing pooled: each request had its own session

