"""A lean HTTP/1.1 client for streamed responses: asyncio protocols and httptools' C parser.

Why not aiohttp here: the load generator must stamp every read with its arrival time and must
not be the bottleneck. aiohttp spends about 30 us of Python per streamed event (stream reader,
coroutine wake-up, iterator), which caps one core near 25,000 SSE events/s and pushed the
median TTFT error past 25 ms at that rate (benchmarks/README.md). Here the bytes go straight
from the transport's ``data_received`` through httptools (the parser uvicorn uses; it handles
chunked framing) to the caller's callback, stamped before any parsing.

Scope, on purpose: POST with a JSON body, keep-alive connections pooled up to a limit, http and
https, a total deadline per request, one retry when a reused connection turns out to have been
closed by the server before it answered (keep-alive timeouts). No redirects, proxies or cookies.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import httptools

from pytest_inferencemax import __version__

# Linux's SO_TIMESTAMPING (include/uapi/asm-generic/socket.h, linux/net_tstamp.h); the socket
# module names them only on some builds.
_SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
_SCM_TIMESTAMPING = _SO_TIMESTAMPING
_STAMP_FLAGS = (1 << 3) | (1 << 4)  # SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
_TIMESPEC = struct.Struct("qq")
_READ_SIZE = 1 << 18
_ANC_SIZE = 256

BodySink = Callable[[bytes, float], None]  # (body bytes, arrival time of the read that carried them)


class HTTPStreamError(Exception):
    """The connection failed or closed before the response ended."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes  # only for status != 200; a 200 body goes to the sink


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response being read on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: BodySink | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.arrived = 0.0
        self.status = 0
        self.reason = b""
        self.error_body = bytearray()
        self.got_bytes = False
        self.framed = False  # content-length or chunked: the response has an end before EOF
        self.keep_alive = True
        self.closed = False

    def prepare(self, sink: BodySink, waiter: asyncio.Future[Response]) -> None:
        self.sink, self.waiter = sink, waiter
        self.status, self.reason, self.error_body = 0, b"", bytearray()
        self.got_bytes = self.framed = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.feed(data, time.perf_counter())  # stamped before any parsing

    def feed(self, data: bytes, arrived: float) -> None:
        self.arrived = arrived
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPStreamError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.status and not self.framed and self.waiter is not None and not self.waiter.done():
            self.on_message_complete()  # a response delimited by the connection's end
            return
        self._fail(HTTPStreamError("the server closed the connection before the response ended"
                                   + (f" ({exc})" if exc else "")))

    # httptools
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.status == 200 and self.sink is not None:
            self.sink(body, self.arrived)
        elif len(self.error_body) < 65536:
            self.error_body += body

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Response(self.status, self.reason.decode("latin-1"), bytes(self.error_body)))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise HTTPStreamError("the server closed the connection before the response ended")
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _KernelStampedConnection(_Connection):
    """A plain-TCP connection read with ``recvmsg``, each read carrying the kernel's receive time.

    With SO_TIMESTAMPING's software receive stamps, an event's arrival time is when the kernel
    took the packet in, not when a busy event loop came round to it: a burst of a thousand
    streams' tokens, which one core needs milliseconds to work through, keeps true stamps.
    The stamp is CLOCK_REALTIME; it is moved onto ``perf_counter``'s clock with the offset
    between the two taken at the read (drift between them over microseconds is nil).
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data, anc, _, _ = self.sock.recvmsg(_READ_SIZE, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            return self._lost(exc)
        if not data:
            return self._lost(None)
        now = time.perf_counter()
        arrived = now
        for level, kind, cmsg in anc:
            if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPING and len(cmsg) >= 16:
                sec, nsec = _TIMESPEC.unpack_from(cmsg)
                if sec or nsec:
                    arrived = min(now, sec + nsec * 1e-9 - (time.time() - now))
        self.feed(data, arrived)

    def _lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.close()
        self.connection_lost(exc)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise HTTPStreamError("the server closed the connection before the response ended")
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise HTTPStreamError(f"cannot send the request: {exc}") from exc
        if sent < len(data):  # a full send buffer: the rest goes when it drains
            self.loop.create_task(self.loop.sock_sendall(self.sock, data[sent:]))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def kernel_stamps_supported() -> bool:
    """Whether this system gives TCP sockets software receive timestamps (Linux does; gVisor,
    macOS and Windows do not, and reads are then stamped when they are taken)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _STAMP_FLAGS)
        return sys.platform.startswith("linux")
    except OSError:
        return False


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class StreamingClient:
    """POSTs JSON to one server over at most ``limit`` pooled keep-alive connections."""

    def __init__(self, base_url: str, *, limit: int, headers: dict[str, str] | None = None,
                 kernel_stamps: bool | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL {base_url!r} is not http(s)://host[:port][/prefix]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        if kernel_stamps is None:
            kernel_stamps = kernel_stamps_supported()
        self.kernel_stamps = kernel_stamps and self.ssl is None  # TLS reads go through the transport
        host_header = parts.netloc.rpartition("@")[2]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = (f"Host: {host_header}\r\nUser-Agent: pytest-inferencemax/{__version__}\r\n"
                      f"Content-Type: application/json\r\nAccept: text/event-stream\r\n{extra}").encode("latin-1")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._all: set[_Connection] = set()

    async def post(self, path: str, body: bytes, sink: BodySink, *, timeout: float,
                   on_sent: Callable[[float], None] | None = None) -> Response:
        """Send ``body``; a 200 response's body goes to ``sink`` as it arrives. ``on_sent`` gets the
        time the request was handed to the socket. Raises :class:`HTTPStreamError` on a connection
        failure, ``asyncio.TimeoutError`` when the whole exchange takes over ``timeout`` seconds."""
        request = (b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
                   % ((self.prefix + path).encode("latin-1"), self._head, len(body))) + body
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect(deadline)
                try:
                    return await self._exchange(conn, request, sink, deadline, on_sent)
                except HTTPStreamError:
                    if reused and not conn.got_bytes and attempt == 0:
                        continue  # a keep-alive connection the server had already dropped: once more, afresh
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, conn: _Connection, request: bytes, sink: BodySink, deadline: float,
                        on_sent: Callable[[float], None] | None) -> Response:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        conn.prepare(sink, waiter)
        # a timer, not asyncio.wait_for: that would put a task, and a turn of the loop, between the
        # caller and the write (a delay the TTFT would include when the client is busy)
        timer = loop.call_at(deadline, _expire, waiter)
        finished = False
        try:
            if on_sent is not None:
                on_sent(time.perf_counter())
            conn.write(request)
            resp = await waiter
            finished = True
            return resp
        finally:
            timer.cancel()
            if finished and conn.keep_alive and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()
                self._all.discard(conn)

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if self.kernel_stamps:
                conn = await asyncio.wait_for(self._open_stamped(), deadline - loop.time())
            else:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl), deadline - loop.time())
        except OSError as exc:
            raise HTTPStreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._all.add(conn)
        return conn

    async def _open_stamped(self) -> _Connection:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _STAMP_FLAGS)
            await loop.sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        return _KernelStampedConnection(sock)

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
