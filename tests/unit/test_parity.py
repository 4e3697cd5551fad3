"""Parity between the precise and the reference client: the judging rules on made-up runs, the command
against a real vLLM server, and ``--parity`` in a suite run."""
from __future__ import annotations

import json


import pytest

from pytest_inferencemax.measure import parity
from pytest_inferencemax.cli import parity as parity_cli
from pytest_inferencemax.judge.parity import judge
from pytest_inferencemax.measure.parity import REFERENCE_KEYS, ParityRun
from pytest_inferencemax.publish.parity_report import render, write_parity
from pytest_inferencemax.results.store import RunFolder


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
    assert not r.ok and r.judged == "identical" and not report.passed
    assert r.why == "runs differ by up to 1: precise 2560, 2560; reference 2560, 2559"


def test_one_round_is_refused():
    with pytest.raises(ValueError, match="at least 2 rounds"):
        parity.run_parity("p", "http://127.0.0.1:1", "m", [], concurrency=1, num_warmups=0, rounds=1)
    with pytest.raises(SystemExit):
        parity_cli.main(["--base-url", "http://127.0.0.1:1", "--model", "m", "--tokenizer", "t", "--isl", "1",
                     "--osl", "1", "--conc", "1", "--rounds", "1"])


def test_a_saved_report_holds_every_run_and_row_and_the_table(tmp_path):
    report = judge("p", runs([100, 108], [104, 97]))
    path, md = write_parity(RunFolder(tmp_path), report, "p.parity")
    saved = json.loads(path.read_text())
    assert path.name == "p.parity.json" and saved == json.loads(json.dumps(report.to_dict()))
    assert len(saved["runs"]) == 4 and saved["passed"] == report.passed
    assert md.read_text() == render(report) + "\n"


def test_a_stalled_server_stops_parity_with_the_run_and_the_reason():
    from faulty_server import FaultyServer
    from calibration import specs
    with FaultyServer("midstream") as server:
        with pytest.raises(parity.ParityAborted, match=r"round 1 of the precise client stopped: stalled"):
            parity.run_parity("p", server.base_url, "m", specs(2, 8), concurrency=2, num_warmups=0, rounds=2,
                              stall_timeout=0.3)
