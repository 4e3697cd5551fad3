"""--reset-prefix-cache end to end, on the calibration server launched as a suite's recipe with a prefix cache of
its own (``--prefix-cache``: a prompt seen before is served from it, counted in vLLM's counters; emptied by
``POST /reset_prefix_cache``, which it serves, as vLLM does, only with ``VLLM_SERVER_DEV_MODE=1``). A point run
twice (``--repeat 2``) sends the same seeded prompts again: without the reset its second round hits the cache for
every prompt; with it (``auto``: the recipe caches prefixes) the second round hits nothing the warmups did not."""
from __future__ import annotations

import json

import pytest

from e2e_support import calibration_argv, calibration_suite_toml, stage_toml

SUITE = calibration_suite_toml(calibration_argv("--prefix-cache"),
                               stage_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 2 }"))


@pytest.mark.parametrize("mode, reset", [("off", None), ("auto", True)])
def test_a_second_round_hits_the_cache_unless_it_was_reset(pytester, smollm2_model, tmp_path, mode, reset):
    d = pytester.mkdir("cal")
    (d / "suite.toml").write_text(SUITE)
    (d / "test_cal.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                   "# noqa: F401\n")
    run = pytester.runpytest_subprocess(
        "cal", "--repeat", "2", "--reset-prefix-cache", mode, "--tokenizer", str(smollm2_model), "--results-dir",
        str(tmp_path), "--run-id", mode, "--telemetry-interval", "0",
        "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    run.assert_outcomes(passed=2)
    rounds = [json.loads((tmp_path / mode / "rounds" / f"cal-16-4-c2.r{n}.json").read_text())["inferencemax"]
              ["prefix_cache"] for n in (1, 2)]
    warm = 16 * 2  # the warmups' copies of the first prompt (2 x CONC 2): the record's discount
    for cache in rounds:
        assert cache["available"] and cache["query_tokens"] == 16 * (2 + 4)  # 2 warmups, 4 timed requests
        assert cache.get("reset") is reset
    assert rounds[0]["hit_tokens"] <= warm and rounds[0]["warning"] is None  # a fresh server: only prompt 0 again
    if reset:
        assert rounds[1]["hit_tokens"] <= warm and rounds[1]["warning"] is None
        assert rounds[1]["reset_note"] == "POST /reset_prefix_cache before the point's warmups"
    else:
        assert rounds[1]["hit_tokens"] == 16 * (2 + 4)  # every prompt seen in round 1
        assert "the prefix cache served 96 of 96 prompt tokens" in rounds[1]["warning"]
