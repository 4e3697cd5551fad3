"""The two tests every suite runs; a suite's test module imports them, next to its suite.toml.

``test_accuracy``: the accuracy gate of each server, before that server's points.
``test_point``: one test per point (ids like ``gptoss-1024-1024-c4``); a point whose server failed
its gate is not run. Each point is recorded through pytest-benchmark too.
"""


def test_accuracy(inferencemax, inferencemax_gate):
    gate = inferencemax.gate(inferencemax_gate)
    assert gate is None or gate.passed, gate.message()


def test_point(inferencemax, inferencemax_point, benchmark):
    outcome = inferencemax.run(inferencemax_point, benchmark)
    assert not outcome.record.failures_count, outcome.failure_report()  # the stage's failure_rule (any: none)
