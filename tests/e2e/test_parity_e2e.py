"""Parity between the precise and the reference client, end to end: the command against a real vLLM
server, and ``--parity`` in a suite run against the calibration server (the judging rules: tests/unit)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_support import SUITE_TEST, mini_suite_toml
from calibration import calibration_server


@pytest.mark.e2e
def test_parity_command_against_vllm(vllm_server, smollm2_model, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_inferencemax.cli.parity", "--base-url", vllm_server.base_url, "--model", "smollm2",
         "--tokenizer", str(smollm2_model), "--isl", "16", "--osl", "4", "--conc", "2", "--num-prompts", "6",
         "--rounds", "2", "--out", str(tmp_path), "-q"], capture_output=True, text=True, timeout=600)
    saved = json.loads((tmp_path / "parity.json").read_text())
    assert proc.returncode == (0 if saved["passed"] else 1), proc.stderr
    assert f"parity isl16-osl4-c2: {'PASSED' if saved['passed'] else 'FAILED'}" in proc.stdout
    assert [(r["client"], r["round"]) for r in saved["runs"]] == [
        ("precise", 1), ("reference", 1), ("precise", 2), ("reference", 2)]  # alternating
    rows = {r["key"]: r for r in saved["rows"]}
    for key in ("completed", "total_input_tokens", "total_output_tokens"):
        assert rows[key]["ok"] and rows[key]["judged"] == "identical", rows[key]
    assert rows["total_output_tokens"]["means"] == {"precise": 24.0, "reference": 24.0}
    # vLLM's own view of every run: 6 timed requests + 4 warmups, 10 x 4 tokens generated
    assert all(r["server"]["generation_tokens"] == 40 for r in saved["runs"])
    assert (tmp_path / "parity.md").read_text().startswith("### Parity: isl16-osl4-c2")


def test_parity_option_in_a_suite_run_writes_the_comparison_beside_the_point(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 2 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    with calibration_server() as base:
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", base, "--served-model-name", "calibration", "--tokenizer", str(smollm2_model),
            "--results-dir", str(tmp_path), "--run-id", "par", "--parity", "--parity-rounds", "2",
            "--extra-body", '{"calibration": {"ttft_ms": 5, "itl_ms": 2, "prompt_tokens": 16}}', timeout=300)
    saved = json.loads((tmp_path / "par" / "mini-16-4-c2.parity.json").read_text())
    assert (tmp_path / "par" / "mini-16-4-c2.json").is_file()  # the point's own record is written first
    assert len(saved["runs"]) == 4 and all(r["ok"] for r in saved["rows"] if r["judged"] == "identical")
    if saved["passed"]:
        run.assert_outcomes(passed=1)
    else:  # the failure names the rows that disagree
        run.assert_outcomes(failed=1)
        assert "the two clients disagree" in run.stdout.str()


