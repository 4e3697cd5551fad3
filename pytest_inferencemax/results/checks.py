"""The self-checks a point record carries under ``inferencemax`` (docs/metrics.md): the client's (its loop,
process and the bounty client version it mirrored, the initial test request), the prefix cache's, the token
counts' and the stream's. Part of ``record.PointRecord``; re-exported there."""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import Field

from pytest_inferencemax.measure.loadtypes import ArrivalClock
from pytest_inferencemax.plan.values import ClientKind
from pytest_inferencemax.results.part import Part as _Part

Number = Union[int, float]  # kept as written (record.Number)


class ClientCheck(_Part):
    """The client's self-check: its loop lag and CPU, and whether it could have distorted the figures."""

    load_generator: Optional[ClientKind] = None
    processes: int = 1
    arrival_clock: Optional[ArrivalClock] = None
    loop_lag: Optional[dict[str, Any]] = None
    lag_limit_ms: Optional[Number] = None
    cpu_share: Optional[Number] = None
    client_bound: bool = False
    why: Optional[str] = None
    event_loop: Optional[str] = None  # "uvloop" or "asyncio" (absent from records written before it was kept)
    isolated: Optional[bool] = None  # the load ran in its own process(es), apart from the sampler and progress
    note: Optional[str] = None  # what the reference client's process did not run (runner.REFERENCE_PROCESS)


class ClientVersionRecord(_Part):
    """The bounty client version the stage mirrors (plan/suite.py ``ClientVersion``, ``[stages.X.client]``)."""

    source: str
    initial_test_request: bool
    warmups_per_conc: int
    prompt_builder: str


class InitialRequestCheck(_Part):
    """The initial test request (499c0b1): sent before anything else; the point stops when it fails."""

    sent: bool = True
    success: Optional[bool] = None  # None: the run stopped while it was in flight
    error: Optional[str] = None  # the request's error (the reference client's: a traceback or a reason)
    latency_s: Optional[Number] = None


class PrefixCacheCheck(_Part):
    """What the server's prefix cache served during the point (a random workload should hit nothing)."""

    available: bool
    why: Optional[str] = None
    engine: Optional[str] = None
    query_tokens: Optional[Number] = None
    hit_tokens: Optional[Number] = None
    hit_rate: Optional[Number] = None
    warning: Optional[str] = None


class TokenCheck(_Part):
    """The server's token counts against the workload's: ``failures`` make the point invalid."""

    output: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    without_usage: int = 0
    retokenized: Optional[dict[str, Any]] = None
    flagged: list[str] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)


class StreamCheck(_Part):
    """Stream lines the bounty client cannot read (not JSON objects, comments, other fields): it fails the request
    that gets one, and so do both clients; and error events, which it ignores, and so do both clients."""

    malformed_events: int = 0
    requests: int = 0  # requests with at least one
    example: Optional[str] = None  # the first, shortened
    error_events: Optional[int] = None  # the server's error events (absent from records written before)

    @property
    def warning(self) -> str | None:
        out = []
        if self.malformed_events:
            out.append(f"{self.malformed_events} malformed stream line(s) in {self.requests} request(s) (e.g. "
                       f"{self.example!r}): the bounty client fails such a request, and so did this one")
        if self.error_events:
            out.append(f"{self.error_events} error event(s) in the streams: the bounty client ignores them (a "
                       f"request with a token before one counts as completed), and so did this one")
        return "; ".join(out) or None
