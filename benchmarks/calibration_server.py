"""A calibration server: OpenAI-compatible streaming completions on a known schedule.

It answers ``POST /v1/completions`` (streamed or not) like vLLM, but instead of running a model it
sends its events on a schedule you choose, and it records when it really sent each one, so a
client's figures can be checked against the truth:

- TTFT: the first event (one token) goes ``ttft_ms`` after the request was read;
- ITL: later events carry ``tokens_per_event`` tokens each, one every ``itl_ms x tokens_per_event``,
  so the true per-token ITL is ``itl_ms`` whatever the packing;
- usage: ``final`` (one usage event at the end when ``stream_options.include_usage`` is set, as
  vLLM), ``every`` (cumulative usage on every event too, as vLLM's ``continuous_usage_stats``) or
  ``none``;
- ``stop_after``: end the stream early with ``finish_reason: stop`` (the server produced fewer
  tokens than requested); ``usage_offset``: add this to the completion tokens the usage reports
  (a server whose counts are wrong);
- ``stall_after``: after this many tokens send nothing more and keep the connection open (a server
  that hangs mid-stream; 0: not even the first token). A request for fewer tokens ends as usual, so
  a launched server still passes the runner's one-token readiness check.

Each field can be set for the whole server on the command line or per request in the body's
``calibration`` object (``pytest --extra-body '{"calibration": {"itl_ms": 5}}'``).

Prompt tokens (``usage.prompt_tokens``, and the prefix-cache counters) are counted as vLLM counts them
with ``--tokenizer`` (a folder or hub id: the one the client's ``--tokenizer`` names, special tokens
included), else as whitespace-separated words; a request's ``calibration.prompt_tokens`` overrides both.
With ``--tokenizer`` the server is a ``--server-url`` target as it is, no ``--extra-body`` needed:

    python benchmarks/calibration_server.py --port 8300 --tokenizer .cache/models/SmolLM2-135M-Instruct
    pytest suites/... --server-url http://127.0.0.1:8300 --served-model-name calibration \\
        --tokenizer .cache/models/SmolLM2-135M-Instruct

Without it, the plugin finds the word counts off the prompts' token counts and marks every point
INVALID (the server counted other prompt lengths than the client sent).

Other routes: ``GET /health``, ``GET /v1/models``, ``GET /metrics`` (Prometheus text with vLLM's or
SGLang's prefix-cache counters; ``--prefix-hit-rate`` sets the share of prompt tokens counted as
hits), ``GET /calibration/truth`` (per response id: when the request was read, when each event was
written, the tokens in each), ``POST /calibration/reset`` and ``POST /calibration/schedule`` (a JSON
object of schedule fields: the new defaults for requests from then on, e.g. to make one round of a
point slower than the next; with one worker only), ``GET /calibration/stats`` (completion requests
``received``, ``finished``, ``dropped`` by their client before the end, and ``in_flight``, summed over
every worker: what a test waits for instead of sleeping; ``ready``: false during ``--start-delay``).

For the lifecycle tests: ``--start-delay S`` (``/health`` and completions answer 503 for S seconds, as
a server that loads its weights), ``--ignoring-child`` (one more process in the server's group that
ignores SIGTERM, SIGINT and SIGHUP: only SIGKILL ends it). The server prints
``calibration server (pid N): SIGTERM X.XX s after start`` when it is told to stop (X: the process's
age, from its fork), so a test reads when that happened.

Hand-written on asyncio protocols with httptools' parser (uvloop when installed) instead of a web
framework: at tens of thousands of events per second a framework's per-write overhead would make
the server the bottleneck it exists to rule out. Times are ``time.perf_counter()``, which on Linux
is CLOCK_MONOTONIC and so comparable with the client's in another process.

    python benchmarks/calibration_server.py --port 8300 --ttft-ms 50 --itl-ms 10
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import httptools

USAGE_MODES = ("final", "every", "none")
SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
STAMP_FLAGS = (1 << 3) | (1 << 4)  # SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE


@dataclass(frozen=True)
class Schedule:
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    tokens_per_event: int = 1
    usage: str = "final"
    stop_after: int | None = None
    usage_offset: int = 0
    prompt_tokens: int | None = None  # reported as usage.prompt_tokens; None: the server's count (--tokenizer)
    jitter: float = 0.0  # each event interval drawn from [1-jitter, 1+jitter] x its mean: streams drift apart
    stall_after: int | None = None  # tokens sent before the stream goes silent, the connection held open

    def override(self, body: dict[str, Any]) -> "Schedule":
        extra = body.get("calibration") or {}
        if not isinstance(extra, dict):
            raise ValueError("'calibration' must be an object")
        known = {f.name for f in fields(self)}
        unknown = set(extra) - known
        if unknown:
            raise ValueError(f"unknown calibration fields {sorted(unknown)}; known: {sorted(known)}")
        sched = replace(self, **extra)
        if (sched.tokens_per_event < 1 or sched.itl_ms < 0 or sched.ttft_ms < 0 or sched.usage not in USAGE_MODES
                or not 0 <= sched.jitter < 1 or (sched.stall_after is not None and sched.stall_after < 0)):
            raise ValueError(f"bad calibration schedule {sched}")
        return sched


@dataclass
class Truth:
    received: float
    sent: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)


def count_words(prompt: Any) -> int:
    """A prompt's length without a tokenizer: its whitespace-separated words (a list of token ids: its length)."""
    return len(prompt) if isinstance(prompt, list) else len(str(prompt).split())


