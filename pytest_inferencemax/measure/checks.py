"""The client's self-checks, typed where they are computed: its loop and process (``client_record``), the
bounty client version it mirrored, the initial test request (``initial_request_record``) and the stream
(``stream_check``). Parts of a point record under ``inferencemax`` (docs/metrics.md); the token and prefix-cache
checks live with their code (``measure/token_check.py``, ``serve/prefix_cache.py``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from pytest_inferencemax.measure.loadtypes import ArrivalClock, LoadResult, RequestResult
from pytest_inferencemax.measure.looplag import lag_limit_ms
from pytest_inferencemax.plan.part import Part as _Part
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.values import ClientKind

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


class GoodputCheck(_Part):
    """``--goodput``: the SLOs the point was held to (ms) and how many requests met every one (docs/metrics.md).
    ``request_goodput:`` is the reference's figure (good requests per second); ``attainment`` ours: the share of
    the requests sent, failed ones counting as missed."""

    slo_ms: dict[str, Number]
    good_requests: int
    requests: int
    attainment: Optional[Number] = None


def goodput_check(slos: dict[str, float] | None, good: int | None, requests: int) -> GoodputCheck | None:
    if not slos or good is None:
        return None
    return GoodputCheck(slo_ms=dict(slos), good_requests=good, requests=requests,
                        attainment=good / requests if requests else None)


REFERENCE_PROCESS = ("the reference client ran in a process of its own, as the bounty client: asyncio's default "
                     "loop, gc.freeze() before it, no loop-lag probe and no telemetry sampler there (client_bound "
                     "is not judged)")


def client_record(load: LoadResult, median_itl_ms: float, lag_limit: float | None = None) -> ClientCheck:
    """The client's self-check: its loop lag, CPU and whether it could have distorted the figures. ``lag_limit``
    (ms; --client-lag-limit-ms) replaces the default limit, 5% of the point's median gap between events."""
    limit = lag_limit or lag_limit_ms(median_itl_ms)
    lag = load.lag
    bound = bool(lag and lag.p99_ms > limit)
    return ClientCheck(
        load_generator=load.client, processes=load.client_procs, arrival_clock=load.arrival_clock,
        loop_lag=lag.as_dict() if lag else None, lag_limit_ms=limit,
        cpu_share=load.client_cpu_s / load.duration / max(load.client_procs, 1) if load.duration else None,
        client_bound=bound,
        why=(f"the client's event loop lagged {lag.p99_ms:.2f} ms at p99 (limit {limit:.2f} ms): its timestamps "
             f"may be late by as much; use --client-procs to spread the load" if bound and lag else None),
        event_loop=load.event_loop or None, isolated=load.isolated,
        note=REFERENCE_PROCESS if load.client == "reference" and load.isolated else None,
    )


def initial_request_record(point: Point, load: LoadResult) -> InitialRequestCheck | None:
    """``inferencemax.initial_request``: sent or not, and how it went (None when the stage's client sends none)."""
    if not point.client.initial_test_request:
        return None
    first = load.initial_request
    if first is None:  # asked for, but the run stopped before it ended (the server died or stalled)
        return InitialRequestCheck(sent=True, success=None, error=load.aborted)
    return InitialRequestCheck(sent=True, success=first.success, error=first.error or None,
                               latency_s=first.latency if first.success else None)


def stream_check(results: Sequence[RequestResult]) -> StreamCheck:
    """Malformed stream lines and error events of the point's requests (timed ones; warmups are not recorded)."""
    bad = [r for r in results if r.malformed_events]
    return StreamCheck(malformed_events=sum(r.malformed_events for r in bad), requests=len(bad),
                       example=bad[0].malformed_example if bad else None,
                       error_events=sum(r.error_events for r in results))
