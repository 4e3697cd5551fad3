"""Plot data, PNG files and the Markdown report (fast: hand-made records, no servers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_inferencemax.judge.baseline import BaselineTable, comparison, load_baseline
from pytest_inferencemax.judge.curve import attach_amd, build_curves
from pytest_inferencemax.judge.verdict import judge, judge_curves
from pytest_inferencemax.publish.finish import finish_run
from pytest_inferencemax.publish.plots import PlotSeries, draw, plot_curve, plot_series
from pytest_inferencemax.publish.report import REPORT_FILE, write_report
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import write_text_atomic
from record_factory import point_record

BASELINES = Path(__file__).resolve().parents[2] / "baselines"
S1 = load_baseline(BASELINES / "b200-nv1126.toml")
SHARE = {"rule": "beat_baseline_share", "min_share": 0.5, "metric": "tput_per_gpu"}


def record(conc: int, tput: float, e2e_ms: float, intvty: float, *, suite: str = "gptoss", stage: str = "s1",
           isl: int = 1024, osl: int = 1024, table: BaselineTable | None = S1, divisor: int = 8) -> PointRecord:
    rec = point_record(conc, tput, e2e_ms, intvty, isl=isl, osl=osl, suite=suite, stage=stage, divisor=divisor,
                       accuracy={"bits_per_byte": 0.5123, "byte_perplexity": 1.4, "word_perplexity": 9.0})
    if table is not None:
        comparison(table, suite, rec)
    return rec


RECORDS = [record(8, 600.0, 2500.0, 380.0), record(4, 500.0, 2000.0, 450.0)]


def amd_table() -> BaselineTable:
    return BaselineTable.model_validate({
        "source": {"title": "AMD MI355X", "origin": "t", "recorded": "t", "group": "g", "prefix": "p", "tag": "t"},
        "models": {"gptoss": [{"isl": 1024, "osl": 1024, "conc": c, "median_e2e_ms": e, "median_intvty": i,
                               "tput_per_gpu": t} for c, e, i, t in ((4, 3000, 300, 250), (8, 3500, 250, 450))]},
        "path": Path("amd.toml")})


def test_series_against_e2e_seconds():
    ours, base = plot_series(build_curves(RECORDS)[0], "e2e")
    assert (ours.xs, ours.ys, ours.labels, ours.kind) == ((2.0, 2.5), (500.0, 600.0), ("4", "8"), "ours")
    assert base.kind == "baseline" and base.name == "b200_baseline_nv1126"
    assert base.xs == (2.162, 2.646) and base.ys == (413.779, 690.565) and base.labels == ("4", "8")


def test_series_against_interactivity_with_amd():
    curve = attach_amd(build_curves(RECORDS)[0], amd_table(), "gptoss")
    ours, base, amd = plot_series(curve, "intvty")
    assert ours.xs == (450.0, 380.0) and ours.ys == (500.0, 600.0)
    assert base.xs == (434.57, 364.58)
    assert (amd.kind, amd.xs, amd.ys, amd.labels) == ("amd", (300.0, 250.0), (250.0, 450.0), ("4", "8"))
    with pytest.raises(ValueError, match="e2e"):
        plot_series(curve, "ttft")  # type: ignore[arg-type]


def test_series_without_baseline_has_only_ours():
    curve = build_curves([record(1, 50.0, 900.0, 80.0, suite="smollm2", stage="cpu", table=None, divisor=1)])[0]
    assert [s.kind for s in plot_series(curve, "e2e")] == ["ours"]


def test_draw_writes_a_png_that_opens(tmp_path):
    from matplotlib.image import imread
    from PIL import Image

    series = [PlotSeries("ours", (2.0, 1.0), (600.0, 500.0), ("8", "4")),
              PlotSeries("base", (2.1, 2.6), (410.0, 690.0), ("4", "8"), kind="baseline")]
    path = draw(series, tmp_path / "sub" / "p.png", "title", "x", "y")
    assert path == tmp_path / "sub" / "p.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (800, 550)
    assert imread(path).ndim == 3
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["p.png"]  # no temp file left


def test_plot_curve_writes_both_plots(tmp_path):
    e2e, intvty = plot_curve(build_curves(RECORDS)[0], tmp_path)
    assert (e2e.name, intvty.name) == ("gptoss-s1-1024-1024-tput-vs-e2e.png", "gptoss-s1-1024-1024-tput-vs-intvty.png")
    assert e2e.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and intvty.stat().st_size > 1000


def test_goodput_gets_its_own_plot_of_requests_per_second_against_conc(tmp_path):
    from pytest_inferencemax.measure.checks import GoodputCheck
    from pytest_inferencemax.publish.plots import goodput_series

    held = []
    for rec, good in zip(RECORDS, (1.5, 0.25)):
        rec = rec.model_copy(deep=True)
        rec.request_goodput = good
        rec.ours.goodput = GoodputCheck(slo_ms={"tpot": 50.0}, good_requests=1, requests=2, attainment=0.5)
        held.append(rec)
    [curve] = build_curves(held)
    total, good = goodput_series(curve)
    by_conc = sorted(RECORDS, key=lambda r: r.ours.conc)  # a curve's points go by CONC: c4 (0.25), c8 (1.5)
    assert good.ys == (0.25, 1.5) and total.ys == tuple(float(r.request_throughput) for r in by_conc)
    assert good.xs == total.xs == (4.0, 8.0) and good.labels == ("4", "8")
    *_, png = plot_curve(curve, tmp_path)
    assert png.name == "gptoss-s1-1024-1024-goodput.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert goodput_series(build_curves(RECORDS)[0]) == []  # no SLOs, no goodput plot


def test_report_table_verdict_plots_and_manifest(tmp_path):
    manifest = {"project": {"name": "pytest-inferencemax", "version": "0.1.0", "commit": "abc123", "dirty": True},
                "command": ["pytest", "suites/gptoss", "--stage", "s1"], "cwd": "/work/my runs", "python": "3.11.7", "platform": "Linux",
                "gpus": ["MI355X"] * 8, "packages": {"vllm": "0.11.0", "torch": None},
                "servers": [{"base_url": "http://127.0.0.1:8000", "engine": "vllm", "engine_version": "0.11.0",
                             "argv": ["vllm", "serve", "gpt-oss-120b", "--tensor-parallel-size", "8"]}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    curves = build_curves(RECORDS)
    verdicts = {c.key: judge(c, SHARE) for c in curves}
    plots = {curves[0].key: (tmp_path / "plots" / "a-tput-vs-e2e.png",)}
    path = write_report(tmp_path, RECORDS, verdicts, plots)
    assert path == tmp_path / REPORT_FILE
    text = path.read_text()
    assert "| 4 | 500.0 | 2.000 | 450.0 | 1.208x | 0.925x | 1.036x | ✓ |" in text
    assert "| 8 | 600.0 | 2.500 | 380.0 | 0.869x | 0.945x | 1.042x | ✗ |" in text
    assert "**Verdict: qualified** (rule `beat_baseline_share`)" in text
    assert "Decided by: qualified: 1 of 2 points (50%) beat the baseline tput/GPU" in text
    assert "AMD check: not checked." in text
    assert "Tie-break figures: points above the baseline tput/GPU 1; sum of tput/GPU ratios 2.077." in text
    assert "- CONC 4, 8: gate wikitext PASSED: bits_per_byte 0.5123, byte_perplexity 1.4, word_perplexity 9" in text
    assert "![a-tput-vs-e2e](plots/a-tput-vs-e2e.png)" in text
    assert "git commit abc123 (with uncommitted changes)" in text
    assert "`cd '/work/my runs' && python -m pytest suites/gptoss --stage s1`" in text and "engine vllm version \"0.11.0\"" in text
    assert "vllm serve gpt-oss-120b --tensor-parallel-size 8" in text and "vllm==0.11.0" in text
    assert "torch" not in text


def test_finish_run_judges_plots_and_reports(tmp_path):
    records = RECORDS + [record(1, 50.0, 900.0, 80.0, suite="smollm2", stage="cpu", table=None, divisor=1)]
    rules = {("gptoss", "s1"): SHARE, ("smollm2", "cpu"): {"rule": "none", "reason": "CPU smoke sweep"}}
    path = finish_run(tmp_path, records, rules, BASELINES).report
    text = path.read_text()
    assert "- gptoss, stage s1, ISL 1024 / OSL 1024: **qualified**" in text
    assert "- smollm2, stage cpu, ISL 1024 / OSL 1024: **not applicable**" in text
    assert "Decided by: not applicable: CPU smoke sweep" in text
    assert "No readable manifest" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["gptoss-s1-1024-1024-tput-vs-e2e.png", "gptoss-s1-1024-1024-tput-vs-intvty.png",
                    "smollm2-cpu-1024-1024-tput-vs-e2e.png", "smollm2-cpu-1024-1024-tput-vs-intvty.png"]
    assert "![gptoss-s1-1024-1024-tput-vs-intvty](plots/gptoss-s1-1024-1024-tput-vs-intvty.png)" in text


def test_report_with_no_records_and_atomic_text(tmp_path):
    text = finish_run(tmp_path, [], {}, BASELINES, with_plots=False).report.read_text()
    assert "No point finished in this run." in text
    write_text_atomic(tmp_path / "x.md", "a")
    write_text_atomic(tmp_path / "x.md", "b")
    assert (tmp_path / "x.md").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == [REPORT_FILE, "x.md"]


def test_judged_curves_keep_amd_for_the_plots(tmp_path):
    amd_file = tmp_path / "mi355x.toml"
    amd_file.write_text((BASELINES / "b200-nv1126.toml").read_text())
    curves, _ = judge_curves(build_curves(RECORDS), {("gptoss", "s1"): {**SHARE, "amd_baseline": "mi355x"}},
                             tmp_path)
    assert [s.kind for s in plot_series(curves[0], "e2e")] == ["ours", "baseline", "amd"]


def test_an_interrupted_run_is_incomplete_qualifies_for_nothing_and_submits_nothing(tmp_path):
    from pytest_inferencemax.publish.finish import SubmitOptions
    from pytest_inferencemax.results.summary import Interruption, summary_lines

    stop = Interruption(by="SIGTERM", point="gptoss-1024-1024-c8", not_run=("gptoss-1024-8192-c4",))
    assert stop.line() == ("interrupted by SIGTERM during gptoss-1024-1024-c8; 1 point(s) not run: "
                           "gptoss-1024-8192-c4")
    records = [record(4, 500.0, 2000.0, 450.0)]  # beats the baseline: would qualify alone
    finished = finish_run(tmp_path, records, {("gptoss", "s1"): SHARE}, BASELINES,
                          SubmitOptions(team="T", dry_run=True), with_plots=False, interruption=stop)
    (verdict,) = finished.verdicts.values()
    assert verdict.label == "incomplete" and not verdict.qualified
    assert finished.submissions == [] and "not sent, the run is incomplete" in finished.problems[0]
    report = finished.report.read_text()
    assert "**Incomplete run**: interrupted by SIGTERM during gptoss-1024-1024-c8" in report
    assert "**Verdict: incomplete**" in report and "On the points that ran: qualified" in report
    assert summary_lines(records, [], tmp_path, stop)[0] == "INCOMPLETE: " + stop.line()
    assert Interruption(by="Ctrl-C", point=None).line() == ("interrupted by Ctrl-C between points; every other "
                                                            "selected point had run")
    assert Interruption(by="Ctrl-C", point="p-c4", deselected=3).line() == (
        "interrupted by Ctrl-C during p-c4; every other selected point had run (3 deselected point(s) were not part "
        "of this run)")


def test_a_curve_that_lost_a_point_to_a_failure_is_incomplete_and_submits_nothing(tmp_path):
    from pytest_inferencemax.publish.finish import SubmitOptions
    from pytest_inferencemax.results.summary import FailedGroup

    records = [record(4, 500.0, 2000.0, 450.0)]  # beats the baseline: judged alone, the curve qualifies
    lost = FailedGroup("gptoss, stage s1, ISL 1024 / OSL 1024", "the server died",
                       ("gptoss-1024-1024-c8", "gptoss-1024-8192-c4"))  # one point of this curve, one of another
    finished = finish_run(tmp_path, records, {("gptoss", "s1"): SHARE}, BASELINES,
                          SubmitOptions(team="T", dry_run=True), with_plots=False, failed=[lost])
    (verdict,) = finished.verdicts.values()
    assert verdict.label == "incomplete" and not verdict.qualified
    assert verdict.incomplete == "1 point(s) of the curve failed unmeasured: gptoss-1024-1024-c8"
    assert finished.submissions == []
    kept = FailedGroup("x", "regressed", ("gptoss-1024-1024-c4",))  # failed but measured: the curve stands
    again = finish_run(tmp_path, records, {("gptoss", "s1"): SHARE}, BASELINES, with_plots=False, failed=[kept])
    assert next(iter(again.verdicts.values())).qualified


def test_the_report_says_when_the_reference_keys_count_fewer_output_tokens_than_the_server_reported(tmp_path):
    # real records: transformers serve on an H200 (issue 28), usage only inside a chunk with choices
    gpu = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu-h200-2026-12-05" / "gpu"
    records = [PointRecord.from_json(p.read_text(encoding="utf-8")) for p in sorted(gpu.glob("tfgpu-*.json"))]
    text = write_report(tmp_path, records, {}, {}).read_text()
    assert ("ours (`inferencemax.total_output_tokens_counted`): CONC 8: 0 of 8192 tokens, 174.6 out tok/s; "
            "CONC 32: 0 of 32768 tokens, 245.1 out tok/s.") in text
    assert "Output tokens:" not in write_report(tmp_path, RECORDS, {}, {}).read_text()
