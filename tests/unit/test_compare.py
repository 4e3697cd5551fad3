"""--compare-to: which direction is better, per figure; and the pytest-benchmark record."""
from __future__ import annotations


import pytest

from pytest_inferencemax.results.compare import CompareError, compare, load_run
from record_factory import point_record

OLD = {"tput_per_gpu": 100.0, "median_e2el_ms": 1000.0, "interactivity": 50.0}


def rec(figures: dict):
    return point_record(tput=figures["tput_per_gpu"], e2e_ms=figures["median_e2el_ms"], intvty=figures["interactivity"])


def test_throughput_drop_is_a_regression_and_a_rise_is_not():
    drop = {c.figure: c for c in compare(rec({**OLD, "tput_per_gpu": 90.0}), rec(OLD), 0.05)}
    rise = {c.figure: c for c in compare(rec({**OLD, "tput_per_gpu": 110.0}), rec(OLD), 0.05)}
    assert drop["tput_per_gpu"].regressed and not drop["tput_per_gpu"].improved
    assert rise["tput_per_gpu"].improved and not rise["tput_per_gpu"].regressed
    assert drop["tput_per_gpu"].relative == pytest.approx(-0.10)


def test_latency_rise_is_a_regression_and_a_drop_is_not():
    slower = {c.figure: c for c in compare(rec({**OLD, "median_e2el_ms": 1200.0}), rec(OLD), 0.05)}
    faster = {c.figure: c for c in compare(rec({**OLD, "median_e2el_ms": 800.0}), rec(OLD), 0.05)}
    assert slower["median_e2el_ms"].regressed and faster["median_e2el_ms"].improved
    assert not faster["median_e2el_ms"].regressed


def test_changes_within_tolerance_are_neither():
    (tput, e2e, intvty) = compare(rec({"tput_per_gpu": 96.0, "median_e2el_ms": 1040.0, "interactivity": 52.0}), rec(OLD), 0.05)
    assert not any(c.regressed or c.improved for c in (tput, e2e, intvty))
    assert "same" in tput.describe()


def test_load_run_errors_name_the_fix(tmp_path):
    with pytest.raises(CompareError, match="not a folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(CompareError, match="no point results"):
        load_run(tmp_path)


