"""Telemetry against the embedded vLLM CPU server's real /metrics: the point's series shows the batch
fill to CONC and drain, and the server counted exactly the point's tokens between the run's marks."""
from __future__ import annotations

import json

from pytest_inferencemax.measure.runner import RunSettings
from pytest_inferencemax.measure.workload import load_tokenizer
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.progress import StreamProgress
from pytest_inferencemax.publish.finish import finish_run
from pytest_inferencemax.results.point_pipeline import ServerTarget, run_point
from pytest_inferencemax.results.store import RunFolder


def test_a_point_carries_the_servers_series_and_summary(vllm_server, smollm2_model, tmp_path):
    point = Point(suite="smollm2", stage="cpu", isl=48, osl=24, conc=4, num_prompts=12, num_warmups=4,
                  range_ratio=1.0, tp=1, tput_per_gpu_divisor=1)
    folder = RunFolder(tmp_path)
    server = ServerTarget(vllm_server.base_url, "smollm2", load_tokenizer(str(smollm2_model)), str(smollm2_model))
    outcome = run_point(point, server, RunSettings(telemetry_interval=0.5), StreamProgress(quiet=True), folder)
    rec = outcome.record
    t = rec.ours.telemetry
    assert t.server_metrics and t.series == "smollm2-48-24-c4.telemetry.jsonl"
    # exactly the timed requests' tokens, counted by the server between the marks
    assert t.generation_tokens == rec.total_output_tokens == 12 * 24
    assert t.prompt_tokens == rec.ours.token_check.input["reported_tokens"]  # the server's own prompt count
    assert t.max_running == 4 and 0 < t.mean_running <= 4 and t.preemptions == 0
    assert t.server_mean_ttft_ms is not None and 0 < t.server_mean_ttft_ms <= rec.mean_ttft_ms * 1.5
    assert t.gpu.absent == "no amd-smi, rocm-smi or nvidia-smi on PATH" and t.gpu.mean_power_w is None
    rows = [json.loads(line) for line in (tmp_path / t.series).read_text().splitlines()]
    marks = [r["t"] for r in rows if r.get("mark")]
    # marked just before the timed run starts (t = 0); between the two only the client's own set-up runs (a
    # garbage collection of a heap holding transformers, no request), which took 0.52 s once on a busy 2-core host
    assert len(marks) == 2 and -2.0 < marks[0] <= 0.0
    running = [r["server"]["running"] for r in rows if 0 <= r["t"] <= marks[1]]
    assert max(running) == 4 and rows[-1]["server"]["running"] == 0  # rose to CONC, fell back
    # the record on disk carries it all; the report shows the reading and the plot
    assert json.loads(outcome.path.read_text())["inferencemax"]["telemetry"]["generation_tokens"] == 288
    finished = finish_run(tmp_path, folder.points(), {("smollm2", "cpu"): {"rule": "none", "reason": "CPU"}},
                          tmp_path / "baselines")
    report = finished.report.read_text()
    assert "### Diagnosis" in report and "server TTFT" in report
    assert (tmp_path / "plots" / "smollm2-48-24-c4-telemetry.png").stat().st_size > 10_000
