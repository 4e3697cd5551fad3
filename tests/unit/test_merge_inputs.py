"""Merge counts each measurement once (results/merge_inputs.py): a run and its copy, a point a later run reused,
an earlier merge's output lying among the inputs (or written inside them by ``--out``) give every round once,
and each skip is said."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_inferencemax.cli.merge import main as merge_main
from pytest_inferencemax.results.pool import pool_rounds
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import RunFolder
from pytest_inferencemax.results.telemetry import TelemetrySummary
from record_factory import point_record

C4, C8 = "gptoss-1024-1024-c4", "gptoss-1024-1024-c8"


def _run(path: Path, *records: PointRecord) -> Path:
    folder = RunFolder(path)
    for rec in records:
        folder.write_point(rec)
    return path


def _repeated(path: Path, conc: int, tputs: list[float]) -> Path:
    """A run folder holding a point measured ``len(tputs)`` times (--repeat), each round with a telemetry series."""
    folder = RunFolder(path)
    rounds, files = [], []
    for k, tput in enumerate(tputs, 1):
        rec = point_record(conc, tput)
        rec.ours.telemetry = TelemetrySummary(samples=2, series=f"{rec.point_id}.r{k}.telemetry.jsonl")
        folder.write_text(f"rounds/{rec.point_id}.r{k}.telemetry.jsonl", f'{{"t": {k}}}\n')
        folder.write_text(f"rounds/{rec.point_id}.r{k}.json", rec.to_json())
        rounds.append(rec)
        files.append(f"rounds/{rec.point_id}.r{k}.json")
    folder.write_point(pool_rounds(rounds, files, durations=[60.0] * len(rounds)))
    return path


def _point(folder: Path, point: str) -> dict:
    return json.loads((folder / f"{point}.json").read_text())


def _n(folder: Path, point: str) -> int:
    rounds = _point(folder, point)["inferencemax"].get("rounds")
    return rounds["n"] if rounds else 1


def test_a_run_merged_with_its_byte_copy_counts_each_measurement_once(tmp_path, capsys):
    a = _repeated(_run(tmp_path / "a", point_record(4, 400.0)), 8, [300.0, 320.0])
    shutil.copytree(a, tmp_path / "a-copy")
    assert merge_main([str(a), str(tmp_path / "a-copy"), "--out", str(tmp_path / "out"), "-q"]) == 0
    out = capsys.readouterr()
    assert _point(tmp_path / "out", C4) == _point(a, C4)  # one round: the record as it was, no zero-width interval
    rounds = _point(tmp_path / "out", C8)["inferencemax"]["rounds"]
    assert rounds["n"] == 2 and rounds["figures"]["tput_per_gpu"]["values"] == [300.0, 320.0]
    assert f"merge: skipped {tmp_path / 'a-copy'}: a copy of {a} (its 2 point record(s) hold the same " \
           "measurements); each counted once" in out.out + out.err
    assert [s["run"] for s in json.loads((tmp_path / "out" / "sources.json").read_text())["runs"]] == [str(a)]
    from pytest_inferencemax.results.merge_inputs import MergeError, find_runs

    with pytest.raises(MergeError, match=f"--out {tmp_path / 'a-copy'} is one of the runs being merged"):
        find_runs([a, tmp_path / "a-copy"], out=tmp_path / "a-copy")  # skipped as a copy, it is still an input


def test_a_folder_holding_an_earlier_merge_output_does_not_count_it_again(tmp_path, capsys):
    results = tmp_path / "results"
    a, b = _run(results / "a", point_record(4, 400.0)), _run(results / "b", point_record(4, 420.0))
    assert merge_main([str(a), str(b), "--out", str(results / "old" / "merged"), "-q"]) == 0
    assert _n(results / "old" / "merged", C4) == 2
    capsys.readouterr()
    assert merge_main([str(results), "--out", str(tmp_path / "again"), "-q"]) == 0
    out = capsys.readouterr()
    assert _n(tmp_path / "again", C4) == 2  # not 4: a, b and the merged copies of both
    assert f"merge: skipped {results / 'old' / 'merged'}: the output of an earlier merge (it holds sources.json, " \
           "which only a merge writes)" in out.out + out.err
    # given by itself, it is no input either: the error says why nothing was found
    assert merge_main([str(results / "old" / "merged"), "--out", str(tmp_path / "none")]) == 2
    assert "was skipped: the output of an earlier merge" in capsys.readouterr().err


def test_out_inside_an_input_tree_merged_twice_does_not_grow_n(tmp_path, capsys):
    results = tmp_path / "results"
    _run(results / "a", point_record(4, 400.0))
    _repeated(results / "b", 4, [410.0, 430.0])
    for _ in range(2):  # the README's example: --out results/merged, run again after another run
        assert merge_main([str(results), "--out", str(results / "merged"), "-q"]) == 0
        assert _n(results / "merged", C4) == 3
        assert _point(results / "merged", C4)["inferencemax"]["rounds"]["figures"]["tput_per_gpu"]["values"] == \
            [400.0, 410.0, 430.0]
    assert f"merge: skipped {results / 'merged'}: the output of an earlier merge" in "".join(capsys.readouterr())


def test_a_point_reused_by_a_later_run_is_counted_once_and_the_rest_of_that_run_is_kept(tmp_path, capsys):
    a = _run(tmp_path / "a", point_record(4, 400.0))
    reused = point_record(4, 400.0)
    reused.ours.reused_from = str(a / f"{C4}.json")
    b = _run(tmp_path / "b", reused, point_record(8, 300.0))
    assert merge_main([str(a), str(b), "--out", str(tmp_path / "out"), "-q"]) == 0
    out = capsys.readouterr()
    assert _point(tmp_path / "out", C4) == _point(a, C4) and _point(tmp_path / "out", C8) == _point(b, C8)
    assert f"merge: skipped {b / (C4 + '.json')}: the same measurement as {a / (C4 + '.json')}; counted once" in \
        out.out + out.err


def test_an_interrupted_merge_without_sources_json_is_still_not_counted_twice(tmp_path, capsys):
    results = tmp_path / "results"
    a = _repeated(results / "a", 4, [400.0, 410.0])
    b = _run(results / "b", point_record(4, 420.0))
    assert merge_main([str(a), str(b), "--out", str(tmp_path / "m"), "-q"]) == 0
    shutil.copytree(tmp_path / "m", results / "half")
    (results / "half" / "sources.json").unlink()  # cut short before its last file: its rounds are copies all the same
    capsys.readouterr()
    assert merge_main([str(results), "--out", str(tmp_path / "again"), "-q"]) == 0
    assert _n(tmp_path / "again", C4) == 3
    assert f"merge: skipped {results / 'half'}: a copy of {a} and {b}" in "".join(capsys.readouterr())


def test_a_run_holding_one_copied_round_adds_only_its_own(tmp_path, capsys):
    a = _repeated(tmp_path / "a", 4, [400.0, 410.0])
    b = _repeated(tmp_path / "b", 4, [400.0, 450.0])  # its first round is a's first, copied
    shutil.copy(a / "rounds" / f"{C4}.r1.json", b / "rounds" / f"{C4}.r1.json")
    assert merge_main([str(a), str(b), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert _point(tmp_path / "out", C4)["inferencemax"]["rounds"]["figures"]["tput_per_gpu"]["values"] == \
        [400.0, 410.0, 450.0]
    assert (f"merge: skipped 1 round(s) of {b / (C4 + '.json')} counted already ({b / 'rounds' / (C4 + '.r1.json')} "
            f"is {a / 'rounds' / (C4 + '.r1.json')})") in "".join(capsys.readouterr())


def test_find_runs_returns_a_run_whose_points_all_failed_with_its_failures(tmp_path):
    from pytest_inferencemax.results.merge import find_runs as found_by_merge  # the one merge_runs calls

    _run(tmp_path / "a", point_record(4, 400.0))
    failed = tmp_path / "failed"
    RunFolder(failed).write_json("summary.json", {"failures": [{"point": C8, "reason": "the server died"}]})
    runs = found_by_merge([tmp_path])
    assert [(r.path.name, len(r.records), r.failures) for r in runs] == [
        ("a", 1, []), ("failed", 0, [(C8, "the server died")])]


def test_a_missing_round_file_is_an_error_naming_it(tmp_path, capsys):
    a = _repeated(tmp_path / "a", 4, [400.0, 410.0])
    (a / "rounds" / f"{C4}.r2.json").unlink()
    assert merge_main([str(a), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: {a / (C4 + '.json')} lists its round rounds/{C4}.r2.json, but {a / 'rounds' / (C4 + '.r2.json')} "
        f"is missing: copy the run's rounds/ folder with its records, or move {C4}.json out of {a}\n")
    from pytest_inferencemax.results.merge_inputs import MergeError, find_runs

    with pytest.raises(MergeError, match="is missing"):
        find_runs([a])


def test_measurement_key_is_what_was_measured_not_where_it_was_copied():
    from pytest_inferencemax.results.merge_inputs import measurement_key

    rec = point_record(4, 400.0, ours={"telemetry": TelemetrySummary(samples=2, series="a.telemetry.jsonl")})
    copy = rec.model_copy(deep=True)
    copy.ours.reused_from = "results/a/x.json"
    copy.ours.telemetry.series = "rounds/x.r1.telemetry.jsonl"
    copy.ours.rounds = pool_rounds([rec], ["rounds/x.r1.json"]).ours.rounds
    assert measurement_key(copy) == measurement_key(rec) == measurement_key(PointRecord.from_json(rec.to_json()))
    assert measurement_key(point_record(4, 400.5)) != measurement_key(point_record(4, 400.0))
    later = point_record(4, 400.0, ours={"started_at": "2026-11-29T03:00:00+00:00"})
    assert measurement_key(later) != measurement_key(point_record(4, 400.0))  # the same figures, another run
