"""Incremental parser for Server-Sent Events as OpenAI-compatible servers stream them.

Hand-written rather than taken from a library (sseclient, aiohttp-sse-client) because the
load generator must stamp each event with the arrival time of the bytes that completed it,
taken before any parsing; the libraries own the read loop and hide that moment.

Follows the WHATWG event-stream rules that matter here: lines end in LF, CRLF or CR; a blank
line dispatches the event; lines starting with ':' are comments; several ``data:`` lines of one
event are joined with LF; one optional space after the colon is dropped.

It also counts the lines the bounty client could not read (``unreadable``): that client strips each
line, removes ``data: `` (with its space) and hands the rest to ``json.loads``, so a comment, another
field (``event:``, ``id:``, ``retry:``), ``data:`` without its space or an empty ``data:`` line fails
its request. The precise client fails the request there too, so that the reference keys count the
same failed requests (docs/metrics.md).
"""
from __future__ import annotations

from dataclasses import dataclass

DONE = "[DONE]"
DONE_BYTES = b"[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its data field (UTF-8 bytes, as JSON decoders take them) and the
    arrival time of the bytes that completed it."""

    raw: bytes
    arrived: float

    @property
    def data(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


class SSEParser:
    """Feed it byte chunks as they arrive; it returns the events each chunk completes."""

    __slots__ = ("_buffer", "_data", "_pending_cr", "unreadable", "unreadable_example")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._pending_cr = False
        self.unreadable = 0  # lines the bounty client's json.loads would have failed on (module doc)
        self.unreadable_example: bytes | None = None

    def _cannot_read(self, line: bytes) -> None:
        self.unreadable += 1
        if self.unreadable_example is None:
            self.unreadable_example = line[:120]

    def feed(self, chunk: bytes, arrived: float) -> list[SSEEvent]:
        """Parse ``chunk`` (any split of the stream) and return the events it completes."""
        if not chunk:
            return []
        if not self._buffer and not self._data and not self._pending_cr and b"\r" not in chunk:
            return self._feed_lf(chunk, arrived)
        return self._feed_general(chunk, arrived)

    def _feed_lf(self, chunk: bytes, arrived: float) -> list[SSEEvent]:
        """The common case, in C-speed splits: nothing pending and LF line ends only. Each whole
        event that is one ``data:`` line becomes an event directly; anything else (comments,
        several lines, other fields, a trailing part) goes through the general path in order."""
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()  # after the last blank line: an unfinished event, or b""
        events: list[SSEEvent] = []
        for i, block in enumerate(blocks):
            if block.startswith(b"data: ") and b"\n" not in block and block[6:].strip():
                events.append(SSEEvent(block[6:], arrived))
            else:
                rest = b"\n\n".join(blocks[i:]) + b"\n\n" + tail
                return events + self._feed_general(rest, arrived)
        if tail:
            events += self._feed_general(tail, arrived)
        return events

    def _feed_general(self, chunk: bytes, arrived: float) -> list[SSEEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        self._pending_cr = chunk.endswith(b"\r")
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, found = self._next_line()
            if not found:
                break
            self._process_line(line, arrived, events)
        return events

    def close(self, arrived: float) -> list[SSEEvent]:
        """End of stream: a last event not followed by a blank line is still delivered."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._process_line(bytes(self._buffer), arrived, events)
            self._buffer.clear()
        if self._data:
            self._process_line(b"", arrived, events)
        return events

    def _next_line(self) -> tuple[bytes, bool]:
        buf = self._buffer
        lf = buf.find(b"\n")
        cr = buf.find(b"\r")
        if lf < 0 and cr < 0:
            return b"", False
        if cr < 0 or (0 <= lf < cr):
            end, skip = lf, 1
        elif cr == len(buf) - 1:
            end, skip = cr, 1  # lone CR at the end: a line end (a following LF is dropped in feed)
        else:
            end, skip = cr, 2 if buf[cr + 1 : cr + 2] == b"\n" else 1
        line = bytes(buf[:end])
        del buf[: end + skip]
        return line, True

    def _process_line(self, line: bytes, arrived: float, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                if data := b"\n".join(self._data):  # an empty data buffer dispatches nothing (WHATWG)
                    events.append(SSEEvent(data, arrived))
                self._data = []
            return
        bare = line.strip()  # what the bounty client reads: "data: " removed, then json.loads unless [DONE]
        if bare and not bare.startswith(b"data: ") and bare != DONE_BYTES:
            self._cannot_read(line)  # a comment, another field, "data:" without its space or with nothing
        if line.startswith(b":"):
            return
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        # other fields (event, id, retry) carry nothing the benchmark uses
