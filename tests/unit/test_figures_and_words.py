"""One figure table (measure/figures.py) that every view reads, and statuses as enums that print, compare and
serialise as the words records have always carried."""
from __future__ import annotations

import json
import typing

import pytest

from pytest_inferencemax.judge.baseline import BaselinePoint
from pytest_inferencemax.judge.verdict import AmdCheck
from pytest_inferencemax.measure import figures
from pytest_inferencemax.measure.loadtypes import ArrivalClock
from pytest_inferencemax.measure.parity import REFERENCE_KEYS
from pytest_inferencemax.plan.rules import BeatBaselineShare
from pytest_inferencemax.plan.values import ClientKind, Word
from pytest_inferencemax.publish.submit_log import LogEntry, SubmitStatus
from pytest_inferencemax.results.record import AccuracyStatus, PointRecord, PointStatus
from pytest_inferencemax.errors import ResultsError


def test_every_view_names_figures_a_record_has():
    for key in {*figures.SUMMARY, *figures.JUNIT, *figures.JUDGED}:
        assert key in PointRecord.model_fields or isinstance(getattr(PointRecord, key, None), property), key


def test_judged_figures_are_the_rules_metrics_with_a_baseline_attribute_and_a_direction():
    rule_metrics = typing.get_args(BeatBaselineShare.model_fields["metric"].annotation)
    assert set(figures.BY_RULE_METRIC) == set(rule_metrics)
    for metric in rule_metrics:
        key, attr, higher = figures.judged_by(metric)
        assert attr in BaselinePoint.model_fields, attr
        assert key in figures.JUDGED and isinstance(higher, bool)
    assert figures.JUDGED == ("tput_per_gpu", "median_e2el_ms", "interactivity")  # summary.json and reports' order


def test_parity_judges_reference_keys_only():
    assert set(figures.PARITY_IDENTICAL) | set(figures.PARITY_WITHIN_SPREAD) <= set(REFERENCE_KEYS)
    assert figures.PARITY_IDENTICAL == ("completed", "total_input_tokens", "total_output_tokens")


def test_a_view_with_a_figure_not_in_the_table_fails_at_once():
    with pytest.raises(KeyError, match="median_ttft"):
        figures.keys("completed", "median_ttft")


@pytest.mark.parametrize("member, word", [
    (PointStatus.PARTIAL, "partial"), (AccuracyStatus.PASSED, "PASSED"), (AmdCheck.PARTLY_CHECKED, "partly checked"),
    (SubmitStatus.HELD_BACK, "held back"), (ArrivalClock.KERNEL, "kernel"), (ClientKind.REFERENCE, "reference"),
])
def test_a_status_is_its_word_everywhere(member, word):
    assert isinstance(member, Word) and member == word
    assert (str(member), f"{member}", f"{member:>{len(word) + 1}}") == (word, word, " " + word)
    assert json.dumps({"s": member}) == json.dumps({"s": word})


def test_a_log_entry_takes_a_word_and_refuses_another():
    assert LogEntry(team="t", point="p", status="dry-run").status is SubmitStatus.DRY_RUN
    with pytest.raises(ResultsError, match="log status 'sent' is not one of submitted, failed"):
        LogEntry(team="t", point="p", status="sent")
