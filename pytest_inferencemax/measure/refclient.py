"""The reference client (``--client reference``): the bounty client's request function on aiohttp.

Why a second client: the bounty's runner (and the B200 baselines) measured with kimbochen/bench_serving's
``async_request_openai_completions`` (``backend_request_func.py``), whose way of timing differs from ours
(docs/metrics.md, "Two clients"). This one reproduces it, so that a team can show the numbers the bounty's
runner would have written for the same server. Read from its ``main`` as each stage ran it: ``499c0b1``
(stage 1) and ``ee86723`` (stage 2), whose ``backend_request_func.py`` is byte-identical (and identical to
InferenceMAX's port at ``d053ae24e``):

- a new ``aiohttp.ClientSession`` per request (``trust_env=True``, a 6 h total timeout), so every
  request opens its own connection;
- the clock starts once the session exists and the payload is built, just before ``post`` (so the
  connect is inside TTFT);
- the body is iterated as aiohttp gives it, line by line; each line is stripped, an empty one skipped,
  ``data: `` (with its space) removed, ``[DONE]`` skipped, and anything else goes to ``json.loads``: a
  line that is not JSON (a ``:`` comment, ``data:`` without its space, an ``event:`` field) or not a JSON
  object raises, and the request fails with the formatted traceback as its error;
- a chunk with non-empty ``choices`` is stamped after it was parsed; the first gives TTFT (a second
  clock reading, as there), later ones the ITL gaps; E2EL is the last one's stamp;
- ``usage`` is read only from a chunk without ``choices`` (``output_tokens`` stays 0 without one; a
  usage without ``completion_tokens`` leaves it None, and the text is re-tokenized); an error chunk (no
  ``choices``, no ``usage``) is ignored; success means a ``choices`` chunk arrived; a non-200 answer
  fails with ``response.reason`` as its error;
- the payload is the reference's, and the header ``Authorization: Bearer <key>`` is sent always, with
  ``None`` for a missing key, as there (the key comes from ``--api-key-env``; it is never logged or saved).

How it runs (``runner`` through ``multiclient``): in a process of its own, on ``asyncio.run``'s default
loop (no uvloop), after ``gc.collect()`` and ``gc.freeze()`` as the client's ``main`` does, with no
loop-lag probe and no telemetry sampler there (the parent process samples the server and shows progress).
What it adds, without changing a figure: counters for the progress display (where the reference updates
its tqdm bar), the stall and abort checks of ``loadgen.run_load`` (one wake-up a tick), the response id
and ``usage.prompt_tokens`` for our token checks, and where each event's text ends (our per-token ITL).
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from array import array

import aiohttp

from pytest_inferencemax.measure.loadtypes import ArrivalClock, ClientConfig, LiveStats, RequestResult, note_malformed
from pytest_inferencemax.measure.workload import RequestSpec

NO_CHUNK = "Never received a valid chunk to calculate TTFT.This response will be marked as failed!"  # sic, as there
TIMEOUT = aiohttp.ClientTimeout(total=6 * 60 * 60)  # the reference's AIOHTTP_TIMEOUT


def reference_headers(client: ClientConfig) -> dict[str, str]:
    """``Authorization: Bearer <key>``, sent whether or not a key is set (then ``Bearer None``, as there)."""
    return {"Authorization": f"Bearer {client.api_key}"}


class ReferenceSender:
    """``loadtypes.Sender`` with the bounty client's semantics (module doc)."""

    arrival_clock = ArrivalClock.REFERENCE  # stamped after decoding and parsing each chunk

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
            payload = self.client.payload(spec)  # the same fields, in the same order, extra_body last
            st = out.start = time.perf_counter()
            last = st
            chunk = None
            try:
                async with session.post(url=self.url, json=payload, headers=self.headers) as response:
                    if response.status == 200:
                        async for chunk_bytes in response.content:
                            chunk_bytes = chunk_bytes.strip()
                            if not chunk_bytes:
                                continue
                            chunk = chunk_bytes.decode("utf-8").removeprefix("data: ")
                            if chunk == "[DONE]":
                                continue
                            data = json.loads(chunk)  # not JSON: raises, and the request fails, as there
                            if choices := data.get("choices"):
                                text = choices[0].get("text")
                                stamp = time.perf_counter()
                                if out.events == 0:
                                    out.ttft = time.perf_counter() - st
                                else:
                                    out.itl.append(stamp - last)
                                last = stamp
                                out.events += 1
                                texts.append(text or "")
                                chars += len(text or "")
                                out.event_text_ends.append(chars)
                                if out.response_id is None:
                                    out.response_id = data.get("id")
                                if live is not None:
                                    live.streamed_events += 1
                            elif usage := data.get("usage"):
                                out.reference_output_tokens = out.output_tokens = usage.get("completion_tokens")
                                out.server_prompt_tokens = usage.get("prompt_tokens")
                            elif data.get("error"):  # ignored there; counted for inferencemax.stream
                                out.error_events += 1
                        if out.events:
                            out.success = True
                        else:
                            out.error = NO_CHUNK
                        out.generated_text = "".join(texts)
                        out.latency = last - st
                    else:
                        out.error = response.reason or ""
            except Exception as exc:  # noqa: BLE001 - the reference records any failure as the request's error
                out.success = False
                out.error = "".join(traceback.format_exception(*sys.exc_info()))
                if isinstance(exc, (json.JSONDecodeError, AttributeError)) and chunk is not None:
                    note_malformed(out, chunk)  # the line it could not read, for inferencemax.stream
        return out

    async def close(self) -> None:
        return None  # nothing pooled: each request had its own session
