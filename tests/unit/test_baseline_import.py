"""Baselines: the schema check and the import from an InferenceMAX aggregated JSON."""
from __future__ import annotations

import json

import pytest
from record_factory import point_record

from pytest_inferencemax.judge.baseline import BaselineError, comparison, load_baseline
from pytest_inferencemax.cli.baseline_import import main

AGG = [
    {"hw": "b200-nvd_0", "framework": "trt", "tp": 8, "conc": 4, "isl": 1024, "osl": 1024,
     "tput_per_gpu": 420.5, "median_e2el": 2.1, "median_intvty": 440.0},
    {"hw": "b200-nvd_0", "framework": "trt", "tp": 4, "conc": 4, "isl": 1024, "osl": 1024,
     "tput_per_gpu": 600.0, "median_e2el": 2.5, "median_intvty": 400.0},
    {"hw": "mi355x-amd_1", "framework": "vllm", "tp": 8, "conc": 4, "isl": 1024, "osl": 1024,
     "tput_per_gpu": 300.0, "median_e2el": 3.0, "median_intvty": 300.0},
]


def test_import_selects_one_configuration_and_writes_a_loadable_file(tmp_path, capsys):
    agg = tmp_path / "agg.json"
    agg.write_text(json.dumps(AGG))
    out = tmp_path / "b200.toml"
    assert main([str(agg), "--model-key", "gptoss", "--hw", "b200", "--tp", "8", "--title", "B200 test",
                 "--out", str(out)]) == 0
    table = load_baseline(out)
    point = table.lookup("gptoss", 1024, 1024, 4)
    assert (point.tput_per_gpu, point.median_e2e_ms, point.median_intvty) == (420.5, 2100.0, 440.0)
    assert "imported from agg.json" in table.source.origin


def test_import_refuses_ambiguous_points_naming_the_choices(tmp_path, capsys):
    agg = tmp_path / "agg.json"
    agg.write_text(json.dumps(AGG))
    assert main([str(agg), "--model-key", "gptoss", "--hw", "b200", "--title", "t", "--out",
                 str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "has 2 entries" in err and "--tp" in err


def test_baseline_schema_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[source]\ntitle = "t"\norigin = "o"\nrecorded = "d"\ngroup = "g"\nprefix = "p"\ntag = "t"\n'
                   "[models]\nm = [ { isl = 1, osl = 1, conc = 4, median_e2e_ms = -1, median_intvty = 1, "
                   "tput_per_gpu = 1 } ]\n")
    with pytest.raises(BaselineError, match="bad.toml"):
        load_baseline(bad)
    with pytest.raises(BaselineError, match="not found"):
        load_baseline(tmp_path / "none.toml")


def test_missing_baseline_point_gives_null_ratios_and_a_note(tmp_path):
    from e2e_support import REPO

    table = load_baseline(REPO / "baselines" / "b200-nv1126.toml")
    out = point_record(16, 500.0, 2000.0, 400.0)  # CONC 16 is not in the NV-1126 table
    comparison(table, "gptoss", out)
    written = out.to_dict()
    assert written["b200_baseline_nv1126"] is None and written["tput_per_gpu_ratio_vs_b200_1126"] is None
    assert "nothing is invented" in written["baseline_note"]
    hit = point_record(4, 500.0, 2000.0, 400.0)
    comparison(table, "gptoss", hit)
    written = hit.to_dict()
    assert written["tput_per_gpu_ratio_vs_b200_1126"] == pytest.approx(500.0 / 413.779)
    assert written["median_e2e_ratio_vs_b200_1126"] == pytest.approx(2000.0 / 2162)
    assert written["b200_baseline_nv1126"] == {"b200_median_e2e_1126": 2162, "b200_tput_pergpu_1126": 413.779,
                                               "b200_median_intvty_1126": 434.57}
