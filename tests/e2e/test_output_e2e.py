"""Output end to end, on the calibration server: ``-q`` says the run in a line with its verdict and its comparison
with ``--compare-to`` and leaves pytest-benchmark's table out; report.md's command pastes into a shell and selects
the same tests (the server launched as the suite's recipe, told the prompts' length in ``--extra-body``: loading a
tokenizer in the server costs seconds); and the calibration server counting prompt tokens with the client's
tokenizer is a ``--server-url`` target as it is, no ``--extra-body`` needed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from calibration import calibration_server
from e2e_support import REPO, calibration_suite_toml, stage_toml

ARGV = ('["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "3", "--itl-ms", "1"]'
        % (REPO / "benchmarks" / "calibration_server.py"))
SUITE = calibration_suite_toml(ARGV, stage_toml("{ isl = 16, osl = 8, conc = [1, 2, 4], prompts_per_conc = 2 }"))
EXTRA_BODY = '{"calibration": {"ttft_ms": 2, "prompt_tokens": 16}}'
SUITE_TESTS = "from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  # noqa: F401\n"


def test_quiet_run_lines_and_a_report_command_that_pastes(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(SUITE)
    (d / "test_cal.py").write_text(SUITE_TESTS)
    common = ["cal", "--tokenizer", str(smollm2_model), "--results-dir", str(tmp_path), "--telemetry-interval", "0",
              "-k", "c1 or c2", "--extra-body", EXTRA_BODY, "-q"]
    first = pytester.runpytest_subprocess(*common, "--run-id", "a", timeout=300)
    first.assert_outcomes(passed=2, deselected=2)  # no INVALID: the server reports the prompts' length
    out = first.stdout.str()
    assert f"inferencemax: 2 point(s) measured: 2 ok; results: {tmp_path / 'a'}" in out.splitlines()
    assert "inferencemax: verdict cal, stage s, ISL 16 / OSL 8: NOT APPLICABLE" in out
    assert "Name (time in" not in out and "Legend:" not in out  # pytest-benchmark's table

    second = pytester.runpytest_subprocess(*common, "--run-id", "b", "--compare-to", str(tmp_path / "a"), timeout=300)
    second.assert_outcomes(passed=2, deselected=2)
    assert re.search(rf"^inferencemax: 2 point\(s\) measured: 2 ok; vs {re.escape(str(tmp_path / 'a'))}: [012] of 2 "
                     r"regressed", second.stdout.str(), re.MULTILINE), second.stdout.str()

    (command,) = [line for line in (tmp_path / "a" / "report.md").read_text().splitlines()
                  if line.startswith("- command: ")]
    pasted = command.removeprefix("- command: `").removesuffix("`")
    assert pasted.startswith(f"cd {pytester.path} && python -m pytest ") and " cal " in pasted  # from where it ran
    assert " -k 'c1 or c2' " in pasted
    assert f" --extra-body '{EXTRA_BODY}' " in pasted
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    again = subprocess.run(f"{pasted} --collect-only -p no:cacheprovider", shell=True, cwd="/", env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2/4 tests collected (2 deselected)" in again.stdout


def test_the_calibration_server_is_a_server_url_target_without_extra_body(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(SUITE)
    (d / "test_cal.py").write_text(SUITE_TESTS)
    with calibration_server("--tokenizer", str(smollm2_model), "--ttft-ms", "2", "--itl-ms", "1",
                            start_timeout=120) as base:
        run = pytester.runpytest_subprocess(
            "cal", "--server-url", base, "--served-model-name", "calibration", "--tokenizer", str(smollm2_model),
            "--results-dir", str(tmp_path), "--run-id", "x", "--telemetry-interval", "0", "-k", "point", timeout=300)
    run.assert_outcomes(passed=3)
    assert "INVALID" not in run.stdout.str() and "other prompt lengths" not in run.stdout.str()
