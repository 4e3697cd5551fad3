"""Progress on the terminal while long work runs, visible under pytest's output capture.

Server starts and points can take many minutes; users must see that something is alive:
elapsed time, requests done out of total, live tokens/s, the server log's last line.
``-q`` silences it. On a TTY a single status line is rewritten in place; otherwise (CI logs)
a status line is printed at most every ``interval`` seconds.
"""
from __future__ import annotations

import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, ContextManager, Protocol


class Progress(Protocol):
    def line(self, text: str) -> None: ...

    def status(self, text: str, force: bool = False) -> None: ...

    def done(self) -> None: ...


class StreamProgress:
    """Progress to a text stream (the terminal, or pytest's writer through ``writer``)."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False, interval: float = 10.0,
                 tty: bool | None = None, uncaptured: Any = None) -> None:
        self._given = stream  # None: whatever sys.stdout is when writing (pytest swaps it while capturing)
        self.quiet = quiet
        self.interval = interval
        self.tty = self._stream.isatty() if tty is None else tty
        self._last = 0.0
        self._width = 0
        self._uncaptured = uncaptured  # a callable returning a context that lifts pytest's capture

    @property
    def _stream(self) -> IO[str]:
        return self._given if self._given is not None else sys.stdout

    def _ctx(self) -> ContextManager[Any]:
        return self._uncaptured() if self._uncaptured is not None else nullcontext()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._ctx():
            self._clear()
            self._stream.write(text + "\n")
            self._stream.flush()

    def status(self, text: str, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < 0.5:
                return
            with self._ctx():
                pad = max(self._width - len(text), 0)
                self._stream.write("\r" + text + " " * pad)
                self._stream.flush()
            self._width = len(text)
        else:
            if not force and now - self._last < self.interval:
                return
            with self._ctx():
                self._stream.write(text + "\n")
                self._stream.flush()
        self._last = now

    def _clear(self) -> None:
        if self.tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def done(self) -> None:
        if self.quiet:
            return
        with self._ctx():
            self._clear()
            self._stream.flush()


def _tail_lines(path: Path, max_bytes: int) -> list[str]:
    """The lines in the last ``max_bytes`` of a file (a log may be gigabytes; read only its end)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - max_bytes, 0))
        return f.read().decode("utf-8", errors="replace").splitlines()


# An access-log line of the requests this plugin polls with (readiness, telemetry, versions), in uvicorn's
# (vLLM, SGLang), aiohttp's or http.server's format: ``INFO: 127.0.0.1:5000 - "GET /metrics HTTP/1.1" 200 OK``.
POLLED_PATHS = ("/health", "/metrics", "/v1/models", "/version", "/get_server_info")
_OWN_POLLING = re.compile(r'"(?:GET|HEAD) (?:%s)(?:[?/][^" ]*)? HTTP/[0-9.]+"' % "|".join(map(re.escape, POLLED_PATHS)))


def is_polling_log(line: str) -> bool:
    """Whether a server log line is the access log of one of our own polling requests (not worth a status line)."""
    return _OWN_POLLING.search(line) is not None


def last_log_line(path: Path | None, limit: int = 100) -> str:
    """The last non-empty line of a log file that is not the access log of our own polling (``GET /metrics``,
    ``/health``, ``/v1/models``), shortened for a status line."""
    if path is None or not path.exists():
        return ""
    for line in reversed(_tail_lines(path, 16384)):
        line = line.strip()
        if line and not is_polling_log(line):
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a log, for error reports."""
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(_tail_lines(path, 65536)[-lines:])
