"""A point's telemetry in its record (``inferencemax.telemetry``) and in its time-series file.

The summary is read over the timed run: gauges (running and waiting requests, KV-cache usage) from
the samples inside it; counters and histograms from the samples marked at its start and end, so
that tokens, preemptions and the server's own mean TTFT, inter-token, queue, prefill and decode times
cover exactly the timed requests. GPU power is summed over the server's GPUs; energy is mean power x
the run's duration. ``<point>.telemetry.jsonl`` keeps every sample, one JSON object a line
(``t`` in seconds from the timed run's start), small enough for hour-long points (about 0.5 kB a sample: 2 MB for an hour at 1 s).
"""
from __future__ import annotations

import json
import statistics
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # the record is read without the measuring side
    from pytest_inferencemax.serve.telemetry import Sample, Telemetry

Number = Union[int, float]


class GpuSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    tool: Optional[str] = None  # amd-smi, rocm-smi or nvidia-smi; None when absent
    absent: Optional[str] = None  # why there is no GPU telemetry
    gpus: list[str] = []
    mean_power_w: Optional[Number] = None  # summed over the GPUs, averaged over the run
    energy_j: Optional[Number] = None
    joules_per_output_token: Optional[Number] = None
    output_tokens_per_joule: Optional[Number] = None
    mean_util_pct: Optional[Number] = None
    mean_clock_mhz: Optional[Number] = None
    peak_clock_mhz: Optional[Number] = None
    max_temp_c: Optional[Number] = None
    peak_mem_used_mb: Optional[Number] = None


class TelemetrySummary(BaseModel):
    """``inferencemax.telemetry``: the server's and the GPUs' view of the timed run."""

    model_config = ConfigDict(extra="allow")

    samples: int = 0
    interval_s: Number = 1.0
    series: Optional[str] = None  # the time-series file, beside the record
    server_metrics: bool = False  # whether /metrics could be read
    server_metrics_absent: Optional[str] = None  # why not: no server metrics in this record, said rather than failed
    mean_running: Optional[Number] = None
    max_running: Optional[Number] = None
    mean_waiting: Optional[Number] = None
    max_waiting: Optional[Number] = None
    mean_kv_usage: Optional[Number] = None
    peak_kv_usage: Optional[Number] = None
    preemptions: Optional[Number] = None
    prompt_tokens: Optional[Number] = None
    generation_tokens: Optional[Number] = None
    server_mean_ttft_ms: Optional[Number] = None
    server_mean_itl_ms: Optional[Number] = None
    server_mean_queue_ms: Optional[Number] = None
    server_mean_prefill_ms: Optional[Number] = None
    server_mean_decode_ms: Optional[Number] = None
    sampler_cpu_s: Optional[Number] = None
    gpu: GpuSummary = GpuSummary()


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(tel: Telemetry, t0: float, duration: float, output_tokens: int) -> TelemetrySummary:
    samples = sorted(tel.samples, key=lambda s: s.t)
    start = next((s for s in samples if s.mark == "start"), None) or (samples[0] if samples else None)
    end = next((s for s in reversed(samples) if s.mark == "end"), None) or (samples[-1] if samples else None)
    inside = [s for s in samples if t0 <= s.t <= t0 + duration + 1e-6]
    rows = [s.server for s in inside if s.server]
    out = TelemetrySummary(samples=len(samples), interval_s=tel.interval, server_metrics=any(s.server for s in samples),
                           sampler_cpu_s=round(tel.thread_cpu_s, 4))
    if not out.server_metrics and samples:
        out.server_metrics_absent = getattr(tel, "server_absent", None) or "no sample read the server's /metrics"

    def gauge(role: str) -> list[float]:
        return [r[role] for r in rows if role in r]

    for role, mean_key, max_key in (("running", "mean_running", "max_running"), ("waiting", "mean_waiting", "max_waiting"),
                                    ("kv_usage", "mean_kv_usage", "peak_kv_usage")):
        values = gauge(role)
        setattr(out, mean_key, _mean(values))
        setattr(out, max_key, max(values) if values else None)
    a, b = (start.server if start else None), (end.server if end else None)
    if a and b:
        for role in ("preemptions", "prompt_tokens", "generation_tokens"):
            if role in a and role in b:
                setattr(out, role, b[role] - a[role])
        for role in ("ttft", "itl", "queue", "prefill", "decode"):
            n = b.get(f"{role}_count", 0.0) - a.get(f"{role}_count", 0.0)
            if n > 0:
                setattr(out, f"server_mean_{role}_ms", 1000.0 * (b[f"{role}_sum"] - a[f"{role}_sum"]) / n)
    out.gpu = _gpu_summary(tel, inside, duration, output_tokens)
    return out


def _gpu_summary(tel: Telemetry, inside: Sequence[Sample], duration: float, output_tokens: int) -> GpuSummary:
    if tel.gpu_tool is None:
        return GpuSummary(absent=tel.gpu_absent)
    readings = [s.gpus for s in inside if s.gpus]
    gpu = GpuSummary(tool=tel.gpu_tool, gpus=sorted({r.gpu for rs in readings for r in rs}))
    powers = [sum(r.power_w for r in rs if r.power_w is not None) for rs in readings
              if any(r.power_w is not None for r in rs)]
    gpu.mean_power_w = _mean(powers)
    if gpu.mean_power_w is not None:
        gpu.energy_j = gpu.mean_power_w * duration
        if output_tokens:
            gpu.joules_per_output_token = gpu.energy_j / output_tokens
            gpu.output_tokens_per_joule = output_tokens / gpu.energy_j if gpu.energy_j else None
    flat = [r for rs in readings for r in rs]
    gpu.mean_util_pct = _mean([r.util_pct for r in flat if r.util_pct is not None])
    clocks = [r.clock_mhz for r in flat if r.clock_mhz is not None]
    gpu.mean_clock_mhz, gpu.peak_clock_mhz = _mean(clocks), (max(clocks) if clocks else None)
    temps = [r.temp_c for r in flat if r.temp_c is not None]
    gpu.max_temp_c = max(temps) if temps else None
    mems = [r.mem_used_mb for r in flat if r.mem_used_mb is not None]
    gpu.peak_mem_used_mb = max(mems) if mems else None
    return gpu


def series_lines(tel: Telemetry, t0: float) -> str:
    """Every sample as a JSON line, ``t`` in seconds from the timed run's start (negative: the warmups)."""
    lines = []
    for s in sorted(tel.samples, key=lambda s: s.t):
        row: dict[str, Any] = {"t": round(s.t - t0, 3)}
        if s.mark:
            row["mark"] = s.mark
        if s.server is not None:
            row["server"] = s.server
        if s.gpus:
            row["gpus"] = [g.as_dict() for g in s.gpus]
        lines.append(json.dumps(row, separators=(",", ":")))
    return "\n".join(lines) + ("\n" if lines else "")
