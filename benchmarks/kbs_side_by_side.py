"""The reference client against the bounty client itself, side by side, against the calibration server.

Issue 21, item 5. The bounty client (kimbochen/bench_serving, "KBS") is run as it is, from a folder
given on the command line (never copied into this repository): its own ``benchmark_serving.py`` in a
subprocess with the bounty's flags (``--backend vllm --dataset-name random --random-range-ratio 1.0
--num-prompts N --max-concurrency CONC --request-rate inf --ignore-eos --save-result
--percentile-metrics ttft,tpot,itl,e2el``, plus ``--num-warmups 2xCONC`` and ``--save-detailed`` where
that commit has them: 499c0b1, stage 1, has neither and sends one untimed initial test request
instead). Our two clients run through the project's own command line,
``python -m pytest_inferencemax.cli.bench`` (``--client reference`` once per stage it mirrors, with
``--client-version 499c0b1`` or ``ee86723``; ``--client precise`` with ``ee86723``; a bench from before
``--client-version`` gets ``--num-warmups`` 0 or 2xCONC instead). Every
client process is pinned to one core with ``taskset``; one calibration server (``calibration_server.py``)
runs on the other. Rounds alternate the clients, their order rotated by one each round.

Truth. The calibration server writes each request's first event ``--ttft-ms`` after it read the
request and records, per response id, the kernel's receive stamp of the request and when it wrote
each event; true TTFT = first event written - request received. Its prompt-token count is set to ISL
(``/calibration/schedule``), as a server with the client's tokenizer would count.

Matching. KBS keeps no response id, and its per-request arrays are in workload order, not in the
order requests reached the server (each request opens its own connection, so arrivals can swap).
Pairing by order or by prompt would therefore rest on a guess. Instead, each client is judged by the
figure it publishes: error = the client's own ``median_ttft_ms`` - the median true TTFT over the
same run's timed requests. Those are the last N requests the server read. The server is reset before
each run, and warmups, the initial test request and our one-token server check are all awaited
before the timed run starts. This equals the median of per-request errors to within the spread of
the true TTFTs (if every true TTFT lies in [lo, hi], the two differ by at most hi - lo). That spread
is printed per row. The schedule keeps it small on a quiet machine, where the server is never the
bottleneck (about 1.5 ms); other processes on the server's core widen it. All clients are measured
the same way.

    .venv/bin/python benchmarks/kbs_side_by_side.py --kbs /work/scratch/kbs-499c0b1 \\
        --kbs /work/scratch/kbs-ee86723 --conc 16,64,128 --rounds 3
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from calibration_server import running  # noqa: E402  (the benchmarks' and tests' one way to start it)

STAGE_COMMIT = {"s1": "499c0b1", "s2": "ee86723"}  # the bounty client each stage cloned


@dataclass
class Client:
    name: str
    stage: str  # "s1" (no warmups, initial test request) or "s2" (2xCONC warmups)
    kbs: Path | None = None  # the bounty client's folder; None: ours through cli.bench
    kind: str = ""  # ours: "reference" or "precise"

    def command(self, a: argparse.Namespace, conc: int, out: Path) -> list[str]:
        pin = ["taskset", "-c", str(a.client_core), a.python]
        n = conc * a.prompts_per_conc
        if self.kbs is not None:
            src = (self.kbs / "benchmark_serving.py").read_text()
            cmd = pin + [str(self.kbs / "benchmark_serving.py"), "--model", a.model, "--tokenizer", a.tokenizer,
                         "--backend", "vllm", "--base-url", a.base_url, "--dataset-name", "random",
                         "--random-input-len", str(a.isl), "--random-output-len", str(a.osl),
                         "--random-range-ratio", "1.0", "--num-prompts", str(n), "--max-concurrency", str(conc),
                         "--request-rate", "inf", "--ignore-eos", "--save-result",
                         "--percentile-metrics", "ttft,tpot,itl,e2el",
                         "--result-dir", str(out.parent), "--result-filename", out.name]
            if "--num-warmups" in src:
                cmd += ["--num-warmups", str(2 * conc)]
            if "--save-detailed" in src:
                cmd += ["--save-detailed"]
            return cmd
        if a.client_version:  # the bench mirrors a bounty client commit: its warmups, initial request, prompts
            mirror = ["--client-version", STAGE_COMMIT[self.stage]]
        else:  # an older bench: warmups only
            mirror = ["--num-warmups", str(0 if self.stage == "s1" else 2 * conc)]
        return pin + ["-m", "pytest_inferencemax.cli.bench", "--base-url", a.base_url, "--model", a.model,
                      "--tokenizer", a.tokenizer, "--isl", str(a.isl), "--osl", str(a.osl), "--conc", str(conc),
                      "--num-prompts", str(n), *mirror, "--client", self.kind, "--save-detailed", "--out", str(out),
                      "-q"]


@dataclass
class Run:
    err_ms: float  # client's median TTFT - median true TTFT
    client_ms: float
    truth_ms: float
    truth_range: tuple[float, float]
    out_tput: float
    failed: int
    total_in: int
    total_out: int
    wall_s: float


@dataclass
class Row:
    client: Client
    conc: int
    runs: list[Run] = field(default_factory=list)

    def err(self) -> float:
        return float(np.mean([r.err_ms for r in self.runs]))

    def totals(self) -> set[tuple[int, int]]:
        return {(r.total_in, r.total_out) for r in self.runs}


def kbs_stage(folder: Path) -> str:
    return "s2" if "--num-warmups" in (folder / "benchmark_serving.py").read_text() else "s1"


@contextlib.contextmanager
def calibration_server(a: argparse.Namespace) -> Iterator[str]:
    """The calibration server on its own core (``calibration_server.running``: a free port, ready once /health
    answers, stopped on exit), counting ``usage.prompt_tokens`` as ISL; yields its base URL."""
    args = ["--ttft-ms", str(a.ttft_ms), "--itl-ms", str(a.itl_ms), "--jitter", str(a.jitter)]
    with running(*args, preexec_fn=lambda: os.sched_setaffinity(0, {a.server_core})) as base:
        print(f"$ taskset -c {a.server_core} {shlex.join([sys.executable, str(HERE / 'calibration_server.py')])} "
              f"--port {base.rsplit(':', 1)[1]} {shlex.join(args)}", flush=True)
        requests.post(base + "/calibration/schedule", json={"prompt_tokens": a.isl}, timeout=5).raise_for_status()
        yield base


def one_run(a: argparse.Namespace, client: Client, conc: int, work: Path, tag: str) -> Run:
    out = work / f"{tag}.json"
    cmd = client.command(a, conc, out)
    print("$ " + shlex.join(cmd), flush=True)
    requests.post(a.base_url + "/calibration/reset", timeout=5).raise_for_status()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(a.project))
    t0 = time.monotonic()
    with (work / f"{tag}.log").open("w") as log:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    if not out.exists():
        raise SystemExit(f"{client.name} wrote no result (exit {rc}); see {work / (tag + '.log')}")
    res = json.loads(out.read_text())
    n = conc * a.prompts_per_conc
    truth = requests.get(a.base_url + "/calibration/truth", timeout=30).json()["requests"]
    timed = sorted(truth.values(), key=lambda t: t["received"])[-n:]
    true_ms = np.array([(t["sent"][0] - t["received"]) * 1000 for t in timed if t["sent"]])
    med = float(np.median(true_ms))
    return Run(err_ms=res["median_ttft_ms"] - med, client_ms=res["median_ttft_ms"], truth_ms=med,
               truth_range=(float(true_ms.min()), float(true_ms.max())), out_tput=res["output_throughput"],
               failed=n - res["completed"], total_in=res["total_input_tokens"],
               total_out=res["total_output_tokens"], wall_s=wall)


def load_avg() -> str:
    return "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def table(rows: list[Row]) -> None:
    print("| CONC | client | stage | TTFT err median ms (mean) | per round | client / true median TTFT ms "
          "| true TTFT range ms | output tok/s | failed | total output tokens | total input tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        rs = row.runs
        fmt_set = lambda vals: " / ".join(str(v) for v in sorted(set(vals)))  # noqa: E731
        print(f"| {row.conc} | {row.client.name} | {row.client.stage} | {row.err():+.2f} "
              f"| {' / '.join(f'{r.err_ms:+.2f}' for r in rs)} "
              f"| {np.mean([r.client_ms for r in rs]):.2f} / {np.mean([r.truth_ms for r in rs]):.2f} "
              f"| {min(r.truth_range[0] for r in rs):.2f}-{max(r.truth_range[1] for r in rs):.2f} "
              f"| {np.mean([r.out_tput for r in rs]):,.1f} | {sum(r.failed for r in rs)} "
              f"| {fmt_set(r.total_out for r in rs)} | {fmt_set(r.total_in for r in rs)} |")


def verdicts(rows: list[Row]) -> bool:
    ok = True
    for conc in sorted({r.conc for r in rows}):
        here = [r for r in rows if r.conc == conc]
        for kbs in (r for r in here if r.client.kbs is not None):
            ref = next(r for r in here if r.client.kind == "reference" and r.client.stage == kbs.client.stage)
            limit = max(0.2 * abs(kbs.err()), 1.0)
            diff = ref.err() - kbs.err()
            close = abs(diff) <= limit
            same = ref.totals() == kbs.totals() and len(kbs.totals()) == 1
            ok &= close and same
            noise = 2 * float(np.sqrt(sum(np.var([r.err_ms for r in x.runs], ddof=1) / len(x.runs)
                                          for x in (ref, kbs)))) if len(ref.runs) > 1 else float("nan")
            unresolved = not close and abs(diff) <= noise
            print(f"CONC {conc}: {ref.client.name} vs {kbs.client.name}: TTFT error {ref.err():+.2f} vs "
                  f"{kbs.err():+.2f} ms (difference {diff:+.2f}, limit +/-{limit:.2f}, two standard errors of the "
                  f"rounds +/-{noise:.2f}) {'within' if close else 'OUTSIDE'}"
                  f"{' (but within the noise: not resolved by these rounds)' if unresolved else ''}; token totals "
                  f"(in, out) {sorted(ref.totals())} vs {sorted(kbs.totals())} {'identical' if same else 'DIFFER'} "
                  f"-> {'PASS' if close and same else 'FAIL'}")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kbs", type=Path, action="append", required=True,
                   help="a folder with the bounty client's benchmark_serving.py (repeat for each commit)")
    p.add_argument("--conc", default="16,64,128", help="concurrency levels (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    p.add_argument("--isl", type=int, default=128, help="default: %(default)s")
    p.add_argument("--osl", type=int, default=64, help="default: %(default)s")
    p.add_argument("--prompts-per-conc", type=int, default=10,
                   help="NUM_PROMPTS = CONC x this, as the bounty's GPT-OSS points (default: %(default)s)")
    p.add_argument("--ttft-ms", type=float, default=100.0, help="the server's TTFT (default: %(default)s)")
    p.add_argument("--itl-ms", type=float, default=20.0, help="the server's per-token ITL (default: %(default)s)")
    p.add_argument("--jitter", type=float, default=0.0,
                   help="the server's event interval spread; 0: streams in lockstep, as one batched decode step "
                        "(default: %(default)s)")
    p.add_argument("--tokenizer", default=str(ROOT / ".cache/models/SmolLM2-135M-Instruct"))
    p.add_argument("--model", default="calibration", help="the served model name (default: %(default)s)")
    p.add_argument("--client-core", type=int, default=0, help="default: %(default)s")
    p.add_argument("--server-core", type=int, default=1, help="default: %(default)s")
    p.add_argument("--python", default=sys.executable, help="interpreter for the client processes (default: this one, which also runs the server)")
    p.add_argument("--project", type=Path, default=ROOT,
                   help="the pytest_inferencemax checkout our clients run from, e.g. a `git archive` of one commit "
                        "while others edit the tree (default: this one)")
    p.add_argument("--keep", type=Path, help="keep every result JSON and log in this folder")
    a = p.parse_args()
    a.project = a.project.resolve()
    bench_help = subprocess.run([a.python, "-m", "pytest_inferencemax.cli.bench", "--help"], capture_output=True,
                                text=True, env=dict(os.environ, PYTHONPATH=str(a.project))).stdout
    a.client_version = "--client-version" in bench_help
    concs = [int(c) for c in a.conc.split(",")]
    clients = [Client(f"KBS {k.resolve().name}", kbs_stage(k), kbs=k.resolve()) for k in a.kbs]
    clients += [Client(f"reference ({s} mirror)", s, kind="reference") for s in sorted({c.stage for c in clients})]
    clients += [Client("precise", "s2", kind="precise")]
    work = a.keep or Path(tempfile.mkdtemp(prefix="kbs-sbs-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = {(c.name, conc): Row(c, conc) for conc in concs for c in clients}
    print(f"# {os.cpu_count()} cores; clients on core {a.client_core}, calibration server on core {a.server_core}; "
          f"TTFT {a.ttft_ms:g} ms, ITL {a.itl_ms:g} ms, ISL {a.isl}, OSL {a.osl}, NUM_PROMPTS = CONC x "
          f"{a.prompts_per_conc}; our clients from {a.project}; files in {work}\n"
          f"# load average at start: {load_avg()}", flush=True)
    t_start = time.monotonic()
    with calibration_server(a) as a.base_url:
        for rnd in range(a.rounds):
            order = clients[rnd % len(clients):] + clients[:rnd % len(clients)]
            print(f"# round {rnd + 1}: {', '.join(c.name for c in order)}", flush=True)
            for conc in concs:
                for i, c in enumerate(order):
                    run = one_run(a, c, conc, work, f"r{rnd + 1}-c{conc}-{i}")
                    rows[(c.name, conc)].runs.append(run)
                    print(f"#   {c.name} CONC {conc}: error {run.err_ms:+.2f} ms, {run.wall_s:.1f} s", flush=True)
            print(f"# load average after round {rnd + 1}: {load_avg()}", flush=True)
    print(f"\n# {a.rounds} rounds in {time.monotonic() - t_start:.0f} s; load average at the end: {load_avg()}\n")
    table(list(rows.values()))
    print()
    ok = verdicts(list(rows.values()))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
