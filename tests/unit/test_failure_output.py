"""Failure output that reads well (issue 25, item 3): a point without a successful request is FAILED
with its cause and no figures, warmup errors keep their cause, a failed point is not diagnosed, the
failure section is the cause and the record's path (no repr, no prompt text, no pytest-benchmark
warning on top), and every reason a point failed is listed."""
from __future__ import annotations

import json

from e2e_support import MODELS_DIR, mini_suite_toml
from faulty_server import FaultyServer
from record_factory import point_record
from pytest_inferencemax.judge.curve import build_curves
from pytest_inferencemax.judge.diagnosis import reading
from pytest_inferencemax.publish.plots import plot_series
from pytest_inferencemax.publish.report import curve_table
from pytest_inferencemax.results.summary import render_table, table_rows

SUITE_TESTS = "from pytest_inferencemax.plugin.suite_tests import test_point  # noqa: F401\n"


def failure_section(out: str, test_id: str) -> list[str]:
    """The lines of one test's section under FAILURES."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and f" {test_id} " in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("_", "=", "---")))
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _run(pytester, server, tmp_path, *args, points="{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 2 }"):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml(points))
    (d / "test_mini.py").write_text(SUITE_TESTS)  # the suites' own test, with pytest-benchmark's fixture
    return pytester.runpytest_inprocess(
        "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
        "--models-dir", str(MODELS_DIR), "--telemetry-interval", "0", "--results-dir", str(tmp_path),
        "--run-id", "r", "-p", "no:cacheprovider", *args)


def test_a_point_without_a_successful_request_is_failed_with_its_cause_and_no_figures(pytester, tmp_path):
    with FaultyServer("error500") as server:
        result = _run(pytester, server, tmp_path)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    record = tmp_path / "r" / "mini-16-4-c2.json"
    cause = ("no request succeeded: 4 x HTTP 500 Internal Server Error: boom; warmups: 2 of 2 failed: "
             "2 x HTTP 500 Internal Server Error: boom")
    # the failure section: the cause and the record's path, nothing else
    section = failure_section(out, "test_point[mini-16-4-c2]")
    assert section == ["mini-16-4-c2 failed:", f"  - {cause}", f"record: {record}"]
    assert "PointOutcome(" not in out and "Point(" not in out and "prompt" not in out.lower()
    assert "Benchmark fixture was not used" not in out
    assert f"FAILED mini-16-4-c2: {cause}" in out
    row = next(line for line in out.splitlines() if line.startswith("mini-16-4-c2 ") and "0/4" in line)
    assert row.split() == ["mini-16-4-c2", "0/4", *["n/a"] * 10, "-", "FAILED", "(0", "of", "4", "ok)"]
    assert "0/4 ok in" in out and "no request succeeded, no figures" in out  # the point's progress line
    assert "diagnosis mini-16-4-c2: not diagnosed: no request succeeded" in out
    ours = json.loads(record.read_text())
    assert ours["inferencemax"]["warmup_errors"] == {"HTTP 500 Internal Server Error: boom": 2}
    assert ours["median_ttft_ms"] == 0.0  # the record keeps what the reference writes for an empty list


# every request: four tokens, an error event after the first (the bounty client still counts the request),
# and a usage that counts 1 prompt token for the 16 sent (another workload than the point names)
TOKEN = b'data: {"choices": [{"index": 0, "text": " a"}]}\n\n'
STREAM = (TOKEN, b'data: {"error": {"message": "overloaded", "code": 503}}\n\n', TOKEN * 3,
          b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 4}}\n\ndata: [DONE]\n\n')


def test_every_reason_a_point_failed_is_listed(pytester, tmp_path):
    with FaultyServer("raw", raw=STREAM) as server:
        result = _run(pytester, server, tmp_path, "--fail-on-stream-errors")
    result.assert_outcomes(failed=1)
    reasons = [f["reason"] for f in json.loads((tmp_path / "r" / "summary.json").read_text())["failures"]]
    assert [r.split(":")[0] for r in reasons] == ["invalid workload", "stream errors"]
    section = failure_section(result.stdout.str(), "test_point[mini-16-4-c2]")
    assert section == ["mini-16-4-c2 failed:", *(f"  - {r}" for r in reasons), f"record: {tmp_path / 'r' / 'mini-16-4-c2.json'}"]


def test_a_point_whose_server_is_never_ready_has_one_cause_and_no_benchmark_warning(pytester, tmp_path):
    with FaultyServer("unhealthy") as server:
        result = _run(pytester, server, tmp_path, "--server-ready-timeout", "1")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "Benchmark fixture was not used" not in out and "Traceback" not in out
    assert f"the server at {server.base_url} is not ready after 1 s: GET /health answered HTTP 503" in out


def test_no_figures_for_a_point_without_a_successful_request_in_tables_plots_and_report():
    ok = point_record(conc=2, tput=400.0)
    empty = point_record(conc=4, tput=0.0, e2e_ms=0.0, intvty=0.0)
    empty.completed, empty.ours.failed = 0, empty.num_prompts
    rows = table_rows([ok, empty])
    assert rows[2][2:12] == ["n/a"] * 10 and rows[2][-1] == f"FAILED (0 of {empty.num_prompts} ok)"
    assert "n/a" not in rows[1][2:9]  # its figures (it has no baseline: no ratios)
    assert "FAILED (0 of" in render_table(rows)
    (curve,) = build_curves([ok, empty])
    assert [p.measured for p in curve.points] == [True, False]
    (ours, *_) = plot_series(curve)
    assert ours.labels == ("2",)  # the empty point is not drawn at 0
    table = curve_table(curve, None)
    assert table[-1].startswith("| 4 | n/a | n/a | n/a | n/a | n/a | n/a |")
    assert reading(empty) == "not diagnosed: no request succeeded"


def test_an_aborted_or_failed_point_is_not_diagnosed():
    aborted = point_record(conc=2)
    aborted.ours.aborted = "during warmups: the server process (pid 7) exited with code 1"
    assert reading(aborted) == "not diagnosed: cut short (during warmups: the server process (pid 7) exited with code 1)"
    partial = point_record(conc=2)
    partial.ours.failed = 3
    assert reading(partial) == f"not diagnosed: 3 of {partial.num_prompts} requests failed"


def test_a_timeout_in_a_message_is_a_number_for_people():
    import re
    import socket

    import pytest

    from pytest_inferencemax.serve.server import ServerError, check_external

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ServerError) as info:
            check_external(url, "m", ready_timeout=1.2, pause=0.1)  # 1.2 - a moment: "1.2" only once rounded
    timeouts = re.findall(r"timeout=([0-9.]+)", str(info.value))
    assert timeouts and all(len(t.split(".")[-1]) <= 1 for t in timeouts), str(info.value)