def tokenizer_json_counter(folder: Path) -> Callable[[str], int] | None:
    """The count ``tokenizer_counter`` gives, read with the ``tokenizers`` library from the folder's
    ``tokenizer.json`` (its post-processor adds the special tokens), without importing transformers and torch
    (5-6 s a start). None where transformers would change that post-processor (``add_bos_token`` or
    ``add_eos_token`` in tokenizer_config.json, as Llama's tokenizers have) or there is no such file."""
    if not (folder / "tokenizer.json").is_file():
        return None
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if "add_bos_token" in config or "add_eos_token" in config:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return lru_cache(maxsize=4096)(lambda text: len(tokenizer.encode(text).ids))


def tokenizer_counter(name: str) -> Callable[[Any], int]:
    """A prompt's token count as vLLM's completions route counts it: the tokenizer ``name`` with its special
    tokens (a BOS). Raises ValueError naming the tokenizer when it cannot be loaded."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are forked after it is loaded
    if (fast := tokenizer_json_counter(Path(name))) is not None:
        return lambda prompt: len(prompt) if isinstance(prompt, list) else fast(str(prompt))
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - whatever stops it loading (no transformers, no folder, a bad file)
        raise ValueError(f"--tokenizer {name}: cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                         "pass the tokenizer folder or hub id that the client's --tokenizer names") from None

    @lru_cache(maxsize=4096)  # warmups and repeated rounds send the same prompts
    def count_text(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return lambda prompt: len(prompt) if isinstance(prompt, list) else count_text(str(prompt))


class Counters:
    """Completion requests received, finished and dropped, one slot per worker process in memory shared
    across the fork (each worker writes its own slot only: no lock); read as the sum of every slot."""

    FIELDS = ("received", "finished", "dropped")

    def __init__(self, workers: int = 1) -> None:
        import mmap

        self.workers = workers
        self.mem = mmap.mmap(-1, 8 * len(self.FIELDS) * workers)  # anonymous, MAP_SHARED: shared with forks
        self.slot = 0

    def add(self, name: str, n: int = 1) -> None:
        at = 8 * (self.slot * len(self.FIELDS) + self.FIELDS.index(name))
        struct.pack_into("q", self.mem, at, struct.unpack_from("q", self.mem, at)[0] + n)

    def totals(self) -> dict[str, int]:
        out = {name: 0 for name in self.FIELDS}
        for slot in range(self.workers):
            for i, name in enumerate(self.FIELDS):
                out[name] += struct.unpack_from("q", self.mem, 8 * (slot * len(self.FIELDS) + i))[0]
        out["in_flight"] = out["received"] - out["finished"] - out["dropped"]
        return out


@dataclass
class ServerState:
    schedule: Schedule
    model: str
    flavor: str = "vllm"
    prefix_hit_rate: float = 0.0
    count_prompt: Callable[[Any], int] = count_words  # usage.prompt_tokens of a request (--tokenizer)
    truth: dict[str, Truth] = field(default_factory=dict)
    truth_file: Any = None  # with --truth-dir: finished requests' truth goes here, a JSON line each
    next_id: int = 0
    prompt_tokens_seen: int = 0
    prefix_hits: int = 0
    prefix_cache: set[str] | None = None  # --prefix-cache: the prompts seen since the last reset
    counters: Counters = field(default_factory=Counters)
    ready_at: float = 0.0  # time.monotonic() from which /health answers 2xx (--start-delay)

    def finished(self, rid: str, truth: Truth) -> None:
        self.counters.add("finished")
        if self.truth_file is not None:
            self.truth_file.write(json.dumps({"id": rid, "received": truth.received, "sent": truth.sent,
                                              "tokens": truth.tokens}) + "\n")
            self.truth_file.flush()
            del self.truth[rid]  # on disk now; keeps a long run's memory flat

    def new_id(self) -> str:
        self.next_id += 1
        return f"cmpl-cal-{os.getpid()}-{self.next_id}"

    def metrics_text(self) -> str:
        q, h = self.prompt_tokens_seen, self.prefix_hits
        if self.flavor == "sglang":
            return (f'sglang:prompt_tokens_total{{model_name="{self.model}"}} {q}.0\n'
                    f'sglang:cached_tokens_total{{model_name="{self.model}",cache_source="device"}} {h}.0\n')
        return ("# TYPE vllm:prefix_cache_queries counter\n"
                f'vllm:prefix_cache_queries_total{{engine="0",model_name="{self.model}"}} {q}.0\n'
                "# TYPE vllm:prefix_cache_hits counter\n"
                f'vllm:prefix_cache_hits_total{{engine="0",model_name="{self.model}"}} {h}.0\n')


class Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; requests on it are answered one after another."""

    def _can_reset(self, path: bytes) -> bool:
        """As the engines: vLLM's ``/reset_prefix_cache`` only with ``VLLM_SERVER_DEV_MODE=1`` (a development
        endpoint), SGLang's ``/flush_cache`` always (here: with ``--metrics-flavor sglang``)."""
        if path == b"/flush_cache":
            return self.state.flavor == "sglang"
        return self.state.flavor == "vllm" and os.environ.get("VLLM_SERVER_DEV_MODE") == "1"

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = bytearray()
        self.queue: list[tuple[str, bytes, bytes, float]] = []
        self.busy = False
        self.read_at = 0.0  # when the bytes being parsed arrived (the kernel's stamp when there is one)
        self.active: Completion | None = None  # the completion being answered

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.queue.append((self.parser.get_method().decode(), bytes(self.url), bytes(self.body), self.read_at))
        self.url, self.body = b"", bytearray()
        self._next()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes, arrived: float | None = None) -> None:
        self.read_at = arrived if arrived is not None else time.perf_counter()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._reply(400, b"bad request", "text/plain")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.active is not None:  # the client went away before the end
            self.active = None
            self.state.counters.add("dropped")

    def _next(self) -> None:
        if self.busy or not self.queue or self.transport is None:
            return
        method, url, body, received = self.queue.pop(0)
        self.busy = True
        path = url.split(b"?")[0]
        starting = time.monotonic() < self.state.ready_at
        if starting and path in (b"/health", b"/v1/completions"):  # --start-delay: loading, as vLLM before it serves
            self._reply(503, json.dumps({"error": {"message": "starting (--start-delay)"}}).encode())
            return self._done()
        if path == b"/v1/completions" and method == "POST":
            try:
                payload = json.loads(body)
                sched = self.state.schedule.override(payload)
            except (ValueError, TypeError) as exc:
                self._reply(400, json.dumps({"error": {"message": str(exc)}}).encode())
                return self._done()
            Completion(self, payload, sched, received).start()
            return
        if path == b"/health":
            self._reply(200, b"")
        elif path == b"/v1/models":
            self._reply(200, json.dumps({"object": "list", "data": [{"id": self.state.model, "object": "model"}]}).encode())
        elif path == b"/metrics":
            self._reply(200, self.state.metrics_text().encode(), "text/plain; version=0.0.4")
        elif path == b"/calibration/truth":
            truth = {k: {"received": t.received, "sent": t.sent, "tokens": t.tokens} for k, t in self.state.truth.items()}
            self._reply(200, json.dumps({"requests": truth}).encode())
        elif path == b"/calibration/stats":
            stats = {**self.state.counters.totals(), "workers": self.state.counters.workers, "ready": not starting}
            self._reply(200, json.dumps(stats).encode())
        elif path in (b"/reset_prefix_cache", b"/flush_cache") and method == "POST" and self._can_reset(path):
            self.state.prefix_cache = set() if self.state.prefix_cache is not None else None
            self._reply(200, b'{"success": true}' if path == b"/reset_prefix_cache" else b"")
        elif path == b"/calibration/reset" and method == "POST":
            self.state.truth.clear()
            self._reply(200, b"{}")
        elif path == b"/calibration/schedule" and method == "POST":  # change the defaults from now on
            try:
                self.state.schedule = self.state.schedule.override({"calibration": json.loads(body or b"{}")})
            except (ValueError, TypeError) as exc:
                self._reply(400, json.dumps({"error": {"message": str(exc)}}).encode())
            else:
                self._reply(200, json.dumps(asdict(self.state.schedule)).encode())
        else:
            self._reply(404, b'{"error": {"message": "not found"}}')
        self._done()

    def _done(self) -> None:
        self.busy = False
        if self.queue:
            self._next()

    def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        if self.transport is not None:
            self.transport.write(head + body)


