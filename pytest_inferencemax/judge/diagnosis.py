"""Why a point lost: a one-line reading of its telemetry, by documented rules.

Each rule reads the point's record (``inferencemax.telemetry`` and the client's figures) and, when its
condition holds, says what held the point back, in numbers. The thresholds are :data:`THRESHOLDS`,
the only place they live; docs/diagnosis.md explains each rule. Rules that need a figure the run did
not have (no ``/metrics``, no GPU tool) stay silent rather than guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from pytest_inferencemax.results.record import PointRecord

THRESHOLDS: Mapping[str, float] = {
    "kv_full": 0.95,  # peak KV-cache usage (0..1) at which memory caps the batch, with preemptions
    "queue_ms": 500.0,  # mean time a request waited in the server's queue
    "front_end_ms": 100.0,  # client TTFT minus the server's own TTFT, at least this much ...
    "front_end_share": 0.5,  # ... and at least this share of the client's TTFT: time lost before the engine
    "small_batch": 0.8,  # mean running requests below this share of CONC
    "throttle": 0.9,  # mean GPU clock below this share of its peak during the point
    "hot_c": 90.0,  # GPU temperature at which clocks are likely to drop
}


@dataclass(frozen=True)
class Finding:
    rule: str
    text: str


def _kv_pressure(rec: PointRecord) -> str | None:
    t = rec.ours.telemetry
    if t and t.peak_kv_usage is not None and t.peak_kv_usage >= THRESHOLDS["kv_full"] and (t.preemptions or 0) > 0:
        return (f"KV cache at {t.peak_kv_usage:.0%} with {t.preemptions:.0f} preemptions: the batch is capped by "
                "memory")
    return None


def _queueing(rec: PointRecord) -> str | None:
    t = rec.ours.telemetry
    if t and t.server_mean_queue_ms is not None and t.server_mean_queue_ms >= THRESHOLDS["queue_ms"]:
        return f"requests waited {t.server_mean_queue_ms / 1000:.1f} s in the server queue on average"
    return None


def _front_end(rec: PointRecord) -> str | None:
    t = rec.ours.telemetry
    if not t or t.server_mean_ttft_ms is None:
        return None
    gap = rec.mean_ttft_ms - t.server_mean_ttft_ms
    if gap >= THRESHOLDS["front_end_ms"] and gap >= THRESHOLDS["front_end_share"] * rec.mean_ttft_ms:
        return (f"server-side TTFT {t.server_mean_ttft_ms:,.0f} ms vs client {rec.mean_ttft_ms:,.0f} ms: "
                "time lost before the engine")
    return None


def _small_batch(rec: PointRecord) -> str | None:
    t = rec.ours.telemetry
    conc = rec.ours.conc
    if t and t.mean_running is not None and conc > 1 and t.mean_running < THRESHOLDS["small_batch"] * conc:
        return f"the running batch averaged {t.mean_running:.1f} of CONC {conc}"
    return None


def _throttled(rec: PointRecord) -> str | None:
    t = rec.ours.telemetry
    g = t.gpu if t else None
    if not g or g.mean_clock_mhz is None or not g.peak_clock_mhz:
        return None
    if g.mean_clock_mhz < THRESHOLDS["throttle"] * g.peak_clock_mhz:
        hot = f" at up to {g.max_temp_c:.0f} °C" if g.max_temp_c is not None and g.max_temp_c >= THRESHOLDS["hot_c"] else ""
        return (f"GPU clocks averaged {g.mean_clock_mhz:,.0f} MHz, {1 - g.mean_clock_mhz / g.peak_clock_mhz:.0%} below "
                f"their peak {g.peak_clock_mhz:,.0f} MHz{hot}: throttled")
    return None


# in the order they are reported: memory first, since it causes queueing and small batches
RULES: tuple[tuple[str, Callable[[PointRecord], str | None]], ...] = (
    ("kv_pressure", _kv_pressure), ("queueing", _queueing), ("front_end", _front_end),
    ("small_batch", _small_batch), ("throttled", _throttled),
)


def diagnose(rec: PointRecord) -> list[Finding]:
    """Every rule that holds for the point."""
    return [Finding(name, text) for name, rule in RULES if (text := rule(rec))]


def not_diagnosed(rec: PointRecord) -> str | None:
    """Why a point's counters cannot be read as its bottleneck, or None when they can."""
    if rec.ours.aborted:
        return f"cut short ({rec.ours.aborted.splitlines()[0]})"
    if not rec.completed:
        return "no request succeeded"
    if rec.invalid:
        return "it did not run the workload it names"
    if rec.failed:
        return f"{rec.failed} of {rec.num_prompts} requests failed"
    return None


def reading(rec: PointRecord) -> str:
    """The one-line reading of a point: its findings, or what the telemetry could not tell. A point that is
    not a clean result (cut short, no or failed requests, another workload) is not diagnosed: its counters
    describe a server that was not serving the point's load."""
    if why := not_diagnosed(rec):
        return f"not diagnosed: {why}"
    t = rec.ours.telemetry
    if t is None or not t.server_metrics:
        return "no server telemetry for this point"
    findings = diagnose(rec)
    if not findings:
        return "no bottleneck in the server's counters (batch full, no queueing, no preemptions)"
    return "; ".join(f.text for f in findings)
