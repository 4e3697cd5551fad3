"""Run a point's load in client processes of its own: several, for more streams than one core can read, or
one, for the reference client, whose process must hold only what the bounty client's holds.

Each process runs ``loadgen.run_load`` on its own event loop with a share of the concurrency
and of the requests (request ``j`` goes to process ``j mod N``; the concurrency is split as
evenly as it divides). Process 0 sends the initial test request when the stage's client sends one
(it holds request 0); all processes wait at a barrier after it, do their warmups, wait again, and
start their timed runs together. ``time.perf_counter()`` is CLOCK_MONOTONIC on Linux, one clock for
every process on the host, so the merged run's duration is the last end minus the first start and
every request's times stay comparable. Progress, the abort check and the stall check keep working:
the processes publish their counters in shared memory every tick and stop when told. The reference
client's processes run as the bounty client's ``main`` does: ``gc.collect()`` and ``gc.freeze()``, then
``asyncio.run`` on the default loop (no uvloop); the parent keeps the telemetry sampler and the display.

A client process ends with the process that started it, however that one dies (SIGKILL included): a
thread of its own waits on ``multiprocessing.parent_process().sentinel`` (a pipe that reaches end of file
when the parent ends) and calls ``os._exit``. Daemon processes are only ended by the parent's exit
handlers, which a SIGKILL skips, and ``PR_SET_PDEATHSIG`` would be Linux-only (through ctypes), racy
before it is set, and tied to the parent *thread* that started the process. The thread is blocked in
``poll`` all along: it takes no CPU from the load it shares the process with.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import multiprocessing.connection
import os
import threading
import time
from queue import Empty
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferencemax.measure.loadtypes import ArrivalClock, ClientConfig, LiveStats, LoadResult

from pytest_inferencemax.measure.aio import run_async

from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.looplag import LoopLag
from pytest_inferencemax.measure.workload import RequestSpec

_FIELDS = 5  # per process in the shared array: done, failed, streamed events, in flight, last progress


@dataclass(frozen=True)
class _Share:
    index: int
    concurrency: int
    requests: list[RequestSpec]
    warmups: int
    initial_test: bool = False  # this process sends the initial test request (process 0, which holds request 0)


def split(concurrency: int, requests: Sequence[RequestSpec], num_warmups: int, procs: int,
          initial_test: bool = False) -> list[_Share]:
    """Each process's concurrency, requests and warmups; processes that would get no slot are dropped."""
    procs = max(1, min(procs, concurrency))
    shares = []
    for i in range(procs):
        conc = concurrency // procs + (1 if i < concurrency % procs else 0)
        warm = num_warmups * conc // concurrency
        shares.append(_Share(i, conc, list(requests[i::procs]), warm, initial_test and i == 0))
    return shares


def end_with_parent(exit_code: int = 1) -> threading.Thread | None:
    """In a ``multiprocessing`` child: a daemon thread that ends this process (``os._exit``) as soon as its
    parent process has ended, by any signal. ``None`` in a process that multiprocessing did not start."""
    parent = mp.parent_process()
    if parent is None:
        return None

    def wait_for_parent() -> None:
        mp.connection.wait([parent.sentinel])
        os._exit(exit_code)  # nobody is left to report to, and no cleanup is owed to a dead parent

    watcher = threading.Thread(target=wait_for_parent, name="inferencemax-parent-watch", daemon=True)
    watcher.start()
    return watcher


def _worker(client: ClientConfig, share: _Share, counters: Any, abort: Any, barrier: Any, results: Any,
            tick: float, stall_timeout: float | None) -> None:
    end_with_parent()
    base = share.index * _FIELDS

    def publish(live: LiveStats) -> None:
        counters[base:base + _FIELDS] = [live.done, live.failed, live.streamed_events, live.in_flight,
                                         live.last_progress]

    def told_to_stop() -> str | None:
        return "stopped by the main process" if abort.is_set() else None

    def sync(phase: str) -> str | None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # another process stopped before this phase (a failed initial request, warmups cut short)
        return "stopped by the main process" if abort.is_set() else None

    try:
        if client.reference:  # as the bounty client's main(): collect, freeze, then asyncio.run
            gc.collect()
            gc.freeze()
        result = run_async(run_load(client, share.requests, concurrency=share.concurrency,
                                    num_warmups=share.warmups, initial_test=share.initial_test, on_tick=publish,
                                    abort_check=told_to_stop, tick_interval=tick, stall_timeout=stall_timeout,
                                    sync=sync), uvloop=not client.reference)
    except BaseException as exc:  # noqa: BLE001 - reported to the main process, which raises it
        abort.set()
        barrier.abort()
        results.put((share.index, f"client process {share.index} failed: {type(exc).__name__}: {exc}"))
        return
    if not result.t0:  # stopped before its timed run: the others must not wait for it
        abort.set()
        barrier.abort()
    results.put((share.index, result))


