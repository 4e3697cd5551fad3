"""The suite.toml beside this file as tests: the accuracy gate of each server first, then one
test per point (ids like dsr1-1024-1024-c4); a point whose server failed its gate is not run. Each point is
recorded through pytest-benchmark too (--benchmark-json, --benchmark-autosave)."""


def test_accuracy(inferencemax, inferencemax_gate):
    gate = inferencemax.gate(inferencemax_gate)
    assert gate is None or gate.passed, gate.message()


def test_point(inferencemax, inferencemax_point, benchmark):
    outcome = inferencemax.run(inferencemax_point, benchmark)
    assert outcome.failed == 0, outcome.failure_report()
