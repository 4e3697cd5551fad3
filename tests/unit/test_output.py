"""Output that says what happened (issue item 7 "Output"): ``-q`` keeps the plugin's run line and verdicts and
drops pytest-benchmark's table, status lines skip the access log of our own polling, no pytest-benchmark warning
over a point's real outcome, an unknown ``--stage`` is a one-line usage error before any collection output, the
parity verdict states what differed, ``cli.bench -q`` says why it exits 1, and report.md's command pastes into a
shell."""
from __future__ import annotations

import json
import shlex
from types import SimpleNamespace

import pytest

from e2e_support import MODELS_DIR, mini_suite_toml
from faulty_server import FaultyServer

SUITE_TESTS = "from pytest_inferencemax.plugin.suite_tests import test_point  # noqa: F401\n"
POINTS = "{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 2 }"


def _run(pytester, server, tmp_path, *args):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml(POINTS))
    (d / "test_mini.py").write_text(SUITE_TESTS)  # the suites' own test, with pytest-benchmark's fixture
    return pytester.runpytest_inprocess(
        "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
        "--models-dir", str(MODELS_DIR), "--telemetry-interval", "0", "--results-dir", str(tmp_path),
        "--run-id", "r", "-p", "no:cacheprovider", *args)


def test_quiet_keeps_the_run_line_and_the_verdict_and_drops_the_benchmark_table(pytester, tmp_path):
    with FaultyServer("ok", prompt_tokens=False) as server:
        result = _run(pytester, server, tmp_path, "-q")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert f"inferencemax: 1 point(s) measured: 1 ok; results: {tmp_path / 'r'}" in out.splitlines()
    assert "inferencemax: verdict mini, stage cpu, ISL 16 / OSL 4: " in out
    assert "Name (time in" not in out and "benchmark: 1 tests" not in out  # pytest-benchmark's table
    assert "inferencemax summary" not in out and "ok/total" not in out  # the full table stays for the default


def test_quiet_names_the_failed_points(pytester, tmp_path):
    with FaultyServer("ok") as server:  # usage.prompt_tokens 1 for 16 sent: INVALID
        result = _run(pytester, server, tmp_path, "-q")
    result.assert_outcomes(failed=1)
    assert "inferencemax: 1 point(s) measured: 1 INVALID; 1 failed (mini-16-4-c2); results: " in result.stdout.str()


def test_status_lines_skip_the_access_log_of_our_own_polling(tmp_path):
    from pytest_inferencemax.progress import last_log_line

    log = tmp_path / "server.log"
    log.write_text('INFO 12-05 07:43:56 [loggers.py] Engine 000: Avg prompt throughput: 512.0 tokens/s\n'
                   'INFO:     127.0.0.1:50412 - "POST /v1/completions HTTP/1.1" 200 OK\n'
                   'INFO:     127.0.0.1:50400 - "GET /metrics HTTP/1.1" 200 OK\n'
                   '127.0.0.1 - - [05/Dec/2026 07:43:57] "GET /health HTTP/1.1" 200 -\n'
                   'INFO:     127.0.0.1:50401 - "GET /v1/models HTTP/1.1" 200 OK\n\n')
    assert last_log_line(log) == 'INFO:     127.0.0.1:50412 - "POST /v1/completions HTTP/1.1" 200 OK'
    log.write_text('INFO 12-05 07:43:56 [api_server.py] Starting vLLM API server\n'
                   + 'INFO:     127.0.0.1:50400 - "GET /health HTTP/1.1" 200 OK\n' * 3)
    assert last_log_line(log) == "INFO 12-05 07:43:56 [api_server.py] Starting vLLM API server"


def test_a_disabled_benchmark_fixture_counts_as_used():
    from pytest_inferencemax.plugin.fixture import benchmark_rounds

    fixture = SimpleNamespace(disabled=True, _mode=None)  # --benchmark-disable, or pytest-xdist's -n
    benchmark_rounds(fixture)(1.0)
    assert fixture._mode  # pytest-benchmark warns "not used at all" when this is unset


def test_a_failed_point_with_rounds_and_a_disabled_benchmark_has_no_benchmark_warning(pytester, tmp_path):
    with FaultyServer("error500") as server:
        result = _run(pytester, server, tmp_path, "--benchmark-disable", "--repeat", "2")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "FAILED mini-16-4-c2: " in out and "Benchmark fixture was not used" not in out


def test_an_unknown_stage_is_one_usage_error_line_before_any_collection_output(pytester):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml(POINTS))
    (d / "test_mini.py").write_text(SUITE_TESTS)
    for extra in ([], ["--collect-only", "-q"]):
        result = pytester.runpytest_inprocess("mini", "--stage", "s3", "--models-dir", str(MODELS_DIR),
                                              "-p", "no:cacheprovider", *extra)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        out = result.stdout.str()
        assert "NOTSET" not in out and "collected 1 item" not in out and "1 test collected" not in out, out
        assert [line for line in result.stderr.lines if line] == [
            f"ERROR: {d / 'suite.toml'}: no stage 's3'; choose one of ['cpu'] with --stage"]


