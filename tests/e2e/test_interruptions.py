"""Interruptions as a user meets them: Ctrl-C, SIGTERM (timeout, a cancelled CI job, kill) and SIGHUP
(a closed terminal), while the server starts or in the middle of a point, end the run the same way: the
server's whole process group is torn down by the runner before it exits, the results say which point was
interrupted and which never ran, the verdict says "incomplete", no traceback, exit code 2. A signal that
pytest was started with ignored (a background job's SIGINT, nohup's SIGHUP) stays ignored, said once.

The server is the calibration server launched as the suite's recipe with two processes in its group (the
second forked by the first, as vLLM's engine processes are): while it starts (``--start-delay``: /health
answers 503) or with requests in flight that never end by themselves (``--stall-after 1``: one token, then
silence), as its own counters (``/calibration/stats``) say, never after a fixed sleep. Every run is
started with SIGINT, SIGTERM and SIGHUP at their defaults (``default_signals``) unless the test says
otherwise."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from e2e_support import (SUITE_TEST, calibration_argv, calibration_stats, calibration_suite_toml, launched_server,
                         pids_with_arg, process_group, stage_toml, start_pytest_stamped, text_of, wait_for_line)

STAGES = stage_toml("{ isl = 16, osl = 4, conc = [2, 4], prompts_per_conc = 1 }")
BY = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
AT_ONCE_S = 5.0  # "at once" (docs/faults.md), on a loaded 2-core machine: the signal to the runner's exit


def write_suite(pytester: pytest.Pytester, *server_args: str, stages: str = STAGES) -> None:
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv(*server_args), stages))
    (d / "test_cal.py").write_text(SUITE_TEST)


def run_args(smollm2_model: Path, tmp_path: Path) -> list[str]:
    return ["--tokenizer", str(smollm2_model), "--results-dir", str(tmp_path), "--run-id", "r",
            "--telemetry-interval", "0", "--skip-accuracy", "--extra-body", '{"calibration": {"prompt_tokens": 16}}']


def server_leader(tag: str) -> int:
    """The launched server's first process (its group's leader), found by an argument only it has."""
    leaders = [p for p in pids_with_arg(tag) if _pgid(p) == p]
    return leaders[0] if len(leaders) == 1 else 0


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def stats_or_none(base: str) -> dict | None:
    try:
        return calibration_stats(base)
    except OSError:  # not listening yet
        return None


def wait_until(condition, proc, lines, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert proc.poll() is None, f"the run ended before {what}:\n{text_of(lines)}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s:\n{text_of(lines)}"
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
@pytest.mark.parametrize("phase", ["during-start", "mid-point"])
def test_an_interrupted_run_tears_the_server_group_down_and_says_what_it_stopped(
        pytester, smollm2_model, tmp_path, sig, phase):
    truth = tmp_path / "truth"  # also the tag that finds the server's processes
    truth.mkdir()
    write_suite(pytester, "--ttft-ms", "5", "--itl-ms", "5", "--workers", "2", "--truth-dir", str(truth),
                *(["--start-delay", "600"] if phase == "during-start" else ["--stall-after", "1"]))
    proc, lines = start_pytest_stamped(pytester.path, "cal", run_args(smollm2_model, tmp_path))
    try:
        base, log = launched_server(lines, proc)
        if phase == "during-start":  # serving 503 on /health, both processes of its group up
            wait_until(lambda: (stats_or_none(base) or {}).get("ready") is False, proc, lines,
                       "server answering while it starts")
        else:  # the first point's requests in flight, each stalled after one token
            wait_for_line(lines, "requests at concurrency 2", proc)
            wait_until(lambda: calibration_stats(base)["in_flight"] >= 1, proc, lines, "request in flight")
        group = wait_until(lambda: server_leader(str(truth)), proc, lines, "server leader")
        assert len(process_group(group)) == 2, process_group(group)  # the server and the worker it forked
        proc.send_signal(sig)
        sent = time.monotonic()
        assert proc.wait(60) == pytest.ExitCode.INTERRUPTED, text_of(lines)
        took = time.monotonic() - sent
        left = process_group(group)  # read at once: the runner ends the group before it exits
    finally:
        if proc.poll() is None:
            proc.kill()
    by = BY[sig]
    print(f"{by} {phase}: the run ended {took:.2f} s after the signal")
    assert left == [], f"the server's group still ran when the runner had exited: {left}"
    assert took < AT_ONCE_S, f"the run took {took:.1f} s to end after {by}"
    server_log = log.read_text()
    assert f"calibration server (pid {group}): SIGTERM" in server_log  # stopped by the runner's teardown...
    assert "inferencemax watchdog" not in server_log  # ...not by the watchdog that acts once the runner is gone
    wait_for_line(lines, "INCOMPLETE", proc)
    out = text_of(lines)
    assert f"INCOMPLETE: interrupted by {by} during cal-16-4-c2; 1 point(s) not run: cal-16-4-c4" in out
    assert "Traceback" not in out and "never retrieved" not in out and len(out.splitlines()) < 40, out
    assert "left ignored" not in out  # every interrupting signal was at its default
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["interrupted"] == {"by": by, "point": "cal-16-4-c2", "not_run": ["cal-16-4-c4"], "deselected": 0}
    assert {"point": "cal-16-4-c2", "reason": f"interrupted by {by}"} in summary["failures"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"**Incomplete run**: interrupted by {by} during cal-16-4-c2" in report


ONE_POINT = stage_toml("{ isl = 16, osl = 10, conc = [1], prompts_per_conc = 2 }", warmups=0)
# 10 tokens, one every 50 ms: each request streams for half a second, the second after the first


def nohup_in_the_background() -> None:
    """In a child before exec: as ``nohup pytest ... &`` from a script starts it: SIGINT and SIGHUP ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


def test_signals_ignored_when_pytest_started_stay_ignored_and_it_says_so_once(pytester, smollm2_model, tmp_path):
    """The plugin's choice (docs/faults.md): it respects a signal its process was started with ignored, as
    Python does for SIGINT, instead of installing its handler over it; one progress line says so."""
    write_suite(pytester, "--ttft-ms", "5", "--itl-ms", "50", stages=ONE_POINT)
    proc, lines = start_pytest_stamped(pytester.path, "cal", run_args(smollm2_model, tmp_path),
                                       preexec_fn=nohup_in_the_background)
    try:
        base, _ = launched_server(lines, proc)
        wait_for_line(lines, "requests at concurrency 1", proc)
        before = wait_until(lambda: (s := calibration_stats(base))["in_flight"] >= 1 and s, proc, lines,
                            "request in flight")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(60) == pytest.ExitCode.OK, text_of(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for_line(lines, "passed", proc)
    out = text_of(lines)
    said = ("inferencemax: SIGINT (Ctrl-C), SIGHUP left ignored, as pytest was started (a background job, nohup): "
            "they do not stop this run; SIGTERM does")
    assert out.count(said) == 1, out
    assert "interrupted" not in out and "INCOMPLETE" not in out
    # the signals came with the point's first request in flight; both ran to their end after them
    assert before["received"] <= 2  # the readiness check's request, and the point's first
    assert json.loads((tmp_path / "r" / "cal-16-10-c1.json").read_text())["completed"] == 2
