"""A second real engine: the embedded transformers-serve suite (suites/smollm2-transformers) through the plugin in a
subprocess, as a user runs it: the plan shows the rendered command, the recipe launches `transformers serve` on CPU,
both points run, and the records say what the engine does otherwise instead of failing on it (ignore_eos asked
through generation_config, usage only inside a chunk with choices, no /metrics); at the end nothing of the server is left running."""
from __future__ import annotations

import json
import shutil

from e2e_support import MODELS_DIR, REPO, process_group


def test_transformers_serve_suite_runs_and_says_what_the_engine_cannot_do(pytester, smollm2_model, tmp_path):
    shutil.copytree(REPO / "suites" / "smollm2-transformers", pytester.path / "tf")
    plan = pytester.runpytest_subprocess("tf", "--collect-only", "--models-dir", str(MODELS_DIR), timeout=120)
    assert "-m transformers.cli.transformers serve '${models_dir}/SmolLM2-135M-Instruct' --continuous-batching " \
           "--device cpu" in plan.stdout.str()
    run = pytester.runpytest_subprocess("tf", "--models-dir", str(MODELS_DIR), "--results-dir", str(tmp_path),
                                        "--run-id", "tf", timeout=600)
    out = run.stdout.str()
    run.assert_outcomes(passed=3)  # its gate test (none in this stage: passed, said) and two points
    assert "starting transformers server" in out and "server ready in" in out
    # the point's line gives the reference's output throughput (0 here) and ours beside it
    assert "3/3 ok in " in out and ", 0.0 (" in out and " counted) out tok/s" in out
    pids = set()
    for conc, n in ((1, 3), (4, 12)):
        rec = json.loads((tmp_path / "tf" / f"smollm2tf-128-32-c{conc}.json").read_text())
        ours, check = rec["inferencemax"], rec["inferencemax"]["token_check"]
        assert rec["completed"] == n and ours["failed"] == 0 and rec["max_concurrency"] == conc
        assert ours["server"]["engine"] == "transformers" and ours["server"]["argv"][1:5] == [
            "-m", "transformers.cli.transformers", "serve", str(smollm2_model)]
        pids.add(ours["server"]["pid"])
        # ignore_eos asked as this engine takes it (generation_config's empty eos_token_id): every request gave exactly
        # its OSL, and the server counted exactly the ISL sent
        assert ours["ignore_eos_fields"] == {"generation_config": '{"eos_token_id": []}'}
        assert "ignore_eos" not in check and not check["failures"] and check["output"]["mismatched_requests"] == 0
        assert check["input"]["reported_tokens"] == check["input"]["expected_tokens"] == 128 * n
        assert check["output"]["reported_tokens"] == check["output"]["expected_tokens"] == 32 * n
        # usage comes only inside the last chunk with choices: the bounty client's count (the reference keys) is 0,
        # ours is the server's usage, and the record says so
        assert rec["total_output_tokens"] == 0 and rec["output_throughput"] == 0
        assert ours["total_output_tokens_counted"] == check["output"]["reported_tokens"]
        assert any("no usage in a chunk without choices" in f for f in check["flagged"])
        # no /metrics: said, not failed
        assert ours["telemetry"]["server_metrics"] is False
        assert ours["telemetry"]["server_metrics_absent"] == "GET /metrics answered HTTP 404"
        assert ours["prefix_cache"] == {"available": False, "why": "GET /metrics answered HTTP 404"}
        assert 0 < rec["median_ttft_ms"] < rec["median_e2el_ms"]
    (pid,) = pids  # one server for both points, and nothing of it left
    assert process_group(pid) == []
    report = (tmp_path / "tf" / "report.md").read_text()
    assert "no server metrics (GET /metrics answered HTTP 404)" in report
    assert "Output tokens: the reference keys (output throughput, TPOT, interactivity) count fewer" in report
    assert "CONC 1: 0 of 96 tokens, " in report and "CONC 4: 0 of 384 tokens, " in report
