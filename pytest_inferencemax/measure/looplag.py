"""The client's self-check: how long its event loop made ready work wait, during the timed run.

Every ``interval`` a probe yields once to the loop and measures how long it took to be run
again. That is the delay any arriving bytes would have had before being stamped: the
callbacks queued ahead of it plus one poll of the sockets. An idle client answers in
microseconds; a saturated one (too many streams for one core, or anything else holding the GIL
in the client process) in milliseconds, and its TTFT and ITL figures are off by about as much.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

DEFAULT_INTERVAL = 0.01  # seconds between probes


@dataclass(frozen=True)
class LoopLag:
    """Summary of the probes, in milliseconds."""

    samples: int
    median_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, lags_s: Iterable[float]) -> "LoopLag":
        arr = np.asarray(list(lags_s), dtype=float) * 1000.0
        if arr.size == 0:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(int(arr.size), float(np.median(arr)), float(np.percentile(arr, 99)), float(arr.max()))

    @classmethod
    def merge(cls, parts: Iterable["LoopLag"]) -> "LoopLag":
        """Several client processes: the worst of each figure (each process stamps its own reads)."""
        parts = [p for p in parts if p.samples]
        if not parts:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(sum(p.samples for p in parts), max(p.median_ms for p in parts),
                   max(p.p99_ms for p in parts), max(p.max_ms for p in parts))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lag_limit_ms(median_event_gap_ms: float, floor_ms: float = 1.0, share: float = 0.05) -> float:
    """The lag above which a point counts as client-bound: 5% of its median gap between events,
    and never below ``floor_ms`` (a lag below 1 ms is within the run-to-run noise of any server)."""
    return max(floor_ms, share * median_event_gap_ms)


class LoopLagMonitor:
    """Start inside a running loop; ``await stop()`` returns the :class:`LoopLag` of the probes."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        perf = time.perf_counter
        while True:
            await asyncio.sleep(self.interval)
            t0 = perf()
            await asyncio.sleep(0)  # back of the ready queue: runs after everything now waiting
            self._lags.append(perf() - t0)

    async def stop(self) -> LoopLag:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return LoopLag.of(self._lags)
