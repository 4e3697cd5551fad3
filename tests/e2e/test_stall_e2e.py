"""A server that stops answering fails the point within the stall timeout, not hours later."""
from __future__ import annotations

import json
import time


from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer


def test_stalled_point_fails_fast_through_the_plugin(pytester, smollm2_model, tmp_path):
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(mini_suite_toml('{ isl = 16, osl = 8, conc = [2], prompts_per_conc = 2 }'))
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("midstream") as server:
        t0 = time.monotonic()
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--stall-timeout", "2", "--results-dir", str(tmp_path),
            "--run-id", "stall", "--models-dir", str(MODELS_DIR), timeout=120)
        elapsed = time.monotonic() - t0
    run.assert_outcomes(failed=1)
    out = run.stdout.str()
    # the stream stalls already in the warmups, which are watched like the timed run
    assert "mini-16-8-c2 stopped: during warmups: stalled: no request made progress" in out
    assert "FAILED mini-16-8-c2: mini-16-8-c2 stopped: during warmups: stalled" in out  # the summary names it
    assert elapsed < 60
    summary = json.loads((tmp_path / "stall" / "summary.json").read_text())
    assert summary["failures"][0]["point"] == "mini-16-8-c2" and "stalled" in summary["failures"][0]["reason"]
    # the stopped point leaves its record, with its status and cause, shown as such in the table
    rec = json.loads((tmp_path / "stall" / "mini-16-8-c2.json").read_text())
    assert rec["inferencemax"]["aborted"].startswith("during warmups: stalled") and rec["completed"] == 0
    assert summary["points"][0]["point"] == "mini-16-8-c2"
    assert any(line.startswith("mini-16-8-c2") and line.rstrip().endswith("ABORTED") for line in out.splitlines())
