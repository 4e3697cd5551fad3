"""The lean client (issue 12): how soon a fresh ``python -m pytest_inferencemax.cli.bench`` sends its first
request, and how much memory it takes, with the lean tokenizer and with transformers' AutoTokenizer.

It starts the calibration server (calibration_server.py), then for each client runs a fresh bench
process against it (CONC 1024, ISL 128, OSL 64, 2048 prompts by default, a short schedule through
``--extra-body '{"calibration": ...}'``) and measures:

- time to first request: from just before the process is started to the moment the server received
  the first benchmark request (its kernel receive stamp, from ``GET /calibration/truth``; both sides
  use ``time.perf_counter()``, CLOCK_MONOTONIC); the one-token probe the bench sends first to check the
  server is shown apart ("first contact");
- peak RSS of the bench process (``ru_maxrss`` from ``wait4``, the kernel's own high-water mark).

``transformers`` is the client as it was before issue 12: the same bench, with ``load_tokenizer``
replaced by ``AutoTokenizer.from_pretrained`` (which imports torch where it is installed).

    .venv/bin/python benchmarks/lean_client.py --repeats 3

Targets (issue 12): first request within 2 s, under 200 MB RSS at CONC 1024.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL_DIR = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"
TARGET_FIRST_S, TARGET_RSS_MB = 2.0, 200.0

# The bench before issue 12: the same command line, its tokenizer from transformers' AutoTokenizer.
TRANSFORMERS_BENCH = """
import sys
from pytest_inferencemax.cli import bench

