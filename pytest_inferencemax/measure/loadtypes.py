"""The load generators' data: where and how requests go (:class:`ClientConfig`), what one request measured
(:class:`RequestResult`), the live counters, the untimed initial test request and a run's result.

Both clients (``precise_client.PreciseSender``, ``refclient.ReferenceSender``) fill these; ``loadgen.run_load``
and ``multiclient`` drive them; ``metrics`` and the results stage read them.
"""
from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from pytest_inferencemax.measure.looplag import LoopLag
from pytest_inferencemax.measure.workload import RequestSpec
from pytest_inferencemax.plan.values import CLIENTS, Word
from pytest_inferencemax.serve.api import auth_headers

# The bounty client's words when its initial test request fails (benchmark() at 499c0b1), then the error
INITIAL_TEST_FAILED = ("Initial test run failed - Please make sure benchmark arguments are correctly specified. "
                       "Error: {error}")


class ArrivalClock(Word):
    """How a client stamped the arrival of each read (docs/metrics.md)."""

    KERNEL = "kernel"  # the kernel's receive time of the bytes (SO_TIMESTAMPNS)
    READ = "read"  # when the client read them
    REFERENCE = "reference"  # the bounty client's: after decoding and parsing each chunk


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to send requests."""

    base_url: str
    model: str  # the served model name put in each payload
    endpoint: str = "/v1/completions"
    request_timeout: float = 3600.0  # seconds, per request, connect to last byte
    ignore_eos: bool = True
    # the body fields that ask for it (serve/engines.py): vLLM's ignore_eos, transformers serve's generation_config
    ignore_eos_fields: tuple[tuple[str, Any], ...] = (("ignore_eos", True),)
    extra_body: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)  # never printed or saved
    kernel_stamps: bool | None = None  # stamp reads with the kernel's receive time; None: where supported
    client: str = "precise"  # which load generator: "precise" (precise_client) or "reference" (refclient): plan.values.ClientKind

    def __post_init__(self) -> None:
        if self.client not in CLIENTS:
            raise ValueError(f"unknown client {self.client!r}: choose one of {', '.join(CLIENTS)}")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.endpoint

    @property
    def reference(self) -> bool:
        """The bounty client's reproduction: run as the bounty client runs (its own process, asyncio's loop)."""
        return self.client == "reference"

    def payload(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": spec.prompt,
            "temperature": 0.0,
            "best_of": 1,
            "max_tokens": spec.output_len,
            "logprobs": None,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body.update(self.ignore_eos_fields)
        body.update(self.extra_body)
        return body

    def asks_ignore_eos(self, body: dict[str, Any]) -> bool:
        """Whether a request body (``--extra-body`` included) asks for exactly max_tokens tokens."""
        return self.ignore_eos and bool(self.ignore_eos_fields) and all(
            body.get(k) == v for k, v in self.ignore_eos_fields)

    def headers(self) -> dict[str, str]:
        return auth_headers(self.api_key)


@dataclass(slots=True)
class RequestResult:
    """What one request measured. Times are ``time.perf_counter()`` seconds."""

    prompt_len: int
    output_len_requested: int
    success: bool = False
    error: str = ""
    start: float = 0.0
    ttft: float = 0.0
    latency: float = 0.0  # E2EL: last choices event minus start
    # Per-event series are compact arrays (8 or 4 bytes an event, not a Python object each):
    # thousands of streams of thousands of events must fit in a small client.
    itl: Sequence[float] = field(default_factory=lambda: array("d"))  # gaps between events with choices
    event_tokens: Sequence[int] = field(default_factory=lambda: array("l"))  # tokens per event, from usage on every event
    event_text_ends: Sequence[int] = field(default_factory=lambda: array("l"))  # where each event's text ends
    output_tokens: int | None = None  # usage.completion_tokens from the server, the last usage on any event (ours)
    # The bounty client's own count (RequestFuncOutput.output_tokens): 0 until a chunk without choices carries
    # usage, then its completion_tokens (None there: the text is re-tokenized). The reference keys use it.
    reference_output_tokens: int | None = 0
    server_prompt_tokens: int | None = None  # usage.prompt_tokens from the server
    generated_text: str = ""
    events: int = 0  # SSE events with choices
    response_id: str | None = None  # the "id" of the server's first chunk (matches server logs)
    malformed_events: int = 0  # stream lines or events the bounty client cannot read (not JSON objects, comments)
    malformed_example: str | None = None  # the first of them, shortened
    error_events: int = 0  # error events in the stream (no choices, no usage: the bounty client ignores them)


def note_malformed(out: RequestResult, data: bytes | str) -> None:
    """Count a stream event that is not a JSON object (the record counts them: ``inferencemax.stream``)."""
    out.malformed_events += 1
    if out.malformed_example is None:
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        out.malformed_example = text[:120]


@dataclass
class LiveStats:
    """Counters the progress display reads while a run goes on."""

    total: int
    done: int = 0
    failed: int = 0
    streamed_events: int = 0  # events with choices so far (about one token each on vLLM)
    in_flight: int = 0
    started: float = field(default_factory=time.perf_counter)
    last_progress: float = field(default_factory=time.perf_counter)  # last bytes received or request ended

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class InitialRequest:
    """The bounty client's "initial single prompt test run" (499c0b1): the first prompt once, before
    anything else, untimed and not counted; the run goes on only if it succeeded."""

    success: bool
    error: str = ""
    latency: float = 0.0  # seconds to its last event, as its client measured it

    @property
    def failure(self) -> str | None:
        """The reference's reason for aborting, with the request's error; None when it succeeded."""
        return None if self.success else INITIAL_TEST_FAILED.format(error=self.error)


@dataclass
class LoadResult:
    results: list[RequestResult]
    duration: float  # seconds of the timed run, warmups excluded
    started_at: str  # ISO 8601 wall-clock time the timed run began
    warmups: int
    warmup_failures: int
    aborted: str | None = None  # why the run was cut short, if it was
    lag: LoopLag | None = None  # the client's own event-loop lag during the timed run (None: not probed)
    client_cpu_s: float = 0.0  # CPU seconds the client process(es) used during the timed run
    client_procs: int = 1
    t0: float = 0.0  # perf_counter() when the timed run began (one clock for all client processes)
    arrival_clock: ArrivalClock = ArrivalClock.READ
    client: str = "precise"  # the load generator that made it (ClientConfig.client)
    initial_request: InitialRequest | None = None  # None: not sent (the stage's client sends none)
    event_loop: str = ""  # the loop the load ran on: "uvloop" or "asyncio"
    isolated: bool = False  # the load ran in its own process(es), apart from the sampler and progress
    warmup_errors: list[str] = field(default_factory=list)  # each failed warmup's error


class Sender(Protocol):
    """One load generator's way of sending a request and measuring it: the precise client
    (``precise_client.PreciseSender``) or the reference-parity client (``refclient.ReferenceSender``), made by
    ``clients.make_sender``; ``loadgen.run_load`` drives either the same way."""

    arrival_clock: ArrivalClock  # how arrival times were taken

    async def send(self, spec: RequestSpec, live: LiveStats | None) -> RequestResult: ...

    async def close(self) -> None: ...
