"""The launched server's lifecycle on the calibration server launched as a recipe: death mid-point (the point fails
within seconds, the next one gets a new server) and a recipe that cannot start. The real vLLM's death mid-point:
test_vllm_suite.py."""
from __future__ import annotations

import json
import re

from e2e_support import (SUITE_TEST, calibration_argv, calibration_finished, calibration_suite_toml,
                         check_the_killed_point, kill_mid_point, stage_toml)

KILL_POINTS = ("{ isl = 32, osl = 8, conc = [1], prompts_per_conc = 1 },"
               "{ isl = 32, osl = 32, conc = [2], prompts_per_conc = 6 }")


def test_server_killed_mid_point_costs_one_point(pytester, smollm2_model):
    """The kill on the calibration server launched as the suite's recipe: the plugin's part of it (what the real
    vLLM's case in test_vllm_suite.py also shows), in seconds."""
    stage = stage_toml(f"{KILL_POINTS}, {{ isl = 32, osl = 4, conc = [1], prompts_per_conc = 1 }}")
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--ttft-ms", "5", "--itl-ms", "20"), stage))
    (d / "test_cal.py").write_text(SUITE_TEST)
    killed = kill_mid_point(pytester, "cal", ["--tokenizer", str(smollm2_model), "--telemetry-interval", "0",
                                              "--extra-body", '{"calibration": {"prompt_tokens": 32}}'],
                            calibration_finished, "1 failed, 2 passed", start_timeout=60, first="cal-32-8-c1",
                            killed_point="cal-32-32-c2")
    check_the_killed_point(killed)
    third = json.loads((killed.run_dir / "cal-32-4-c1.json").read_text())
    assert third["completed"] == 1 and third["inferencemax"]["server"]["pid"] != killed.pid
    assert len(list(killed.run_dir.glob("server-cal-*.log"))) == 2


STAGES = stage_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }")


def test_recipe_that_cannot_start_fails_clearly(pytester, smollm2_model, tmp_path):
    # a typo in the recipe's argv: the server refuses it and exits during start-up, saying why in its log
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--no-such-option"), STAGES))
    (d / "test_cal.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "--tokenizer", str(smollm2_model), "--server-start-timeout", "600", "--results-dir", str(tmp_path),
        "--run-id", "r", "--telemetry-interval", "0", "-p", "no:cacheprovider", timeout=120)
    run.assert_outcomes(failed=2)
    out = run.stdout.str()
    started = re.search(r"the server exited during start-up \((\d+)\) after (\d+) s: command ", out)
    assert started, out
    # its exit code, seen within seconds (checked every second), not at --server-start-timeout
    assert int(started.group(1)) == 2 and int(started.group(2)) <= 5
    assert "--- last lines of" in out
    assert "error: unrecognized arguments: --no-such-option" in out  # the log's tail: the server's own complaint
    assert "not retried: this server configuration failed to start earlier" in out  # the second point
    assert len(list((tmp_path / "r").glob("server-cal-*.log"))) == 1  # launched once
