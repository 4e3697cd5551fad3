"""Bad configuration is refused while collecting, before any server starts: every stage's tables and
baseline, for every server configuration; one line each, exit code 4 (pytest's usage error)."""
from __future__ import annotations

import socket

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml

POINTS = "{ isl = 16, osl = 4, conc = [1], prompts_per_conc = 1 }"
# a second stage the run does not select: its tables are checked all the same
OTHER_STAGE = """
[stages.later]
range_ratio = 1.0
warmups_per_conc = 0
tput_per_gpu_divisor = 1
workloads = [{ isl = 16, osl = 4, conc = [1], prompts_per_conc = 1 }]
"""


def run(pytester: pytest.Pytester, extra: str, *args: str) -> pytest.RunResult:
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml(POINTS) + OTHER_STAGE + extra)
    (d / "test_mini.py").write_text(SUITE_TEST)
    return pytester.runpytest_inprocess("mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("extra, message", [
    ('[stages.later.verdict]\nrule = "beat_baseline_shar"\n', "[stages.later.verdict]"),
    ('[stages.later.accuracy]\ntask = "wikitext"\nrule = "max_ratio"\nthreshold_multiplier = "x"\n',
     "[stages.later.accuracy.threshold_multiplier] Input should be a valid number"),
    ('[stages.later.verdict]\nrule = "targets"\nmin_ponts = 2\n', "min_ponts"),
], ids=["verdict-rule-typo", "accuracy-table", "verdict-key-typo"])
def test_a_typo_in_any_stage_table_is_a_one_line_usage_error(pytester, extra, message):
    result = run(pytester, extra)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert result.parseoutcomes().get("passed", 0) == 0


def test_a_missing_baseline_file_of_another_stage_is_refused_too(pytester):
    d = pytester.mkdir("mini")
    toml = mini_suite_toml(POINTS) + OTHER_STAGE.replace("tput_per_gpu_divisor = 1\n",
                                                         'tput_per_gpu_divisor = 1\nbaseline = "nowhere"\n')
    (d / "suite.toml").write_text(toml)
    (d / "test_mini.py").write_text(SUITE_TEST)
    result = pytester.runpytest_inprocess("mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(line.startswith("ERROR:") and "baselines/nowhere.toml" in line for line in result.errlines)


def test_an_unknown_stage_and_a_broken_suite_file_are_usage_errors(pytester):
    result = run(pytester, "", "--stage", "s9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("no stage 's9'" in line for line in result.errlines)
    (pytester.path / "mini" / "suite.toml").write_text("[suite\n")
    result = pytester.runpytest_inprocess("mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("not valid TOML" in line for line in result.errlines)


def test_a_busy_port_is_refused_before_any_server_starts(pytester, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(pytester, "", "--port", str(port), "--results-dir", str(tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"port {port} on 127.0.0.1 is already in use" in errors[0]
    assert not list(tmp_path.glob("*/server-*.log"))  # nothing was launched
