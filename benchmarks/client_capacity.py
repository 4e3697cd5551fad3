"""How much load our client can measure truthfully: the load generator against the calibration server.

For each concurrency level it starts a fresh client process pinned to one core, runs
``loadgen.run_load`` against ``calibration_server.py`` (started here, on the other cores), and
compares every request's client-measured TTFT and inter-event gaps with the times the server
recorded writing them. It prints one Markdown row per level:

- offered events/s (CONC / event interval) and achieved (events received / duration);
- TTFT error: client TTFT minus the server's (first event written minus request read), ms;
- ITL error: each client gap minus the server's gap between the same two events, ms;
- the client's CPU (share of its one core) and peak RSS, and its event-loop lag p99.

Goals (issue 6): median TTFT error <= 1 ms up to at least 50,000 events/s, RSS <= 150 MB at CONC 1024.

    .venv/bin/python benchmarks/client_capacity.py --levels 1,64,256,512,1024 --server-workers 4
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def cores(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def client_run(args: argparse.Namespace) -> None:
    """The client side, in its own process: run the load, then write what it measured."""
    from pytest_inferencemax.measure.loadtypes import ClientConfig
    from pytest_inferencemax.measure.aio import run_async
    from pytest_inferencemax.measure.loadgen import run_load
    from pytest_inferencemax.measure.workload import RequestSpec

    os.sched_setaffinity(0, cores(args.client_cores))
    sched = {"ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms, "tokens_per_event": args.tokens_per_event,
             "jitter": args.jitter}
    client = ClientConfig(base_url=args.base_url, model="calibration", extra_body={"calibration": sched})
    n = args.conc * args.requests_per_slot
    reqs = [RequestSpec(prompt="calibration prompt", prompt_len=2, output_len=args.osl, target_prompt_len=2)
            for _ in range(n)]
    if args.procs > 1:
        from pytest_inferencemax.measure.multiclient import run_load_multiprocess
        load = run_load_multiprocess(client, reqs, concurrency=args.conc, num_warmups=args.conc, procs=args.procs)
    else:
        load = run_async(run_load(client, reqs, concurrency=args.conc, num_warmups=args.conc))
    # the largest client process: this one, or with --procs the biggest of its children
    rss_mb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    out = {"duration": load.duration, "cpu_s": load.client_cpu_s, "rss_mb": rss_mb, "clock": load.arrival_clock,
           "lag_p99_ms": load.lag.p99_ms if load.lag else None,
           "requests": [{"id": r.response_id, "ok": r.success, "ttft": r.ttft, "start": r.start, "itl": list(r.itl),
                         "events": r.events} for r in load.results]}
    Path(args.out).write_text(json.dumps(out))


def read_truth(truth_dir: Path) -> dict[str, dict]:
    truth = {}
    for f in truth_dir.glob("truth-*.jsonl"):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            truth[rec["id"]] = rec
    return truth


def level(args: argparse.Namespace, conc: int, truth_dir: Path) -> dict:
    for f in truth_dir.glob("truth-*.jsonl"):
        f.write_text("")
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sys.executable, __file__, "--client-run", "--out", tmp.name, "--conc", str(conc),
               "--base-url", args.base_url, "--client-cores", args.client_cores, "--osl", str(args.osl),
               "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms), "--procs", str(args.procs),
               "--tokens-per-event", str(args.tokens_per_event), "--jitter", str(args.jitter), "--requests-per-slot", str(args.requests_per_slot)]
        subprocess.run(cmd, check=True)
        got = json.loads(Path(tmp.name).read_text())
    time.sleep(0.3)  # the workers' last lines
    truth = read_truth(truth_dir)
    ttft_err, itl_err, events, failed, req_path, resp_path = [], [], 0, 0, [], []
    for r in got["requests"]:
        t = truth.get(r["id"])
        if not r["ok"] or t is None:
            failed += 1
            continue
        events += r["events"]
        ttft_err.append(r["ttft"] - (t["sent"][0] - t["received"]))
        req_path.append(t["received"] - r["start"])  # one clock: CLOCK_MONOTONIC in both processes
        resp_path.append(r["start"] + r["ttft"] - t["sent"][0])
        true_gaps = np.diff(t["sent"])
        itl_err.extend(np.asarray(r["itl"]) - true_gaps[: len(r["itl"])])
    ms = lambda a, q: float(np.percentile(np.asarray(a) * 1000, q)) if len(a) else float("nan")  # noqa: E731
    return {"conc": conc, "offered": conc / (args.itl_ms * args.tokens_per_event / 1000),
            "achieved": events / got["duration"], "failed": failed,
            "ttft_med": ms(ttft_err, 50), "ttft_p99": ms(ttft_err, 99),
            "itl_med": ms(itl_err, 50), "itl_p99": ms(itl_err, 99),
            "req_med": ms(req_path, 50), "resp_med": ms(resp_path, 50),
            "cpu": got["cpu_s"] / got["duration"], "rss": got["rss_mb"], "lag_p99": got["lag_p99_ms"],
            "clock": got["clock"]}


def main() -> None:
    p = argparse.ArgumentParser(description="client capacity against the calibration server")
    p.add_argument("--levels", default="1,64,256,512,1024", help="concurrency levels (default: 1,64,256,512,1024)")
    p.add_argument("--itl-ms", type=float, default=20.0, help="event interval at 1 token/event (default: 20)")
    p.add_argument("--ttft-ms", type=float, default=50.0, help="default: 50")
    p.add_argument("--tokens-per-event", type=int, default=1)
    p.add_argument("--jitter", type=float, default=0.0,
                   help="event interval spread (0: every stream in lockstep, as one batched decode step; "
                        "0.5: streams drift apart) (default: 0)")
    p.add_argument("--osl", type=int, default=50, help="tokens per request (default: 50)")
    p.add_argument("--requests-per-slot", type=int, default=6, help="requests = CONC x this (default: 6)")
    p.add_argument("--client-cores", default="0", help="cores for the client process(es) (default: 0)")
    p.add_argument("--server-cores", default=None, help="cores for the server (default: all others)")
    p.add_argument("--server-workers", type=int, default=1, help="calibration server processes (default: 1)")
    p.add_argument("--procs", type=int, default=1, help="client processes (default: 1)")
    p.add_argument("--port", type=int, default=8399)
    p.add_argument("--client-run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--conc", type=int, help=argparse.SUPPRESS)
    p.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client_run:
        return client_run(args)
    args.base_url = f"http://127.0.0.1:{args.port}"
    all_cores = os.sched_getaffinity(0)
    server_cores = cores(args.server_cores) if args.server_cores else (all_cores - cores(args.client_cores)) or all_cores
    truth_dir = Path(tempfile.mkdtemp(prefix="calibration-truth-"))
    server = subprocess.Popen(
        [sys.executable, str(HERE / "calibration_server.py"), "--port", str(args.port), "--truth-dir", str(truth_dir),
         "--workers", str(args.server_workers)],
        preexec_fn=lambda: os.sched_setaffinity(0, server_cores))
    try:
        for _ in range(100):
            try:
                if requests.get(args.base_url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        print(f"# {os.cpu_count()} cores; client on {sorted(cores(args.client_cores))} ({args.procs} process(es)), "
              f"server ({args.server_workers} worker(s)) on {sorted(server_cores)}; TTFT {args.ttft_ms:g} ms, "
              f"{args.tokens_per_event} token(s)/event every {args.itl_ms * args.tokens_per_event:g} ms "
              f"(jitter {args.jitter:g}), "
              f"OSL {args.osl}, CONC x {args.requests_per_slot} requests\n")
        print("| CONC | offered ev/s | achieved ev/s | TTFT err median ms | TTFT err p99 ms "
              "| request / response path median ms | ITL err median ms "
              "| ITL err p99 ms | client CPU | peak RSS MB | loop lag p99 ms | stamps | failed |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for conc in (int(c) for c in args.levels.split(",")):
            r = level(args, conc, truth_dir)
            print(f"| {r['conc']} | {r['offered']:,.0f} | {r['achieved']:,.0f} | {r['ttft_med']:.3f} | {r['ttft_p99']:.3f} "
                  f"| {r['req_med']:.3f} / {r['resp_med']:.3f} | {r['itl_med']:.3f} | {r['itl_p99']:.3f} | {r['cpu']:.0%} "
                  f"| {r['rss']:.0f} | {r['lag_p99']:.2f} | {r['clock']} | {r['failed']} |", flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(truth_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
