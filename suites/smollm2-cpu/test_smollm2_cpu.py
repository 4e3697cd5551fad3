"""The points of suite.toml beside this file, one test each (ids like smollm2-128-64-c1)."""


def test_point(inferencemax, inferencemax_point):
    outcome = inferencemax.run(inferencemax_point)
    assert outcome.failed == 0, outcome.failure_report()
