"""How a failed point or gate reads in pytest's failure section: its cause in a line or two and its
record's path, never a traceback through the plugin or the repr of a point's raw results.

The fixture fails a point with ``pytest.fail(..., pytrace=False)`` for what it knows; this hook catches
what reaches pytest another way: an error of the package's own tree (a record the disk refused, a
server that would not start) raised through the fixture, and the suite tests' ``assert`` lines, whose
introspection would print the objects they name. Bugs (any other exception) keep their traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_inferencemax.errors import InferenceMaxError
from pytest_inferencemax.plugin.fixture import FAILURE, RECORD
from pytest_inferencemax.plugin.plan_text import point_of

SUITE_TESTS = Path(__file__).with_name("suite_tests.py")


def _assertion_message(exc: AssertionError) -> str:
    """A suite test's assertion message without pytest's introspection (``assert 5 == 0 + where ...``)."""
    text = str(exc)
    return text.split("\nassert ")[0] if "\nassert " in text else text


class FailureReports:
    """Registered by the plugin: rewrites the failure section of points and gates that failed for a cause."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.when != "call" or not report.failed or call.excinfo is None or point_of(item) is None:
            return report
        exc = call.excinfo.value
        if isinstance(exc, InferenceMaxError):
            text = str(exc)
        elif isinstance(exc, AssertionError) and Path(call.excinfo.traceback[-1].path) == SUITE_TESTS:
            text = _assertion_message(exc)
        else:
            return report  # a bug: its traceback is what tells where
        point_id = item.callspec.id
        props = report.user_properties
        if (record := getattr(exc, "record_path", None)) and not any(k == RECORD for k, _ in props):
            props.append((RECORD, str(record)))
        if not any(k == FAILURE and v[0] == point_id for k, v in props):
            props.append((FAILURE, (point_id, text.splitlines()[0] if text else type(exc).__name__)))
        report.longrepr = text
        return report
