"""The pieces of the client that need no server: the loop-lag limit and merge, and how several client processes
share a point. What the client measures against the calibration server (benchmarks/calibration_server.py), which
records when it really wrote each event, is checked in tests/e2e (it starts that server as a process)."""
from __future__ import annotations

import pytest

from pytest_inferencemax.measure.looplag import LoopLag, lag_limit_ms
from pytest_inferencemax.measure.multiclient import split
from calibration import specs


def test_lag_limit_and_merge():
    assert lag_limit_ms(4.0) == 1.0 and lag_limit_ms(100.0) == pytest.approx(5.0)
    merged = LoopLag.merge([LoopLag(10, 0.1, 0.5, 2.0), LoopLag(5, 0.3, 0.2, 9.0)])
    assert merged == LoopLag(15, 0.3, 0.5, 9.0)
    assert LoopLag.of([]) == LoopLag(0, 0.0, 0.0, 0.0)


def test_split_spreads_concurrency_requests_and_warmups():
    reqs = specs(10, 5)
    shares = split(5, reqs, 10, procs=2)
    assert [s.concurrency for s in shares] == [3, 2]
    assert [len(s.requests) for s in shares] == [5, 5]
    assert [s.warmups for s in shares] == [6, 4]
    assert len(split(2, reqs, 0, procs=8)) == 2  # never more processes than slots


def test_only_the_process_holding_the_first_request_sends_the_initial_test_request():
    reqs = specs(10, 5)
    assert [s.initial_test for s in split(6, reqs, 0, procs=3, initial_test=True)] == [True, False, False]
    assert split(6, reqs, 0, procs=3, initial_test=True)[0].requests[0] is reqs[0]
    assert [s.initial_test for s in split(6, reqs, 0, procs=3)] == [False, False, False]
    assert [s.initial_test for s in split(6, reqs, 0, procs=1, initial_test=True)] == [True]


