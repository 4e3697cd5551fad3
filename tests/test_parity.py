"""Parity between the precise and the reference client: the judging rules on made-up runs, the command
against a real vLLM server, and ``--parity`` in a suite run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from pytest_inferencemax import parity
from pytest_inferencemax.parity import REFERENCE_KEYS, ParityRun, judge, render
from test_client_truth import calibration_server


def runs(precise: list[float], reference: list[float], **override: float) -> list[ParityRun]:
    """Runs whose output_throughput (and the other judged rates) take the given values, all else equal."""
    out = []
    for rnd, (a, b) in enumerate(zip(precise, reference), start=1):
        for client, tput in (("precise", a), ("reference", b)):
            figures = {k: 10.0 for k in REFERENCE_KEYS}
            figures.update(completed=40, total_input_tokens=5120, total_output_tokens=2560, output_throughput=tput,
                           request_throughput=tput / 64, total_token_throughput=3 * tput)
            figures.update(override if client == "reference" and rnd == 2 else {})
            out.append(ParityRun(client, rnd, figures, {"described": "n/a"}))
    return out


def row(report, key):
    return next(r for r in report.rows if r.key == key)


def test_a_difference_within_the_run_to_run_spread_passes():
    report = judge("p", runs([100, 108, 96], [104, 97, 101]))  # spreads 12 and 7; means 101.3 and 100.7
    assert report.passed and report.rounds == 3
    r = row(report, "output_throughput")
    assert r.spreads == {"precise": 12, "reference": 7} and r.diff == pytest.approx(-2 / 3)
    assert r.judged == "within spread" and row(report, "median_ttft_ms").judged == "shown"


def test_a_difference_beyond_both_spreads_fails_and_says_why():
    report = judge("p", runs([100, 101, 100], [90, 91, 90]))
    assert not report.passed
    r = row(report, "output_throughput")
    assert not r.ok and "beyond the larger run-to-run spread 1" in r.why
    assert "FAIL" in render(report) and "**FAILED**" in render(report)


def test_token_totals_must_be_identical_in_every_run():
    report = judge("p", runs([100, 100], [100, 100], total_output_tokens=2559))
    r = row(report, "total_output_tokens")
    assert not r.ok and r.judged == "identical" and "runs differ: [2559, 2560]" in r.why and not report.passed


def test_one_round_is_refused():
    with pytest.raises(ValueError, match="at least 2 rounds"):
        parity.run_parity("p", "http://127.0.0.1:1", "m", [], concurrency=1, num_warmups=0, rounds=1)
    with pytest.raises(SystemExit):
        parity.main(["--base-url", "http://127.0.0.1:1", "--model", "m", "--tokenizer", "t", "--isl", "1",
                     "--osl", "1", "--conc", "1", "--rounds", "1"])


@pytest.mark.e2e
def test_parity_command_against_vllm(vllm_server, smollm2_model, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_inferencemax.parity", "--base-url", vllm_server.base_url, "--model", "smollm2",
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


def test_a_saved_report_loads_back_and_renders_the_same(tmp_path):
    report = judge("p", runs([100, 108], [104, 97]))
    _, md = parity.save(report, tmp_path)
    assert render(parity.load(tmp_path / "parity.json")) + "\n" == md.read_text()


def test_a_stalled_server_stops_parity_with_the_run_and_the_reason():
    from faulty_server import FaultyServer
    from test_client_truth import specs
    with FaultyServer("midstream") as server:
        with pytest.raises(parity.ParityAborted, match=r"round 1 of the precise client stopped: stalled"):
            parity.run_parity("p", server.base_url, "m", specs(2, 8), concurrency=2, num_warmups=0, rounds=2,
                              stall_timeout=1.0)
