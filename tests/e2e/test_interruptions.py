"""Interruptions as a user meets them: Ctrl-C, SIGTERM (timeout, a cancelled CI job, kill) and SIGHUP
(a closed terminal) end the run the same way: the server's whole process group is torn down, the
results say which point was interrupted and which never ran, the verdict says "incomplete", no
traceback, exit code 2."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml, pids_with_arg, process_group, start_pytest
from faulty_server import FaultyServer


def start(pytester: pytest.Pytester, args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    return start_pytest(pytester.path, "mini", args)


def wait_for(lines: list[str], text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_an_interrupted_run_says_what_it_stopped_and_what_never_ran(pytester, tmp_path, sig):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2, 4], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("hang") as server:  # the point never ends by itself
        proc, lines = start(pytester, ["--server-url", server.base_url, "--served-model-name", "faulty",
                                       "--skip-accuracy", "--models-dir", str(MODELS_DIR), "--results-dir",
                                       str(tmp_path), "--run-id", "r"])
        wait_for(lines, "requests at concurrency 2", proc, 60)
        time.sleep(1)
        proc.send_signal(sig)
        assert proc.wait(60) == pytest.ExitCode.INTERRUPTED
    out = "".join(lines)
    by = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}[sig]
    assert f"INCOMPLETE: interrupted by {by} during mini-16-4-c2; 1 point(s) not run: mini-16-4-c4" in out
    assert "Traceback" not in out and "never retrieved" not in out and len(out.splitlines()) < 40, out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["interrupted"] == {"by": by, "point": "mini-16-4-c2", "not_run": ["mini-16-4-c4"], "deselected": 0}
    assert {"point": "mini-16-4-c2", "reason": f"interrupted by {by}"} in summary["failures"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"**Incomplete run**: interrupted by {by} during mini-16-4-c2" in report


def test_sigterm_mid_point_leaves_no_process_of_the_launched_server(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 64, conc = [1, 2], prompts_per_conc = 20 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    name = f"sigterm-{os.getpid()}-{time.monotonic_ns()}"
    proc, lines = start(pytester, ["--served-model-name", name, "--skip-accuracy", "--models-dir", str(MODELS_DIR),
                                   "--results-dir", str(tmp_path), "--run-id", "r"])
    try:
        wait_for(lines, "requests at concurrency 1", proc, 300)
        servers = [p for p in pids_with_arg(name) if p != proc.pid]
        assert servers, "".join(lines)
        group = os.getpgid(min(servers))
        assert len(process_group(group)) >= 2  # the API server and its engine process(es)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while process_group(group) or pids_with_arg(name):
            assert time.monotonic() - t0 < 10, f"still running 10 s after SIGTERM: {process_group(group)}"
            time.sleep(0.2)
        assert proc.wait(30) == pytest.ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert "INCOMPLETE: interrupted by SIGTERM during mini-16-64-c1; 1 point(s) not run: mini-16-64-c2" in out
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["interrupted"]["by"] == "SIGTERM"
