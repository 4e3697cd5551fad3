"""The streaming HTTP client at the protocol level, against hand-made byte-level servers (the faults
here are in the framing itself, which no real server produces on cue)."""
from __future__ import annotations

import asyncio
import json

import pytest

from pytest_inferencemax.measure.http_stream import StreamingClient, kernel_stamps_supported
from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.precise_client import send_request
from pytest_inferencemax.measure.workload import RequestSpec

STAMPS = [pytest.param(False, id="read-stamps"),
          pytest.param(True, id="kernel-stamps", marks=pytest.mark.skipif(
              not kernel_stamps_supported(), reason="no SO_TIMESTAMPING on this system"))]

SSE_OK = (b"data: " + json.dumps({"id": "c1", "choices": [{"index": 0, "text": "hi"}]}).encode() + b"\n\n"
          + b"data: " + json.dumps({"id": "c1", "choices": [], "usage": {"prompt_tokens": 2,
                                                                         "completion_tokens": 1}}).encode()
          + b"\n\ndata: [DONE]\n\n")


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    return head + await reader.readexactly(length)


async def serve(handler, fn):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await fn(f"http://127.0.0.1:{port}")
    finally:
        server.close()


def request(base: str, kernel_stamps: bool, timeout: float = 5.0, n: int = 1):
    async def go():
        client = ClientConfig(base_url=base, model="m", request_timeout=timeout, kernel_stamps=kernel_stamps)
        http = StreamingClient(base, limit=1, kernel_stamps=kernel_stamps)
        try:
            spec = RequestSpec(prompt="a b", prompt_len=2, output_len=1, target_prompt_len=2)
            return [await send_request(http, client, spec) for _ in range(n)]
        finally:
            await http.close()
    return go()


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_streamed_response_keep_alive_and_the_server_dropping_an_idle_connection(kernel_stamps):
    seen = []

    async def handler(reader, writer):
        # answers one request per connection, then closes it although it said keep-alive
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunked(SSE_OK))
        await writer.drain()
        writer.close()

    async def fn(base):
        results = await request(base, kernel_stamps, n=3)
        return results

    results = asyncio.run(serve(handler, fn))
    assert [r.success for r in results] == [True, True, True]  # each reused connection retried afresh
    assert results[0].response_id == "c1" and results[0].output_tokens == 1 and results[0].generated_text == "hi"
    assert len(seen) == 3 and seen[0].startswith(b"POST /v1/completions HTTP/1.1\r\n")
    assert b'"stream": true' in seen[0]


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_an_error_status_keeps_its_body(kernel_stamps):
    async def handler(reader, writer):
        await read_request(reader)
        body = b'{"error": {"message": "max_tokens is too large"}}'
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    (r,) = asyncio.run(serve(handler, lambda base: request(base, kernel_stamps)))
    assert not r.success and r.error.startswith("HTTP 400 Bad Request: ") and "max_tokens is too large" in r.error


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_a_stream_cut_off_midway_is_an_error_not_a_short_success(kernel_stamps):
    async def handler(reader, writer):
        await read_request(reader)
        part = SSE_OK.split(b"\n\n")[0] + b"\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
        writer.close()

    (r,) = asyncio.run(serve(handler, lambda base: request(base, kernel_stamps)))
    assert not r.success and "closed the connection before the response ended" in r.error


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_a_response_delimited_by_the_connection_end_is_complete(kernel_stamps):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + SSE_OK)
        await writer.drain()
        writer.close()

    (r,) = asyncio.run(serve(handler, lambda base: request(base, kernel_stamps)))
    assert r.success and r.generated_text == "hi"


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_timeout_and_malformed_response(kernel_stamps):
    async def silent(reader, writer):
        await read_request(reader)
        await asyncio.sleep(5)

    (r,) = asyncio.run(serve(silent, lambda base: request(base, kernel_stamps, timeout=0.3)))
    assert not r.success and r.error == "request timed out after 0.3 s"

    async def garbage(reader, writer):
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    (r,) = asyncio.run(serve(garbage, lambda base: request(base, kernel_stamps)))
    assert not r.success and "malformed HTTP response" in r.error


@pytest.mark.parametrize("kernel_stamps", STAMPS)
def test_connection_refused_is_reported(kernel_stamps):
    (r,) = asyncio.run(request("http://127.0.0.1:9", kernel_stamps))
    assert not r.success and "cannot connect to 127.0.0.1:9" in r.error


def test_bad_base_url_is_rejected_clearly():
    with pytest.raises(ValueError, match="is not http"):
        StreamingClient("ftp://x", limit=1)
    with pytest.raises(ValueError, match="is not http"):
        StreamingClient("http://", limit=1)  # no host
