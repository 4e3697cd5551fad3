"""The launched server's lifecycle on the real vLLM CPU server: death mid-point, bad recipes, busy ports."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml


def _write_suite(pytester, workloads: str) -> None:
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml(workloads))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the pytest run ended early"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


def test_server_killed_mid_point_costs_one_point(pytester, smollm2_model, tmp_path):
    # c1 is short, c2 long enough to be killed in the middle, c3 short again on a new server
    _write_suite(pytester, "{ isl = 32, osl = 8, conc = [1], prompts_per_conc = 2 },"
                           "{ isl = 32, osl = 64, conc = [2], prompts_per_conc = 12 },"
                           "{ isl = 32, osl = 9, conc = [3], prompts_per_conc = 1 }")
    run_dir = tmp_path / "kill"
    log = tmp_path / "pytest.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "mini", "--results-dir", str(tmp_path), "--run-id", "kill",
             "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider"],
            cwd=pytester.path, stdout=out, stderr=subprocess.STDOUT)
        try:
            first = run_dir / "mini-32-8-c1.json"
            _wait_for(first, proc, timeout=400)
            first_bytes = first.read_bytes()
            pid = json.loads(first_bytes)["inferencemax"]["server"]["pid"]
            time.sleep(4)  # well inside c2 (24 requests of 64 tokens at concurrency 2)
            assert not (run_dir / "mini-32-64-c2.json").exists()
            os.killpg(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert proc.returncode == 1, text[-3000:]
    assert "1 failed, 2 passed" in text
    # the point failed fast and said why, with the log tail; the next point ran on a restarted server
    assert "mini-32-64-c2 stopped: the server process" in text and "killed by signal 9" in text
    assert "--- last lines of" in text
    assert "restarting the server (the server process" in text
    failed_line = next(line for line in text.splitlines() if line.startswith("FAILED mini-32-64-c2"))
    assert "killed by signal 9" in failed_line
    assert first.read_bytes() == first_bytes  # earlier results intact
    killed = json.loads((run_dir / "mini-32-64-c2.json").read_text())  # the stopped point's record, with its cause
    assert "killed by signal 9" in killed["inferencemax"]["aborted"] and killed["completed"] < 24
    third = json.loads((run_dir / "mini-32-9-c3.json").read_text())
    assert third["completed"] == 3 and third["inferencemax"]["server"]["pid"] != pid
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [f["point"] for f in summary["failures"]] == ["mini-32-64-c2"]
    assert len(list(run_dir.glob("server-mini-*.log"))) == 2
    # failing fast: the abort check runs every second; the rest of the time is the restart
    c2_fail = text.index("mini-32-64-c2 stopped")
    assert c2_fail > 0 and time.monotonic() - killed_at < 600


def test_recipe_that_cannot_start_fails_clearly(pytester, smollm2_model, tmp_path):
    _write_suite(pytester, "{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }")
    t0 = time.monotonic()
    run = pytester.runpytest_subprocess(
        "mini", "--model", str(tmp_path / "no-such-model"), "--tokenizer", str(smollm2_model),
        "--server-start-timeout", "240", "--results-dir", str(tmp_path), "--models-dir", str(MODELS_DIR),
        timeout=400)
    elapsed = time.monotonic() - t0
    run.assert_outcomes(failed=2)
    out = run.stdout.str()
    assert "the server exited during start-up" in out and "--- last lines of" in out
    assert "no-such-model" in out  # the log tail shows vLLM's own complaint
    assert "not retried: this server configuration failed to start earlier" in out  # the second point
    assert elapsed < 240


def test_ctrl_c_during_start_leaves_nothing_running(pytester, smollm2_model, tmp_path):
    from e2e_support import interruptible, pids_with_arg, process_group

    _write_suite(pytester, "{ isl = 16, osl = 4, conc = [1], prompts_per_conc = 1 }")
    name = f"ctrlc-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "mini", "--served-model-name", name, "--results-dir", str(tmp_path),
         "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 120
        while not (servers := [p for p in pids_with_arg(name) if p != proc.pid]):
            assert time.monotonic() < deadline and proc.poll() is None, "the server never started"
            time.sleep(0.2)
        server_pid = min(servers)
        time.sleep(8)  # the server is busy starting: engine processes exist by now
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "KeyboardInterrupt" in out
    assert process_group(server_pid) == [] and pids_with_arg(name) == []
