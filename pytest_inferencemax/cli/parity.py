"""Parity from the command line: one point run with both load generators, alternating, on one server.

    python -m pytest_inferencemax.cli.parity --server-url http://127.0.0.1:8000 --model NAME --tokenizer PATH \\
        --isl 128 --osl 64 --conc 4 --parity-rounds 3 --out parity/

What is run: ``measure/parity.py``; judged: ``judge/parity.py``; shown: ``publish/parity_report.py``. Exit 0 when parity holds, 1 when
a judged figure differs beyond the clients' spread (or the server died), 2 when the server cannot
be reached.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_inferencemax.cli.bench import connect
from pytest_inferencemax.judge.parity import judge, outcome_line
from pytest_inferencemax.measure.parity import ParityAborted, ParityRun, run_parity
from pytest_inferencemax.publish.parity_report import render, write_parity
from pytest_inferencemax.measure.workload import random_workload, token_counter
from pytest_inferencemax.plan.options import add_arguments, require
from pytest_inferencemax.plan.values import non_negative_int, positive_int
from pytest_inferencemax.results.store import RunFolder
from pytest_inferencemax.serve.server import ServerError

DESCRIPTION = "Parity: one point run with both load generators, alternating, against the same server."


SHARED = ("server-url", "model", "served-model-name", "tokenizer", "conc", "num-prompts", "seed", "api-key-env",
          "stall-timeout", "parity-rounds")  # pytest's options of the same name (plan/options.py)
REQUIRED = ("server-url", "model", "conc")
ALIASES = {"base-url": "server-url", "rounds": "parity-rounds"}  # this command's first spellings, still accepted


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.parity", description=DESCRIPTION)
    add_arguments(p, SHARED, required=REQUIRED, aliases=ALIASES)
    p.add_argument("--isl", type=positive_int, required=True, help="input tokens per request")
    p.add_argument("--osl", type=positive_int, required=True, help="output tokens per request")
    p.add_argument("--num-warmups", type=non_negative_int, help="warmups per run (default: 2 x CONC)")
    p.add_argument("--out", type=Path, default=Path("parity"), help="folder for parity.json and parity.md")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the verdict and what decided it (the figures that differed, by how much)")
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    require(p, args, REQUIRED)
    if len(args.conc) != 1:
        p.error(f"--conc {','.join(map(str, args.conc))}: parity runs one point; give one concurrency")
    args.conc = args.conc[0]
    args.served_model_name = args.served_model_name or args.model
    args.tokenizer = args.tokenizer or args.model
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        api_key, tokenizer = connect(args.server_url, args.served_model_name, args.tokenizer, args.api_key_env)
    except (ServerError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = args.num_prompts or 10 * args.conc
    workload = random_workload(tokenizer, input_len=args.isl, output_len=args.osl, num_prompts=n, seed=args.seed)
    point = f"isl{args.isl}-osl{args.osl}-c{args.conc}"

    def progress(run: ParityRun) -> None:
        if not args.quiet:
            print(f"parity {point}: round {run.round} {run.client}: {run.figures['output_throughput']:.1f} out tok/s, "
                  f"median TTFT {run.figures['median_ttft_ms']:.1f} ms, {run.failed} failed", file=sys.stderr)

    try:
        runs = run_parity(point, args.server_url, args.served_model_name, workload.requests, concurrency=args.conc,
                          num_warmups=2 * args.conc if args.num_warmups is None else args.num_warmups,
                          rounds=args.parity_rounds, api_key=api_key, on_run=progress, stall_timeout=args.stall_timeout,
                          count_tokens=token_counter(tokenizer))
    except ParityAborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = judge(point, runs)
    _, md = write_parity(RunFolder(args.out), report)
    print(render(report) if not args.quiet else f"parity {point}: {outcome_line(report)}")
    print(f"saved {md} and {md.with_suffix('.json')}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
