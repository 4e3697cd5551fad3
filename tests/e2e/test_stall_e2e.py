"""A server that stops answering mid-stream fails the point after --stall-timeout seconds without a byte,
not hours later, and a launched server is restarted for the next point (docs/faults.md).

The server is the calibration server launched as the suite's recipe with ``--stall-after 2``: each stream
sends two tokens, then nothing, its connection held open (a one-token request, the runner's readiness
check, ends as usual)."""
from __future__ import annotations

import json
import re

from e2e_support import SUITE_TEST, calibration_argv, calibration_suite_toml, stage_toml

STAGES = stage_toml("{ isl = 16, osl = 8, conc = [1, 2], prompts_per_conc = 1 }")
STALL_S = 1


def test_a_stalled_point_fails_after_the_stall_timeout_and_the_next_point_gets_a_new_server(
        pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--ttft-ms", "5", "--itl-ms", "5",
                                                                          "--stall-after", "2"), STAGES))
    (d / "test_cal.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(smollm2_model), "--stall-timeout", str(STALL_S), "--results-dir", str(tmp_path),
        "--run-id", "stall", "--telemetry-interval", "0", "--extra-body", '{"calibration": {"prompt_tokens": 16}}',
        "--durations=0", "-vv", "-p", "no:cacheprovider", timeout=120)
    run.assert_outcomes(failed=2)
    out = run.stdout.str()
    # the stream stalls already in the warmups, which are watched like the timed run
    assert "cal-16-8-c1 stopped: during warmups: stalled: no request made progress" in out
    assert "FAILED cal-16-8-c1: cal-16-8-c1 stopped: during warmups: stalled" in out  # the summary names it
    # after the stall timeout, give or take the one-second tick of the check: not earlier, not much later
    quiet = [int(s) for s in re.findall(r"no request made progress for (\d+) s", out)]
    assert quiet and all(STALL_S <= s <= STALL_S + 2 for s in quiet), quiet
    # the hung server is not reused: the next point restarts it, and stalls on the new one
    assert "inferencemax: restarting the server (it stalled during cal-16-8-c1)" in out
    assert len(list((tmp_path / "stall").glob("server-cal-*.log"))) == 2
    summary = json.loads((tmp_path / "stall" / "summary.json").read_text())
    assert [f["point"] for f in summary["failures"]] == ["cal-16-8-c1", "cal-16-8-c2"]
    assert all("stalled" in f["reason"] for f in summary["failures"])
    # each stopped point leaves its record, with its status and cause, shown as such in the table
    records = [json.loads((tmp_path / "stall" / f"cal-16-8-c{c}.json").read_text()) for c in (1, 2)]
    assert all(r["inferencemax"]["aborted"].startswith("during warmups: stalled") and r["completed"] == 0
               for r in records)
    assert records[0]["inferencemax"]["server"]["pid"] != records[1]["inferencemax"]["server"]["pid"]
    assert [p["point"] for p in summary["points"]] == ["cal-16-8-c1", "cal-16-8-c2"]
    assert any(line.startswith("cal-16-8-c1") and line.rstrip().endswith("ABORTED") for line in out.splitlines())
