"""The server and its GPUs, watched through a point: a thread samples ``/metrics`` and the GPU tool.

Every ``interval`` seconds (``--telemetry-interval``, 1 s by default) the sampler reads the server's
Prometheus page (the roles of ``serve/engine_metrics.py``) and, when the host has a GPU tool, one
reading per GPU (``serve/gpu.py``). It runs in its own thread, off the client's event loop: its cost
is measured in benchmarks/README.md. :meth:`TelemetrySampler.mark` takes a sample at once, on the
caller's thread: the runner marks the start and the end of the timed run, so that counters (tokens,
preemptions) and histograms (server-side TTFT, queue time) are read exactly over it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from pytest_inferencemax.serve.gpu import GpuReading, find_tool, read_gpus
from pytest_inferencemax.serve.engine_metrics import pick
from pytest_inferencemax.serve.server_metrics import read_totals


@dataclass(frozen=True)
class Sample:
    t: float  # perf_counter() when it was taken (the load generator's clock)
    server: dict[str, float] | None  # roles of serve/engine_metrics.py; None when /metrics could not be read
    gpus: tuple[GpuReading, ...] = ()
    mark: str | None = None  # "start" / "end" of the timed run


@dataclass
class Telemetry:
    """What the sampler saw: its samples, the GPU tool it used (or why there is none), its own cost."""

    samples: list[Sample] = field(default_factory=list)
    interval: float = 1.0
    gpu_tool: str | None = None
    gpu_absent: str | None = None
    thread_cpu_s: float = 0.0  # CPU the sampling thread used
    server_absent: str | None = None  # why /metrics could not be read, the first time it could not


class TelemetrySampler:
    """``with TelemetrySampler(base_url) as s: ...``; ``s.telemetry`` holds the samples afterwards."""

    def __init__(self, base_url: str, *, interval: float = 1.0, api_key: str | None = None,
                 gpu_ids: Sequence[str] | None = None,
                 read_server: Callable[[], dict[str, float] | None] | None = None) -> None:
        self._read_server = read_server or (lambda: self._server_roles(base_url, api_key))
        tool = find_tool()
        self._gpu_tool = tool
        self._gpu_ids = list(gpu_ids) if gpu_ids else None
        self.telemetry = Telemetry(interval=interval, gpu_tool=tool[0] if tool else None,
                                   gpu_absent=None if tool else "no amd-smi, rocm-smi or nvidia-smi on PATH")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inferencemax-telemetry", daemon=True)

    def __enter__(self) -> TelemetrySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def mark(self, label: str) -> None:
        """Take a sample now, labelled (the start or end of the timed run)."""
        self._take(label)

    def _take(self, label: str | None = None) -> None:
        t = time.perf_counter()
        server = self._read_server()
        gpus = tuple(read_gpus(self._gpu_tool, only=self._gpu_ids)) if self._gpu_tool else ()
        with self._lock:
            self.telemetry.samples.append(Sample(t, server, gpus, label))

    def _run(self) -> None:
        cpu0 = time.thread_time()
        while True:
            self._take()
            if self._stop.wait(self.telemetry.interval):
                break
        self.telemetry.thread_cpu_s = time.thread_time() - cpu0


    def _server_roles(self, base_url: str, api_key: str | None) -> dict[str, float] | None:
        totals, why = read_totals(base_url, timeout=5.0, api_key=api_key)
        if totals is None and self.telemetry.server_absent is None:
            self.telemetry.server_absent = why  # e.g. "GET /metrics answered HTTP 404" (transformers serve has none)
        return pick(totals) if totals is not None else None