def load_tokenizer(name_or_path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(name_or_path)

bench.load_tokenizer = load_tokenizer
sys.exit(bench.main(sys.argv[1:]))
"""
CLIENTS = {"lean": ["-m", "pytest_inferencemax.cli.bench"], "transformers": ["-c", TRANSFORMERS_BENCH]}
# Where the time before the first request goes: the bench's own steps, in a fresh process, each stamped
# with time.perf_counter() (the parent's clock too). argv: client base tokenizer isl osl num_prompts
PHASES = """
import json, resource, sys, time
stamps = {"python started": time.perf_counter()}
from pytest_inferencemax.cli import bench
from pytest_inferencemax.results.point_pipeline import run_point  # everything the bench imports
stamps["bench imported"] = time.perf_counter()
from pytest_inferencemax.serve.server import check_external
from pytest_inferencemax.measure.workload import random_workload
client, base, name, isl, osl, n = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
check_external(base, "calibration")
stamps["server checked"] = time.perf_counter()
if client == "lean":
    tok = bench.load_tokenizer(name)
else:
    from transformers import AutoTokenizer
    stamps["transformers imported"] = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(name)
stamps["tokenizer loaded"] = time.perf_counter()
random_workload(tok, input_len=isl, output_len=osl, num_prompts=n)
stamps["workload built"] = time.perf_counter()
stamps["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(stamps))
"""


def cores(spec: str | None) -> set[int] | None:
    if not spec:
        return None
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def pinned(which: set[int] | None):
    return (lambda: os.sched_setaffinity(0, which)) if which else None


def one_run(args: argparse.Namespace, client: str, base: str, out_dir: Path) -> dict:
    requests.post(base + "/calibration/reset", timeout=10)
    out = out_dir / f"{client}-{time.monotonic_ns()}.json"
    schedule = {"ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms, "tokens_per_event": args.tokens_per_event,
                "prompt_tokens": args.isl}  # usage.prompt_tokens as a real server counts the prompts
    bench_args = ["--base-url", base, "--model", "calibration", "--tokenizer", str(args.tokenizer),
                  "--isl", str(args.isl), "--osl", str(args.osl), "--conc", str(args.conc),
                  "--num-prompts", str(args.num_prompts), "--num-warmups", str(args.num_warmups),
                  "--extra-body", json.dumps({"calibration": schedule}), "--out", str(out), "-q"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = out.with_suffix(".log")
    with open(log, "wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *CLIENTS[client], *bench_args], cwd=ROOT, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, preexec_fn=pinned(cores(args.client_cores)))
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it with its resource usage: ru_maxrss is its peak RSS
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    truth = requests.get(base + "/calibration/truth", timeout=60).json()["requests"]
    arrivals = sorted((len(t["sent"]) > 1, t["received"]) for t in truth.values())
    probe = min((r for many, r in arrivals if not many), default=None)
    first = min((r for many, r in arrivals if many), default=None)
    rec = json.loads(out.read_text()) if out.is_file() else {}
    return {"client": client, "first_s": None if first is None else first - t0,
            "probe_s": None if probe is None else probe - t0,
            "rss_mb": usage.ru_maxrss / 1024, "wall_s": wall, "completed": rec.get("completed", 0),
            "rc": proc.returncode, "output": log.read_text(errors="replace")[-3000:]}


def phases(args: argparse.Namespace, client: str, base: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PHASES, client, base, str(args.tokenizer), str(args.isl),
                          str(args.osl), str(args.num_prompts)], cwd=ROOT, env=env, capture_output=True, text=True,
                         preexec_fn=pinned(cores(args.client_cores)), check=True)
    stamps = json.loads(out.stdout.strip().splitlines()[-1])
    rss = stamps.pop("peak RSS MB")
    return {**{k: v - t0 for k, v in stamps.items()}, "peak RSS MB": rss}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer", type=Path, default=MODEL_DIR, help="tokenizer folder (default: SmolLM2's)")
    p.add_argument("--conc", type=int, default=1024)
    p.add_argument("--isl", type=int, default=128)
    p.add_argument("--osl", type=int, default=64)
    p.add_argument("--num-prompts", type=int, default=2048)
    p.add_argument("--num-warmups", type=int, default=0, help="default: 0 (the bounty's stage 1 sends none)")
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--tokens-per-event", type=int, default=8)
    p.add_argument("--clients", default="lean,transformers", help="which clients, in order (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each client, interleaved (default: 3)")
    p.add_argument("--client-cores", help="pin the bench process to these cores, e.g. 0-7 (default: none)")
    p.add_argument("--server-cores", help="pin the calibration server to these cores (default: none)")
    p.add_argument("--no-phases", action="store_true", help="skip the breakdown of the time before the first request")
    args = p.parse_args()
    if not (args.tokenizer / "tokenizer.json").is_file():
        p.error(f"no tokenizer.json in {args.tokenizer}: build SmolLM2 first (bash scripts/quickstart.sh) or "
                "give --tokenizer PATH")
    from calibration_server import running

    runs: list[dict] = []
    with running(preexec_fn=pinned(cores(args.server_cores))) as base:
        with tempfile.TemporaryDirectory(prefix="lean-client-") as tmp:
            for i in range(args.repeats):
                for client in args.clients.split(","):
                    r = one_run(args, client, base, Path(tmp))
                    runs.append(r)
                    print(f"# run {i + 1} {client}: first request {r['first_s']:.2f} s, peak RSS {r['rss_mb']:.0f} MB, "
                          f"{r['completed']}/{args.num_prompts} completed, rc {r['rc']}, {r['wall_s']:.1f} s",
                          file=sys.stderr, flush=True)
                    if r["rc"] != 0:
                        print(r["output"], file=sys.stderr)
            steps = {} if args.no_phases else {client: phases(args, client, base) for client in args.clients.split(",")}
    print(f"\n{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.2f}; CONC {args.conc}, ISL {args.isl}, OSL {args.osl}, {args.num_prompts} prompts, "
          f"{args.num_warmups} warmups; median (min-max) of {args.repeats} run(s) each\n")
    print("| client | time to first request s | first contact (probe) s | peak RSS MB | completed | run wall s |")
    print("|---|---|---|---|---|---|")
    for client in args.clients.split(","):
        rs = [r for r in runs if r["client"] == client]
        def span(key: str, fmt: str) -> str:
            vals = [r[key] for r in rs if r[key] is not None]
            if not vals:
                return "-"
            med = statistics.median(vals)
            return format(med, fmt) + (f" ({min(vals):{fmt}}-{max(vals):{fmt}})" if len(vals) > 1 else "")
        done = "/".join(str(r["completed"]) for r in rs)
        print(f"| {client} | {span('first_s', '.2f')} | {span('probe_s', '.2f')} | {span('rss_mb', '.0f')} | {done} "
              f"| {span('wall_s', '.1f')} |")
    if steps:
        print("\nWhere the time goes before the first request (one fresh process each, the bench's steps without "
              "the load; seconds since the process was started):\n")
        names = [k for k in ("python started", "bench imported", "server checked", "transformers imported",
                             "tokenizer loaded", "workload built", "peak RSS MB") if any(k in st for st in steps.values())]
        print("| client | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for client, st in steps.items():
            print(f"| {client} | " + " | ".join(f"{st[k]:.{0 if 'MB' in k else 2}f}" if k in st else "-"
                                                for k in names) + " |")
    lean = [r for r in runs if r["client"] == "lean"]
    if lean:
        first, rss = max(r["first_s"] or float("inf") for r in lean), max(r["rss_mb"] for r in lean)
        print(f"\ntargets: first request within {TARGET_FIRST_S:g} s: {'met' if first <= TARGET_FIRST_S else 'MISSED'} "
              f"(slowest run {first:.2f} s); peak RSS under {TARGET_RSS_MB:g} MB: "
              f"{'met' if rss < TARGET_RSS_MB else 'MISSED'} (largest {rss:.0f} MB)")


if __name__ == "__main__":
    main()
