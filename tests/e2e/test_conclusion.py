"""Session end: verdict, plots and report; --submit-team to a loopback leaderboard.

A verdict qualifies only points whose accuracy gate passed, so the qualified case reads the session's one run
behind the embedded gate on the shared vLLM server (``e2e_support.gated_run``, also read by test_accuracy_gate.py):
no gate of its own. A reference so slow at CONC 1 and so fast at CONC 2 (``e2e_support.conclusion_baseline``)
decides the verdict whatever server measured the points. The dry run needs no gate: the calibration server,
launched as the suite's recipe."""
from __future__ import annotations

import json

from e2e_support import PROMPT_TOKENS_16, conclusion_suite, gated_run
from fake_leaderboard import FakeLeaderboard


def test_verdict_report_and_submission(pytester, vllm_server, tmp_path_factory):
    shared = gated_run(pytester, vllm_server.base_url, tmp_path_factory)
    shared.run.assert_outcomes(passed=3)
    out = shared.run.stdout.str()
    run_dir = shared.run_dir
    # 1 of 2 points beats the reference, both behind a passed gate: exactly 50% qualifies
    assert "verdict mini, stage cpu, ISL 16 / OSL 4: QUALIFIED" in out
    report = (run_dir / "report.md").read_text()
    assert "qualified" in report.lower() and "beat the baseline" in report
    pngs = sorted(p.name for p in (run_dir / "plots").glob("*-tput-vs-*.png"))  # the curve's two plots
    assert len(pngs) == 2 and all((run_dir / "plots" / p).stat().st_size > 1000 for p in pngs)
    # both points of the qualifying configuration were sent, in the stage-1 field order, and confirmed
    assert len(shared.received) == 2
    by_conc = {payload[1]: payload for payload in shared.received}
    rec = json.loads((run_dir / "mini-16-4-c1.json").read_text())
    p = by_conc[1]
    assert p[0] == 'Team "Quote"' and p[2] == rec["median_e2el_ms"] and p[3] == rec["tput_per_gpu"]
    assert p[11:] == [rec["accuracy"]["bits_per_byte"], rec["accuracy"]["byte_perplexity"],
                      rec["accuracy"]["word_perplexity"]]
    saved = json.loads((run_dir / "submissions" / "mini-16-4-c1.json").read_text())
    assert saved["payload"] == p and saved["url"].startswith(shared.leaderboard_url)
    assert "submission mini-16-4-c1: submitted" in out and "submission mini-16-4-c2: submitted" in out


def test_dry_run_sends_nothing(pytester, smollm2_model, tmp_path):
    with FakeLeaderboard(layout="s1") as board:  # the stage-1 Space: its 14 inputs
        conclusion_suite(pytester.path, board.base_url)
        run = pytester.runpytest_subprocess(
            "cal", "--tokenizer", str(smollm2_model), "--extra-body", PROMPT_TOKENS_16, "--skip-accuracy",
            "--results-dir", str(tmp_path), "--run-id", "dry", "--telemetry-interval", "0",
            "--submit-team", "T", "--submit-dry-run", "--submit-unqualified", "--submit-force", timeout=300)
        assert board.received == []
    run.assert_outcomes(passed=3)
    assert len(list((tmp_path / "dry" / "submissions").glob("*.json"))) == 2