class Completion:
    """One completion request, streamed on its schedule through the connection's transport."""

    def __init__(self, conn: Connection, payload: dict[str, Any], sched: Schedule, received: float) -> None:
        self.conn, self.sched = conn, sched
        self.loop = asyncio.get_running_loop()
        self.id = conn.state.new_id()
        self.max_tokens = int(payload.get("max_tokens") or 16)
        self.total = min(self.max_tokens, sched.stop_after) if sched.stop_after is not None else self.max_tokens
        self.stream = bool(payload.get("stream"))
        opts = payload.get("stream_options") or {}
        self.include_usage = bool(opts.get("include_usage")) and sched.usage != "none"
        prompt = payload.get("prompt") or ""
        self.prompt_tokens = sched.prompt_tokens if sched.prompt_tokens is not None else conn.state.count_prompt(prompt)
        self.truth = Truth(received)
        conn.state.truth[self.id] = self.truth
        conn.state.counters.add("received")
        conn.active = self
        conn.state.prompt_tokens_seen += self.prompt_tokens
        conn.state.prefix_hits += int(self.prompt_tokens * conn.state.prefix_hit_rate)
        cache = conn.state.prefix_cache
        if cache is not None:  # a whole prompt seen before is served from the cache: all its tokens are hits
            conn.state.prefix_hits += self.prompt_tokens if prompt in cache else 0
            cache.add(prompt)
        self.sent_tokens = 0
        # stall_after: tokens sent before the stream goes silent (None: it runs to its end)
        self.stall_at = sched.stall_after if sched.stall_after is not None and sched.stall_after < self.total else None
        self.t_first = 0.0  # loop time of the first event
        self.step = sched.tokens_per_event * sched.itl_ms / 1000
        self.middle: bytes | None = None
        self.due = 0.0
        self.head = ('data: {"id":"%s","object":"text_completion","created":0,"model":"%s","choices":'
                     % (self.id, conn.state.model))

    def start(self) -> None:
        if not self.stream:
            if self.stall_at is not None:
                return  # no answer, ever: the connection stays open
            self.loop.call_at(self.loop.time() + (self.sched.ttft_ms + self.sched.itl_ms * (self.total - 1)) / 1000,
                              self._whole)
            return
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.conn.transport.write(head)
        if self.stall_at == 0:
            return
        self.loop.call_at(self.loop.time() + self.sched.ttft_ms / 1000, self._event)

    def _usage(self, completion: int) -> str:
        c = completion + self.sched.usage_offset
        return '{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}' % (
            self.prompt_tokens, c, self.prompt_tokens + c)

    def _whole(self) -> None:
        if self.conn.transport is None:  # the client went away (counted as dropped)
            return
        body = {"id": self.id, "object": "text_completion", "model": self.conn.state.model,
                "choices": [{"index": 0, "text": " tok" * self.total, "finish_reason": self._finish()}],
                "usage": json.loads(self._usage(self.total))}
        self.truth.sent.append(time.perf_counter())
        self.truth.tokens.append(self.total)
        self.conn._reply(200, json.dumps(body).encode())
        self.conn.active = None
        self.conn.state.counters.add("finished")
        self.conn._done()

    def _finish(self) -> str:
        return "stop" if self.total < self.max_tokens else "length"

    def _frame(self, n: int, last: bool) -> bytes:
        """The chunked-encoding frame of one event carrying ``n`` tokens."""
        finish = '"%s"' % self._finish() if last else "null"
        usage = self._usage(self.sent_tokens) if self.include_usage and self.sched.usage == "every" else "null"
        data = '%s[{"index":0,"text":"%s","logprobs":null,"finish_reason":%s}],"usage":%s}\n\n' % (
            self.head, " tok" * n, finish, usage)
        if last and self.include_usage:
            data += '%s[],"usage":%s}\n\n' % (self.head, self._usage(self.sent_tokens))
        if last:
            data += "data: [DONE]\n\n"
        raw = data.encode()
        return b"%x\r\n%s\r\n" % (len(raw), raw) + (b"0\r\n\r\n" if last else b"")

    def _event(self) -> None:
        transport = self.conn.transport
        if transport is None:  # the client went away
            return
        k = self.sched.tokens_per_event
        n = 1 if self.sent_tokens == 0 else min(k, self.total - self.sent_tokens)
        self.sent_tokens += n
        last = self.sent_tokens >= self.total
        if n == k and not last and self.sched.usage != "every":
            if self.middle is None:
                self.middle = self._frame(n, False)  # the same bytes for every full event in the middle
            frame = self.middle
        else:
            frame = self._frame(n, last)
        sent = self.truth.sent
        sent.append(time.perf_counter())
        transport.write(frame)
        self.truth.tokens.append(n)
        if last:
            self.conn.active = None
            self.conn.state.finished(self.id, self.truth)
            self.conn._done()
            return
        if self.stall_at is not None and self.sent_tokens >= self.stall_at:
            return  # silent from here on; the connection stays open
        if len(sent) == 1:
            self.t_first = self.loop.time()
        # each event is due one step after the last one's due time, however late that one was
        self.due = (self.due or self.t_first) + self.step * (
            1.0 + self.sched.jitter * (2.0 * random.random() - 1.0) if self.sched.jitter else 1.0)
        self.loop.call_at(self.due, self._event)


