"""--goodput end to end, on the calibration server launched as a suite's recipe: two variants with known TPOTs
(2 ms and 40 ms) held to a 20 ms TPOT SLO. The fast one's requests all meet it, the slow one's none: its goodput is 0
where its request throughput is not. Every view shows it: the record, the terminal table, summary.json, report.md."""
from __future__ import annotations

import json

from e2e_support import CAL_BASELINE, CAL_SUITE, CAL_VARIANTS


def test_a_point_that_misses_its_slo_has_goodput_below_its_throughput(pytester, smollm2_model, tmp_path):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(CAL_SUITE)
    (d / "variants.toml").write_text(CAL_VARIANTS)
    (d / "test_cal.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                   "# noqa: F401\n")
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "calb.toml").write_text(CAL_BASELINE)
    run = pytester.runpytest_subprocess(
        "cal", "-k", "c2", "--goodput", "tpot:20 e2el:5000", "--tokenizer", str(smollm2_model), "--results-dir",
        str(tmp_path), "--run-id", "g", "--telemetry-interval", "0",
        "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    run.assert_outcomes(passed=2, deselected=6)
    records = {v: json.loads((tmp_path / "g" / f"cal-16-16-c2-{v}.json").read_text()) for v in ("fast", "slow")}
    fast, slow = records["fast"], records["slow"]
    # the reference key, where the reference writes it, and ours beside the SLOs
    assert fast["request_goodput:"] == fast["request_throughput"] > 0  # every request within 20 ms TPOT
    assert slow["request_goodput:"] == 0 < slow["request_throughput"]  # 40 ms TPOT: none
    assert fast["inferencemax"]["goodput"] == {"slo_ms": {"tpot": 20.0, "e2el": 5000.0}, "good_requests": 4,
                                               "requests": 4, "attainment": 1.0}
    assert slow["inferencemax"]["goodput"]["good_requests"] == 0 and slow["inferencemax"]["goodput"]["attainment"] == 0
    out = run.stdout.str()
    assert "goodput req/s" in out and "SLO met" in out
    row = next(line for line in out.splitlines() if line.startswith("cal-16-16-c2-slow"))
    assert " 0.00 " in row and " 0% " in row
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert {p["point"]: p["goodput"]["attainment"] for p in summary["points"]} == {
        "cal-16-16-c2-fast": 1.0, "cal-16-16-c2-slow": 0.0}
    report = (tmp_path / "g" / "report.md").read_text()
    assert "SLOs: tpot <= 20 ms, e2el <= 5000 ms" in report
    assert f"- CONC 2: 0.00 req/s within the SLOs of {slow['request_throughput']:.2f} completed (0 of 4" in report
    plots = sorted(p.name for p in (tmp_path / "g" / "plots").glob("*-goodput.png"))
    assert plots == ["cal-s-16-16-fast-goodput.png", "cal-s-16-16-slow-goodput.png"]  # one per curve, in the report
    assert all(f"![{name[:-4]}](plots/{name})" in report for name in plots)
