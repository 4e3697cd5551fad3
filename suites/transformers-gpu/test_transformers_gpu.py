"""The suite.toml beside this file as tests (see pytest_inferencemax.plugin.suite_tests)."""
from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  # noqa: F401
