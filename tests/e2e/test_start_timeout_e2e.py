"""A launched server that never becomes ready fails its start within --server-start-timeout, with the
cause and the log's tail, leaves no process behind, and the points that share its recipe are not
retried (docs/faults.md).

The server is the calibration server launched as the suite's recipe with ``--start-delay 600`` and two
processes in its group: it runs, logs and answers, but /health says 503 for ten minutes."""
from __future__ import annotations

import re

from e2e_support import SUITE_TEST, calibration_argv, calibration_suite_toml, pids_with_arg, stage_toml

STAGES = stage_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }")
TIMEOUT_S = 2


def test_a_server_that_never_becomes_ready_fails_within_the_start_timeout(pytester, smollm2_model, tmp_path):
    tag = tmp_path / "truth"  # an argument only this server has: finds its processes
    tag.mkdir()
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--start-delay", "600", "--workers", "2",
                                                                          "--truth-dir", str(tag)), STAGES))
    (d / "test_cal.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(smollm2_model), "--server-start-timeout", str(TIMEOUT_S), "--results-dir",
        str(tmp_path), "--run-id", "r", "--telemetry-interval", "0", "--durations=0", "-vv", "-p", "no:cacheprovider",
        timeout=120)
    run.assert_outcomes(failed=2)
    out = run.stdout.str()
    assert (f"the server was not ready within {TIMEOUT_S} s (/health does not answer 2xx yet); raise "
            "--server-start-timeout if it is still compiling") in out
    assert "--- last lines of" in out and "answering 503 for 600 s (--start-delay)" in out  # the log's tail
    assert "cal-16-4-c2" in out and "not retried: this server configuration failed to start earlier" in out
    assert pids_with_arg(str(tag)) == []  # stopped, both processes of its group: nothing left
    assert len(list((tmp_path / "r").glob("server-cal-*.log"))) == 1  # launched once
    # the first point failed once the timeout had passed, within the readiness check's one-second period
    # and the load of a shared machine: not earlier, not minutes later (pytest's own clock of the test)
    (took,) = [float(s) for s in re.findall(r"([\d.]+)s call .*test_point\[cal-16-4-c1\]", out)]
    assert TIMEOUT_S <= took <= TIMEOUT_S + 3, took
