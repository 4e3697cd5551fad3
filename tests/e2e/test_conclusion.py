"""Session end on a real server: verdict, plots and report; --submit-team to a loopback leaderboard."""
from __future__ import annotations

import json

from e2e_support import MODELS_DIR, mini_suite_toml
from fake_leaderboard import FakeLeaderboard
from test_accuracy_gate import GATE_TEST, _embedded_gate, _toml_table

# A reference so slow that the CPU server beats it at CONC 1 and not at CONC 2 (tput_per_gpu huge there).
BASELINE = """[source]
title = "test reference"
origin = "written by the test"
recorded = "2026-11-22"
group = "b200_baseline_nv1126"
prefix = "b200"
tag = "1126"

[models]
mini = [
  { isl = 16, osl = 4, conc = 1, median_e2e_ms = 100000, median_intvty = 0.1, tput_per_gpu = 0.01 },
  { isl = 16, osl = 4, conc = 2, median_e2e_ms = 1, median_intvty = 100000, tput_per_gpu = 1000000 },
]
"""


def _suite(pytester, url_template: str) -> None:
    d = pytester.mkdir("mini")
    toml = mini_suite_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }")
    toml = toml.replace("tput_per_gpu_divisor = 1\n", "tput_per_gpu_divisor = 1\nbaseline = \"mini-ref\"\n"
                        f"leaderboard_url = \"{url_template}\"\npayload_layout = \"s1\"\n")
    toml += _toml_table(_embedded_gate())
    toml += '[stages.cpu.verdict]\nrule = "beat_baseline_share"\nmin_share = 0.5\nmetric = "tput_per_gpu"\n'
    (d / "suite.toml").write_text(toml)
    (d / "test_mini.py").write_text(GATE_TEST)
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "mini-ref.toml").write_text(BASELINE)


def test_verdict_report_and_submission(pytester, vllm_server, tmp_path):
    with FakeLeaderboard(layout="s1") as board:  # the stage-1 Space: its 14 inputs
        _suite(pytester, board.base_url)  # the ${isl}/${osl} template is unit-tested
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", vllm_server.base_url, "--served-model-name", "smollm2", "--tokenizer",
            str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--results-dir", str(tmp_path), "--run-id", "lb",
            "--models-dir", str(MODELS_DIR), "--submit-team", 'Team "Quote"', timeout=600)
        received = list(board.received)
    run.assert_outcomes(passed=3)
    out = run.stdout.str()
    run_dir = tmp_path / "lb"
    # 1 of 2 points beats the reference: exactly 50% qualifies
    assert "verdict mini, stage cpu, ISL 16 / OSL 4: QUALIFIED" in out
    report = (run_dir / "report.md").read_text()
    assert "qualified" in report.lower() and "beat the baseline" in report
    pngs = sorted(p.name for p in (run_dir / "plots").glob("*-tput-vs-*.png"))  # the curve's two plots
    assert len(pngs) == 2 and all((run_dir / "plots" / p).stat().st_size > 1000 for p in pngs)
    # both points of the qualifying configuration were sent, in the stage-1 field order, and confirmed
    assert len(received) == 2
    by_conc = {payload[1]: payload for payload in received}
    rec = json.loads((run_dir / "mini-16-4-c1.json").read_text())
    p = by_conc[1]
    assert p[0] == 'Team "Quote"' and p[2] == rec["median_e2el_ms"] and p[3] == rec["tput_per_gpu"]
    assert p[11:] == [rec["accuracy"]["bits_per_byte"], rec["accuracy"]["byte_perplexity"],
                      rec["accuracy"]["word_perplexity"]]
    saved = json.loads((run_dir / "submissions" / "mini-16-4-c1.json").read_text())
    assert saved["payload"] == p and saved["url"].startswith(board.base_url)
    assert "submission mini-16-4-c1: submitted" in out and "submission mini-16-4-c2: submitted" in out


def test_dry_run_sends_nothing(pytester, vllm_server, tmp_path):
    with FakeLeaderboard(layout="s1") as board:  # the stage-1 Space: its 14 inputs
        _suite(pytester, board.base_url)
        run = pytester.runpytest_subprocess(
            "mini", "--server-url", vllm_server.base_url, "--served-model-name", "smollm2", "--skip-accuracy",
            "--results-dir", str(tmp_path), "--run-id", "dry", "--models-dir", str(MODELS_DIR),
            "--submit-team", "T", "--submit-dry-run", "--submit-unqualified", "--submit-force", timeout=300)
        assert board.received == []
    run.assert_outcomes(passed=3)
    assert len(list((tmp_path / "dry" / "submissions").glob("*.json"))) == 2