class StampedSocket:
    """The transport of one accepted connection, read with ``recvmsg`` so that each request is
    stamped with the kernel's receive time (SO_TIMESTAMPING), not with when this server's loop,
    busy writing thousands of events, came round to it. Writes go straight to the socket, the
    rest (a client slower than the stream) when it drains."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        self.sock, self.conn = sock, conn
        self.loop = asyncio.get_running_loop()
        self.pending = bytearray()
        self.loop.add_reader(sock.fileno(), self._readable)
        conn.connection_made(self)  # type: ignore[arg-type]

    def _readable(self) -> None:
        try:
            data, anc, _, _ = self.sock.recvmsg(1 << 18, 256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, anc = b"", []
        if not data:
            self.close()
            return
        now = time.perf_counter()
        arrived = now
        for level, kind, cmsg in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(cmsg) >= 16:
                sec, nsec = struct.unpack_from("qq", cmsg)
                if sec or nsec:
                    arrived = min(now, sec + nsec * 1e-9 - (time.time() - now))
        self.conn.data_received(data, arrived)

    def write(self, data: bytes) -> None:
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return self.close()
        if sent < len(data):
            self.pending += data[sent:]
            self.loop.add_writer(self.sock.fileno(), self._drain)

    def _drain(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        del self.pending[:sent]
        if not self.pending:
            self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        self.loop.remove_reader(self.sock.fileno())
        self.loop.remove_writer(self.sock.fileno())
        self.sock.close()
        self.conn.connection_lost(None)


async def serve(sock: socket.socket, state: ServerState) -> None:
    loop = asyncio.get_running_loop()
    try:
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, STAMP_FLAGS)
        probe.close()
    except OSError:  # no kernel stamps here (gVisor, macOS): plain transports, stamped when read
        server = await loop.create_server(lambda: Connection(state), sock=sock, backlog=4096)
        async with server:
            await server.serve_forever()
        return
    sock.setblocking(False)
    while True:
        client, _ = await loop.sock_accept(sock)
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, STAMP_FLAGS)
        StampedSocket(client, Connection(state))


def listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


def run_worker(sock: socket.socket, state: ServerState, truth_dir: str | None, use_uvloop: bool) -> None:
    if truth_dir:
        state.truth_file = open(os.path.join(truth_dir, f"truth-{os.getpid()}.jsonl"), "a", encoding="utf-8")
    runner = asyncio.run
    if use_uvloop:
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            pass
    try:
        runner(serve(sock, state))
    except KeyboardInterrupt:
        pass


STARTED = time.monotonic()


def _age() -> float:
    """Seconds since this process was started (forked: its launcher's clock, before the interpreter started);
    since this module was imported where /proc cannot tell."""
    try:
        start_ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - STARTED


def _interrupt(signum: int, frame: object) -> None:
    print(f"calibration server (pid {os.getpid()}): {signal.Signals(signum).name} {_age():.2f} s after start",
          flush=True)
    raise KeyboardInterrupt


ORPHAN_LIFETIME_S = 60.0


def ignoring_child(socks: list[socket.socket]) -> int:
    """A child in this process group that ignores SIGTERM, SIGINT and SIGHUP: only SIGKILL ends it, as an
    engine process stuck in a driver call. Lest a test that fails leave it behind for good, it exits by
    itself ``ORPHAN_LIFETIME_S`` after its parent is gone (longer than any teardown waits before SIGKILL)."""
    pid = os.fork()
    if pid:
        return pid
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for sock in socks:  # the port is not held by it
        sock.close()
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    time.sleep(ORPHAN_LIFETIME_S)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8300)
    p.add_argument("--model", default="calibration", help="the served model name (default: calibration)")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="default: 50")
    p.add_argument("--itl-ms", type=float, default=10.0, help="true per-token ITL (default: 10)")
    p.add_argument("--tokens-per-event", type=int, default=1, help="tokens per event after the first (default: 1)")
    p.add_argument("--jitter", type=float, default=0.0,
                   help="spread of each event interval, a fraction of it: 0.5 draws from 0.5x to 1.5x (default: 0)")
    p.add_argument("--usage", choices=USAGE_MODES, default="final", help="default: final")
    p.add_argument("--prefix-hit-rate", type=float, default=0.0, help="share of prompt tokens counted as prefix-cache hits")
    p.add_argument("--metrics-flavor", choices=("vllm", "sglang"), default="vllm")
    p.add_argument("--prefix-cache", action="store_true",
                   help="count a prompt seen before (since the last POST /reset_prefix_cache, which needs "
                        "VLLM_SERVER_DEV_MODE=1, or /flush_cache with --metrics-flavor sglang) as prefix-cache hits")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT); with more than one, the truth "
                        "is only in --truth-dir (default: 1)")
    p.add_argument("--truth-dir", help="write each finished request's truth to DIR/truth-<pid>.jsonl")
    p.add_argument("--tokenizer", metavar="PATH_OR_ID",
                   help="count usage.prompt_tokens with this tokenizer, as vLLM does (give the client's --tokenizer); "
                        "default: whitespace-separated words, which a client that checks prompt lengths finds off")
    p.add_argument("--stall-after", type=int, metavar="N",
                   help="send N tokens of each stream, then nothing more, the connection held open (default: never)")
    p.add_argument("--start-delay", type=float, default=0.0, metavar="S",
                   help="answer /health and completions with 503 for S seconds after start, as a server loading its "
                        "weights (default: 0)")
    p.add_argument("--ignoring-child", action="store_true",
                   help="fork one more process into the server's group that ignores SIGTERM, SIGINT and SIGHUP")
    args = p.parse_args(argv)
    if args.workers > 1 and not args.truth_dir:
        p.error("--workers above 1 needs --truth-dir (each worker only knows its own requests)")
    try:
        count_prompt = tokenizer_counter(args.tokenizer) if args.tokenizer else count_words
    except ValueError as exc:
        p.error(str(exc))
    if args.stall_after is not None and args.stall_after < 0:
        p.error("--stall-after must be 0 or more")
    schedule = Schedule(args.ttft_ms, args.itl_ms, args.tokens_per_event, args.usage, jitter=args.jitter,
                        stall_after=args.stall_after)
    state = ServerState(schedule, args.model, args.metrics_flavor, args.prefix_hit_rate, count_prompt=count_prompt,
                        counters=Counters(args.workers), ready_at=STARTED + args.start_delay,
                        prefix_cache=set() if args.prefix_cache else None)
    socks = [listen(args.host, args.port, args.workers > 1) for _ in range(args.workers)]
    counted = (f"prompt tokens counted with {args.tokenizer}" if args.tokenizer else
               "prompt tokens counted as whitespace words (pass --tokenizer, the client's, to count them as vLLM does)")
    delay = f", answering 503 for {args.start_delay:g} s (--start-delay)" if args.start_delay else ""
    print(f"calibration server on http://{args.host}:{socks[0].getsockname()[1]} ({args.workers} worker(s)), "
          f"schedule {state.schedule}, {counted}{delay}", flush=True)
    children = []
    signal.signal(signal.SIGTERM, _interrupt)  # so that the workers below are stopped too
    for slot, sock in enumerate(socks[1:], start=1):
        pid = os.fork()
        if pid == 0:
            state.counters.slot = slot
            run_worker(sock, state, args.truth_dir, not args.no_uvloop)
            os._exit(0)
        children.append(pid)
    if args.ignoring_child:
        print(f"calibration server: process {ignoring_child(socks)} of its group ignores SIGTERM", flush=True)
    try:
        run_worker(socks[0], state, args.truth_dir, not args.no_uvloop)
    finally:
        for pid in children:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def running(*args: str, preexec_fn: Any = None, start_timeout: float = 10.0) -> Iterator[str]:
    """This server in a child process on a free loopback port, with ``args``; yields its base URL once
    ``/health`` answers and stops it on exit (the tests and the benchmarks share this)."""
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--port", str(port), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=preexec_fn)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if requests.get(base + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the calibration server exited: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the calibration server did not answer /health within {start_timeout:g} s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # uvloop can miss the interrupt while it closes many connections
            proc.kill()
            proc.wait(10)


if __name__ == "__main__":
    main()
