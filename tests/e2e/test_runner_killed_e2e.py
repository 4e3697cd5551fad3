"""A runner killed with SIGKILL (the OOM killer, a CI job killed hard) leaves nothing running: the server
it launched, with every process of the server's group, and its client processes end within seconds.

The server is the calibration server launched as a suite's recipe with two worker processes (the second
forked by the first, in its group, as vLLM's engine processes are) and a third process that ignores
SIGTERM (``--ignoring-child``, as an engine process stuck in a driver call), so the whole group is tested,
not only the process the runner started, and the watchdog's SIGKILL after its grace too."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from calibration import calibration_server
from e2e_support import (REPO, SUITE_TEST, calibration_suite_toml, process_group, stage_toml, start_pytest_stamped,
                         text_of, wait_for_line)
from pytest_inferencemax.serve.supervisor import GRACE_S

pytestmark = pytest.mark.e2e

STAGES = stage_toml("{ isl = 16, osl = 2000, conc = [2], prompts_per_conc = 4 }", warmups=0)
# 2000 tokens, one every 10 ms: each request streams for 20 s, longer than the 10 s allowed below


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``, as pid -> its start time (so that a reused pid is not mistaken
    for it)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        starts[pid] = fields[19]
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = starts[pid]
        todo += children.get(pid, [])
    return found


def still_running(procs: dict[int, str]) -> list[int]:
    return [pid for pid, start in procs.items()
            if (f := _proc_stat(pid)) is not None and f[0] not in ("Z", "X") and f[19] == start]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_run(pytester: pytest.Pytester, args: list[str]) -> tuple[subprocess.Popen, list[tuple[float, str]]]:
    return start_pytest_stamped(pytester.path, "cal", args)  # SIGINT, SIGTERM and SIGHUP at their defaults


def wait_until(condition, proc: subprocess.Popen, lines: list[tuple[float, str]], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert proc.poll() is None, f"the run ended before {what}:\n" + text_of(lines)
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s:\n" + text_of(lines)
        time.sleep(0.1)
    return found


def kill_and_time(proc: subprocess.Popen, procs: dict[int, str], limit: float = GRACE_S + 7.0) -> float:
    """SIGKILL the runner; seconds until none of ``procs`` runs any more (fails past ``limit``, after
    killing what is left: a failed test leaves nothing behind either)."""
    proc.kill()
    t0 = time.monotonic()
    proc.wait(10)
    while left := still_running(procs):
        if time.monotonic() - t0 > limit:
            described = [(p, cmdline(p)) for p in left]
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"still running {limit:g} s after the runner's SIGKILL: {described}")
        time.sleep(0.05)
    return time.monotonic() - t0


def write_suite(pytester: pytest.Pytester, argv: str) -> None:
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(argv, STAGES))
    (d / "test_cal.py").write_text(SUITE_TEST)


def test_a_launched_server_and_every_process_of_its_group_end_when_the_runner_is_killed(
        pytester, smollm2_model, tmp_path):
    server = REPO / "benchmarks" / "calibration_server.py"
    truth = tmp_path / "truth"
    truth.mkdir()
    write_suite(pytester, f'["${{python}}", "{server}", "--port", "${{port}}", "--model", "calibration", '
                          f'"--ttft-ms", "5", "--itl-ms", "10", "--workers", "2", "--truth-dir", "{truth}", '
                          f'"--ignoring-child"]')
    proc, lines = start_run(pytester, ["--tokenizer", str(smollm2_model), "--results-dir", str(tmp_path),
                                       "--run-id", "r", "--telemetry-interval", "0", "--skip-accuracy",
                                       "--extra-body", '{"calibration": {"prompt_tokens": 16}}'])
    try:
        wait_for_line(lines, "requests at concurrency 2", proc)  # the point being measured
        procs = descendants(proc.pid)
        leaders = [p for p in procs if "calibration_server.py" in cmdline(p) and os.getpgid(p) == p]
        assert len(leaders) == 1, [(p, cmdline(p)) for p in procs]
        group = leaders[0]
        # the server, the worker it forked and the process that ignores SIGTERM: grandchildren of the runner
        assert len(process_group(group)) == 3, [(p, cmdline(p)) for p in process_group(group)]
        assert set(process_group(group)) <= set(procs)
        took = kill_and_time(proc, procs)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert process_group(group) == []
    print(f"server group {group} and every process the runner started gone {took:.2f} s after its SIGKILL")
    log = next((tmp_path / "r").glob("server-cal-*.log")).read_text()
    said = f"inferencemax watchdog: the runner (pid {proc.pid}) ended without stopping its server(s): " \
           f"SIGTERM sent to the process group(s) {group}"
    assert said in log
    # the server and its worker ended on the SIGTERM; the process that ignores it, on the SIGKILL after the grace
    assert f"calibration server (pid {group}): SIGTERM" in log
    assert f"process group(s) {group} still ran {GRACE_S:g} s after SIGTERM: SIGKILL sent" in log
    assert took >= GRACE_S  # (the watchdog's clock starts when it sees the runner gone: after this test's)
    wait_for_line(lines, said, proc)  # and on the run's output (the watchdog writes it to the runner's stderr)


def test_client_processes_end_when_the_runner_is_killed(pytester, smollm2_model, tmp_path):
    with calibration_server("--ttft-ms", "5", "--itl-ms", "10") as base:  # outside the run: it stays up
        write_suite(pytester, '["true"]')
        proc, lines = start_run(pytester, ["--server-url", base, "--served-model-name", "calibration",
                                           "--tokenizer", str(smollm2_model), "--results-dir", str(tmp_path),
                                           "--run-id", "r", "--telemetry-interval", "0", "--skip-accuracy",
                                           "--client-procs", "2",
                                           "--extra-body", '{"calibration": {"prompt_tokens": 16}}'])
        try:
            def clients() -> dict[int, str]:
                procs = descendants(proc.pid)
                return procs if sum("multiprocessing.spawn" in cmdline(p) for p in procs) == 2 else {}

            wait_for_line(lines, "requests at concurrency 2", proc)  # the point being measured
            procs = wait_until(clients, proc, lines, 30, "two client processes")
            took = kill_and_time(proc, procs)
        finally:
            if proc.poll() is None:
                proc.kill()
    print(f"the client processes (and all else the runner started) gone {took:.2f} s after its SIGKILL")
