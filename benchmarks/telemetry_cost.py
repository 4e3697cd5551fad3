"""What sampling the server costs the measurement (issue 14): the client's event-loop lag and
throughput at CONC 256 against the calibration server, without the telemetry sampler and with it
(every 1 s, the default, and every 0.1 s, ten times harder), alternating, in one process.

    .venv/bin/python benchmarks/telemetry_cost.py [--conc 256] [--rounds 3]

The calibration server answers /metrics with vLLM's names, so the sampler does its real work (an
HTTP GET and a Prometheus parse per sample, in its own thread). Printed: per setting the median over
rounds of the client's loop lag (median and p99 of its 10 ms probe), output events per second, the
sampler's samples and its thread's CPU seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from calibration_server import running  # noqa: E402
from pytest_inferencemax.measure.loadtypes import ClientConfig  # noqa: E402
from pytest_inferencemax.measure.aio import run_async  # noqa: E402
from pytest_inferencemax.measure.loadgen import run_load  # noqa: E402
from pytest_inferencemax.serve.telemetry import TelemetrySampler  # noqa: E402
from pytest_inferencemax.measure.workload import RequestSpec  # noqa: E402


def one(base: str, conc: int, osl: int, interval: float | None) -> dict:
    sched = {"ttft_ms": 20, "itl_ms": 10, "tokens_per_event": 1}
    client = ClientConfig(base_url=base, model="calibration", extra_body={"calibration": sched})
    reqs = [RequestSpec(prompt="calibration prompt", prompt_len=2, output_len=osl, target_prompt_len=2)] * (conc * 4)
    sampler = TelemetrySampler(base, interval=interval) if interval else None
    if sampler:
        with sampler:
            load = run_async(run_load(client, reqs, concurrency=conc, num_warmups=conc))
    else:
        load = run_async(run_load(client, reqs, concurrency=conc, num_warmups=conc))
    events = sum(r.events for r in load.results)
    return {"lag_median_ms": load.lag.median_ms, "lag_p99_ms": load.lag.p99_ms, "events_per_s": events / load.duration,
            "ok": sum(r.success for r in load.results), "n": len(reqs),
            "samples": len(sampler.telemetry.samples) if sampler else 0,
            "sampler_cpu_s": sampler.telemetry.thread_cpu_s if sampler else 0.0, "duration": load.duration}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conc", type=int, default=256)
    p.add_argument("--osl", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    settings = {"no sampling": None, "every 1 s": 1.0, "every 0.1 s": 0.1}
    results: dict[str, list[dict]] = {k: [] for k in settings}
    with running() as base:
        for rnd in range(args.rounds):
            for name, interval in settings.items():
                r = one(base, args.conc, args.osl, interval)
                results[name].append(r)
                print(f"# round {rnd + 1} {name}: lag p99 {r['lag_p99_ms']:.2f} ms, {r['events_per_s']:,.0f} events/s, "
                      f"{r['ok']}/{r['n']} ok, {r['samples']} samples", file=sys.stderr, flush=True)
    print(f"\nCONC {args.conc}, OSL {args.osl}, {args.conc * 4} requests a run, {args.rounds} rounds; medians over rounds\n")
    print("| sampling | loop lag median ms | loop lag p99 ms | events/s | samples | sampler CPU s | run s |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        def med(key: str) -> float:
            return statistics.median(r[key] for r in rows)
        print(f"| {name} | {med('lag_median_ms'):.3f} | {med('lag_p99_ms'):.2f} | {med('events_per_s'):,.0f} | "
              f"{med('samples'):.0f} | {med('sampler_cpu_s'):.3f} | {med('duration'):.1f} |")


if __name__ == "__main__":
    main()