def test_the_parity_verdict_states_what_differed_and_by_how_much():
    from pytest_inferencemax.judge.parity import judge
    from pytest_inferencemax.measure.parity import REFERENCE_KEYS, ParityRun
    from pytest_inferencemax.publish.parity_report import render

    def runs(out_tokens_r2: float, tput_ref: float) -> list[ParityRun]:
        out = []
        for rnd in (1, 2):
            for client, tput in (("precise", 100.0), ("reference", tput_ref)):
                figures = {k: 10.0 for k in REFERENCE_KEYS}
                figures.update(completed=40, total_input_tokens=5120, total_output_tokens=2560,
                               output_throughput=tput + rnd, request_throughput=10.0, total_token_throughput=300.0)
                if client == "reference" and rnd == 2:
                    figures["total_output_tokens"] = out_tokens_r2
                out.append(ParityRun(client, rnd, figures, {"described": "n/a"}))
        return out

    failed = render(judge("p", runs(2557, 90.0))).splitlines()[-1]
    assert failed.startswith("**FAILED**: total_output_tokens runs differ by up to 3: precise 2560, 2560; "
                             "reference 2560, 2557; "), failed
    assert "output_throughput reference 91.5 vs precise 101.5: -10 (-9.9%), beyond the larger run-to-run spread 1" \
        in failed
    passed = render(judge("p", runs(2560, 100.5))).splitlines()[-1]
    assert passed.startswith("**PASSED**: identical in every run: completed 40, total_input_tokens 5120, "
                             "total_output_tokens 2560; 5 throughput/TPOT figures within"), passed


def test_bench_quiet_says_why_it_exits_1(tmp_path, capsys):
    from pytest_inferencemax.cli.bench import main

    with FaultyServer("ok") as server:  # usage.prompt_tokens 1 for 16 sent: INVALID
        code = main(["--base-url", server.base_url, "--model", "faulty", "--tokenizer",
                     str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--isl", "16", "--osl", "4", "--conc", "2",
                     "--num-prompts", "2", "--telemetry-interval", "0", "--out", str(tmp_path / "r.json"), "-q"])
    out, err = capsys.readouterr()
    assert code == 1 and "adhoc-16-4-c2: 2/2 ok" in out
    assert err.startswith("error: adhoc-16-4-c2: INVALID: the server counted 2 prompt tokens where the client sent 32 ")


def test_the_reports_command_pastes_into_a_shell(tmp_path):
    from pytest_inferencemax.publish.report import _manifest_lines

    argv = ["/venv/lib/python3.11/site-packages/pytest/__main__.py", "suites/cal", "-k", "c1 or c2",
            "--extra-body", '{"calibration": {"ttft_ms": 5}}', "--run-id", "it's"]
    server = ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--compilation-config",
              '{"level": 3}']
    (tmp_path / "manifest.json").write_text(json.dumps({"command": argv, "servers": [{"argv": server}]}))
    lines = _manifest_lines(tmp_path)
    (command,) = [line for line in lines if line.startswith("- command: ")]
    pasted = command.removeprefix("- command: `").removesuffix("`")
    assert pasted.startswith("python -m pytest suites/cal -k 'c1 or c2' --extra-body '{\"calibration\": ")
    assert shlex.split(pasted) == ["python", "-m", "pytest", *argv[1:]]
    (launched,) = [line.strip() for line in lines if "api_server" in line]
    assert shlex.split(launched) == server


def test_the_private_pytest_benchmark_api_the_rounds_use_is_there(pytester):
    """``benchmark_rounds`` on pytest-benchmark's own fixture (pytest-benchmark 5, pinned <6 for this): its
    ``_make_stats`` and ``_mode`` as the plugin uses them; a release that renames them fails here, by name."""
    pytester.makepyfile('''
from pytest_inferencemax.plugin.fixture import benchmark_rounds

def test_rounds(benchmark):
    assert hasattr(type(benchmark), "_make_stats"), "pytest-benchmark's BenchmarkFixture._make_stats is gone"
    add = benchmark_rounds(benchmark)
    for seconds in (0.25, 0.5, 0.75):
        add(seconds)
    assert benchmark._mode == "benchmark.pedantic(...)"
    assert benchmark.stats.stats.rounds == 3 and benchmark.stats.stats.max == 0.75
''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist", "--benchmark-disable-gc")
    result.assert_outcomes(passed=1)
    assert "not used at all" not in result.stdout.str()
