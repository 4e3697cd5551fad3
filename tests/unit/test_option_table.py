"""One option table (plan/options.py): pytest's options, ini keys, Settings and every command's shared arguments
are made from it. The --help texts compared: tests/e2e/test_commands_e2e.py."""
from __future__ import annotations

import dataclasses

import pytest

from pytest_inferencemax.cli import bench, parity
from pytest_inferencemax.measure.runner import RunSettings
from pytest_inferencemax.plan.options import OPTIONS, option
from pytest_inferencemax.plugin.options import Settings

def test_bench_shares_what_it_runs_with():
    names = {o.name for o in OPTIONS}
    assert set(bench.SHARED) <= names and set(parity.SHARED) <= names
    # a shared option defaults as the table says (pytest resolves the same default in options.get)
    for name in bench.SHARED:
        opt = option(name)
        assert bench.parser().get_default(opt.field) == (False if opt.flag else opt.default), name


def test_settings_hold_every_option_of_the_table_and_two_more():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {o.field for o in OPTIONS} | {"api_key", "path_origins"}


def test_run_settings_are_taken_by_name_from_a_commands_arguments():
    args = bench.parse(["--server-url", "http://127.0.0.1:1", "--model", "m", "--conc", "2", "--isl", "1", "--osl",
                        "1", "--out", "x.json", "--seed", "7", "--client", "reference", "--stall-timeout", "9",
                        "--extra-body", '{"a": 1}', "--client-lag-limit-ms", "3"])
    run = RunSettings.from_options(args, api_key="k")
    assert (run.seed, run.client, run.stall_timeout, run.extra_body, run.client_lag_limit_ms, run.api_key) == (
        7, "reference", 9.0, {"a": 1}, 3.0, "k")
    assert (args.served_model_name, args.tokenizer, args.num_gpus) == ("m", "m", 1)  # the no-suite defaults


@pytest.mark.parametrize("argv, message", [
    (["--model", "m", "--conc", "1", "--isl", "1", "--osl", "1", "--out", "x"],
     "the following arguments are required: --server-url"),
    (["--base-url", "http://127.0.0.1:1", "--model", "m", "--conc", "1", "--isl", "1", "--osl", "1", "--out", "x",
      "--range-ratio", "2"], "--range-ratio 2.0 must be within [0, 1]"),
])
def test_bench_names_a_missing_or_bad_argument(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_parity_keeps_its_first_spellings_and_refuses_one_round(capsys):
    base = ["--base-url", "http://127.0.0.1:1", "--model", "m", "--isl", "1", "--osl", "1"]
    args = parity.parse(base + ["--conc", "3", "--rounds", "4"])
    assert (args.server_url, args.conc, args.parity_rounds) == ("http://127.0.0.1:1", 3, 4)
    with pytest.raises(SystemExit):
        parity.parse(base + ["--conc", "3", "--rounds", "1"])
    assert "at least 2 (one run per client shows no run-to-run spread)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parity.parse(base + ["--conc", "3,4"])
    assert "parity runs one point; give one concurrency" in capsys.readouterr().err