def run_client_load(client: ClientConfig, requests: Sequence[RequestSpec], *, concurrency: int, num_warmups: int,
                    initial_test: bool = False, procs: int = 1, on_tick: Callable[[LiveStats], None] | None = None,
                    abort_check: Callable[[], str | None] | None = None, stall_timeout: float | None = None,
                    on_timed: Callable[[], None] | None = None) -> LoadResult:
    """One run of ``client`` over ``requests``, wherever it must run. The reference client runs in a process of
    its own, as the bounty client does (there, only what it runs: asyncio's loop, no loop-lag probe, no sampler
    thread); several processes spread a heavy load (``multiclient``); the precise client runs here otherwise.
    ``on_timed`` is called when the timed run starts (in the processes' case: when they are started)."""
    if client.reference or procs > 1:
        if on_timed is not None:
            on_timed()
        return run_load_multiprocess(client, requests, concurrency=concurrency, num_warmups=num_warmups,
                                     procs=procs, initial_test=initial_test, on_tick=on_tick, abort_check=abort_check,
                                     stall_timeout=stall_timeout)
    mark = (lambda phase: on_timed() if phase == "timed" else None) if on_timed is not None else None
    return run_async(run_load(client, requests, concurrency=concurrency, num_warmups=num_warmups,
                              initial_test=initial_test, on_tick=on_tick, abort_check=abort_check,
                              stall_timeout=stall_timeout, sync=mark))


def run_load_multiprocess(
    client: ClientConfig,
    requests: Sequence[RequestSpec],
    *,
    concurrency: int,
    num_warmups: int = 0,
    initial_test: bool = False,
    procs: int,
    on_tick: Callable[[LiveStats], None] | None = None,
    abort_check: Callable[[], str | None] | None = None,
    tick_interval: float = 1.0,
    stall_timeout: float | None = None,
) -> LoadResult:
    """``run_load`` over ``procs`` processes (one or more), merged into one :class:`LoadResult`."""
    shares = split(concurrency, requests, num_warmups, procs, initial_test)
    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (pytest, a server watcher)
    counters = ctx.Array("d", len(shares) * _FIELDS, lock=False)
    abort, barrier, queue = ctx.Event(), ctx.Barrier(len(shares)), ctx.Queue()
    workers = [ctx.Process(target=_worker, name=f"inferencemax-client-{s.index}", daemon=True,
                           args=(client, s, counters, abort, barrier, queue, min(tick_interval, 0.5), stall_timeout))
               for s in shares]
    for w in workers:
        w.start()
    live = LiveStats(total=len(requests))
    aborted: str | None = None
    parts: dict[int, LoadResult | str] = {}
    try:
        while len(parts) < len(shares):
            try:
                index, part = queue.get(timeout=tick_interval)
                parts[index] = part
                continue
            except Empty:
                pass
            _gather_live(live, counters, len(shares))
            if on_tick is not None:
                on_tick(live)
            dead = [w.name for w in workers if not w.is_alive() and w.exitcode not in (0, None)]
            reason = (abort_check() if abort_check is not None else None) or (
                f"client process(es) {', '.join(dead)} died" if dead and len(parts) < len(shares) else None)
            if reason and aborted is None:
                aborted = reason
                abort.set()
                barrier.abort()  # processes still in warmups must not wait for the others
            if dead and aborted and all(not w.is_alive() for w in workers):
                break
    finally:
        abort.set()
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
    failures = [p for p in parts.values() if isinstance(p, str)]
    if failures:
        raise RuntimeError("; ".join(failures))
    return merge([p for _, p in sorted(parts.items()) if isinstance(p, LoadResult)], aborted)


def _gather_live(live: LiveStats, counters: Any, n: int) -> None:
    vals = list(counters)
    rows = [vals[i * _FIELDS:(i + 1) * _FIELDS] for i in range(n)]
    live.done = int(sum(r[0] for r in rows))
    live.failed = int(sum(r[1] for r in rows))
    live.streamed_events = int(sum(r[2] for r in rows))
    live.in_flight = int(sum(r[3] for r in rows))
    live.last_progress = max((r[4] for r in rows), default=time.perf_counter()) or live.last_progress


def merge(parts: Sequence[LoadResult], aborted: str | None = None) -> LoadResult:
    """One run from several processes' runs on the same clock."""
    timed = [p for p in parts if p.t0]
    start = min((p.t0 for p in timed), default=0.0)
    end = max((p.t0 + p.duration for p in timed), default=0.0)
    reason = aborted or next((p.aborted for p in parts if p.aborted), None)
    return LoadResult(
        results=[r for p in parts for r in p.results], duration=end - start,
        started_at=min((p.started_at for p in parts if p.started_at), default=""),
        warmups=sum(p.warmups for p in parts), warmup_failures=sum(p.warmup_failures for p in parts),
        warmup_errors=[e for p in parts for e in p.warmup_errors],
        aborted=reason, lag=LoopLag.merge(lags) if (lags := [p.lag for p in parts if p.lag is not None]) else None,
        client_cpu_s=sum(p.client_cpu_s for p in parts), client_procs=len(parts), t0=start,
        arrival_clock=parts[0].arrival_clock if parts and len({p.arrival_clock for p in parts}) == 1 else ArrivalClock.READ,
        client=parts[0].client if parts else "precise",
        initial_request=next((p.initial_request for p in parts if p.initial_request is not None), None),
        event_loop=parts[0].event_loop if parts else "", isolated=True)
