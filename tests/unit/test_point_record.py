"""The typed point record: byte-compatible with the files written before it was typed, strict on
what it reads, and the one thing every consumer gets."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferencemax.results.point_pipeline import point_line
from pytest_inferencemax.results.record import BaselineComparison, PointRecord, RecordError
from pytest_inferencemax.results.store import RunFolder
from record_factory import GOLDEN_RECORDS, record_dict

# Written by main before the record was typed (commit 9055ee4): a quick-start point, a suite point
# with a baseline point, --save-detailed and a pytest_inferencemax_record hook field, a suite point
# whose baseline has no point at its CONC (null group and ratios), and a cli.bench point.
GOLDEN = sorted(GOLDEN_RECORDS.glob("*.json"))
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_a_file_written_by_the_untyped_main_round_trips_byte_for_byte(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    record = PointRecord.from_json(text, str(path))
    assert record.to_json() == text
    written = RunFolder(tmp_path).write_point(record)
    assert written.name == f"{record.point_id}.json" and written.read_text(encoding="utf-8") == text


def test_the_golden_files_cover_every_optional_part():
    records = {p.stem: PointRecord.from_json(p.read_text(encoding="utf-8")) for p in GOLDEN}
    hit = records["suite-baseline-point-detailed-hook"]
    assert hit.comparison.figures is not None and hit.itls and hit.model_extra == {"team_note": hit.model_extra["team_note"]}
    assert records["suite-no-baseline-point"].comparison.figures is None
    assert records["bench-detailed"].ours.server is None and records["bench-detailed"].baseline_note is None
    assert records["quickstart-c4"].comparison is None and records["quickstart-c4"].itls is None


def test_the_baseline_comparison_is_typed_and_written_back_under_its_baselines_names():
    rec = PointRecord.from_json((GOLDEN_RECORDS / "suite-baseline-point-detailed-hook.json").read_text())
    cmp = rec.comparison
    assert (cmp.group, cmp.prefix, cmp.tag) == ("b200_baseline_nv1126", "b200", "1126")
    assert cmp.figures.tput_per_gpu == 100.25 and cmp.tput_ratio == pytest.approx(rec.tput_per_gpu / 100.25)
    keys = list(rec.to_dict())
    group = keys.index("b200_baseline_nv1126")
    assert keys[group:group + 5] == ["b200_baseline_nv1126", "tput_per_gpu_ratio_vs_b200_1126",
                                     "median_e2e_ratio_vs_b200_1126", "interactivity_ratio_vs_b200_1126",
                                     "baseline_note"]
    assert keys[group - 1] == "errors"  # after the per-request lists, as before


def test_a_stage2_comparison_and_a_new_one_write_the_same_shape():
    rec = PointRecord.from_dict(record_dict({}))
    rec.comparison = BaselineComparison(group="baseline_nv1126", prefix="baseline", tag="1126")
    rec.baseline_note = "no point"
    data = rec.to_dict()
    assert data["baseline_nv1126"] is None and data["interactivity_ratio_vs_baseline_1126"] is None
    again = PointRecord.from_dict(data)
    assert again.comparison == rec.comparison and again.to_dict() == data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("inferencemax"), "not a point record"),
    (lambda d: d.pop("median_e2el_ms"), "median_e2el_ms: Field required"),
    (lambda d: d.update(completed="all"), "completed: Input should be a valid integer"),
    (lambda d: d["inferencemax"].pop("conc"), "inferencemax.conc: Field required"),
    (lambda d: d.update(tput_per_gpu_ratio_vs_b200_1126=1.0), "no baseline group"),
])
def test_a_bad_record_names_the_file_and_the_field(change, message):
    data = record_dict({})
    change(data)
    with pytest.raises(RecordError, match=message) as info:
        PointRecord.from_dict(data, "results/run/p.json")
    assert str(info.value).startswith("results/run/p.json")


def test_a_damaged_file_is_an_error_never_a_skipped_point(tmp_path):
    (tmp_path / "p.json").write_text('{"inferencemax": ', encoding="utf-8")
    with pytest.raises(RecordError, match="p.json: cannot be read as JSON"):
        RunFolder(tmp_path).points()
    with pytest.raises(RecordError, match="not JSON"):
        PointRecord.from_json("{", "x.json")


def test_what_readers_ask_comes_from_the_typed_fields():
    data = record_dict({"inferencemax": {"failed": 2}})
    data["inferencemax"]["token_check"]["failures"] = ["the server counted other prompt lengths"]
    data["inferencemax"]["client"].update(client_bound=True, why="loop lag")
    rec = PointRecord.from_dict(data)
    assert rec.failed == 2 and rec.invalid == ["the server counted other prompt lengths"]
    assert rec.client_bound and rec.warnings()[0] == "client-bound: loop lag"
    assert rec.figure("request_goodput:") is None and rec.figure("median_e2el_ms") == rec.median_e2el_ms
    assert rec.sort_key() == ("smollm2", "cpu", 128, 64, 4)


def test_reading_records_does_not_load_the_load_generator():
    """The leaderboard and merge commands read records only: no HTTP client, no tokenizer."""
    code = ("import sys, pytest_inferencemax.cli.submit, pytest_inferencemax.cli.merge; "
            "print([m for m in ('pytest_inferencemax.measure.loadgen', 'httptools', 'aiohttp', 'tokenizers', "
            "'pytest_inferencemax.measure.http_stream') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_status_says_whether_the_figures_are_a_result():
    assert PointRecord.from_dict(record_dict({})).status == "ok"
    assert PointRecord.from_dict(record_dict({"completed": 38, "inferencemax": {"failed": 2}})).status == "partial"
    stopped = PointRecord.from_dict(record_dict({"completed": 3, "inferencemax": {"aborted": "stalled: no bytes"}}))
    assert stopped.status == "aborted" and '"aborted": "stalled: no bytes"' in stopped.to_json()
    data = record_dict({})
    data["inferencemax"]["token_check"]["failures"] = ["another ISL"]
    assert PointRecord.from_dict(data).status == "invalid"


def test_the_point_line_gives_our_output_count_beside_the_reference_keys_zero():
    # a real record: transformers serve on an H200 (issue 28), whose usage only comes inside a chunk with choices
    path = REPO / "benchmarks" / "gpu-h200-2026-12-05" / "gpu" / "tfgpu-1024-256-c32.json"
    rec = PointRecord.from_json(path.read_text(encoding="utf-8"), str(path))
    line = point_line(rec, rec.duration)
    assert rec.total_output_tokens == 0 and rec.ours.total_output_tokens_counted == 128 * 256
    assert line.startswith(f"128/128 ok in 133.7 s, 0.0 ({128 * 256 / rec.duration:.1f} counted) out tok/s, 980.3 ")
    same = PointRecord.from_json((GOLDEN_RECORDS / "quickstart-c4.json").read_text(encoding="utf-8"))
    assert "counted" not in point_line(same, same.duration)
