"""The points of suite.toml beside this file, one test each (ids like gptoss-1024-1024-c4)."""


def test_point(inferencemax, inferencemax_point):
    outcome = inferencemax.run(inferencemax_point)
    assert outcome.failed == 0, outcome.failure_report()
