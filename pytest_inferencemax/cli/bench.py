"""One point against any OpenAI-compatible server, from the command line, without a suite.

    python -m pytest_inferencemax.cli.bench --server-url http://127.0.0.1:8000 --model NAME \\
        --tokenizer PATH --isl 1024 --osl 1024 --conc 4 --num-prompts 40 --out result.json

Writes the same JSON as a suite's point (docs/metrics.md) and prints its headline figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pytest_inferencemax.measure.runner import PointAborted, RunSettings
from pytest_inferencemax.measure.workload import load_tokenizer
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import ClientVersion
from pytest_inferencemax.plan.options import add_arguments, require
from pytest_inferencemax.plan.values import non_negative_int, positive_int
from pytest_inferencemax.progress import StreamProgress
from pytest_inferencemax.results.point_pipeline import PointOutcome, ServerTarget, run_point
from pytest_inferencemax.results.store import RecordNotSaved, RunFolder, check_writable
from pytest_inferencemax.serve.server import ServerError, check_external


SHARED = ("server-url", "model", "served-model-name", "tokenizer", "conc", "num-prompts", "num-gpus", "seed",
          "request-timeout", "stall-timeout", "extra-body", "api-key-env", "client-procs", "client",
          "client-lag-limit-ms", "save-detailed", "telemetry-interval", "server-ready-timeout",
          "fail-on-stream-errors", "goodput")  # pytest's options of the same name (plan/options.py): same help, same default
REQUIRED = ("server-url", "model", "conc")
ALIASES = {"base-url": "server-url"}  # this command's first spelling, still accepted


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.bench", description=__doc__.splitlines()[0])
    add_arguments(p, SHARED, required=REQUIRED, aliases=ALIASES)
    p.add_argument("--isl", type=positive_int, required=True, help="input tokens per request")
    p.add_argument("--osl", type=positive_int, required=True, help="output tokens per request")
    p.add_argument("--client-version", choices=sorted(CLIENT_VERSIONS), default="ee86723",
                   help="the bounty client (kimbochen/bench_serving) to mirror: 499c0b1 (stage 1: one initial test "
                        "request, no warmups, prompts re-encoded once) or ee86723 (stage 2, the default: 2 x CONC "
                        "warmups, the 10-pass prompt builder)")
    p.add_argument("--num-warmups", type=non_negative_int,
                   help="warmup requests (default: the client version's, 0 or 2 x CONC)")
    p.add_argument("--range-ratio", type=float, default=1.0, help="lengths uniform in [int(L*r), L] (default: 1.0)")
    p.add_argument("--backend", default="vllm", help="backend label written to the JSON (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True,
                   help="result file; with several CONC values, '-c<CONC>' is added before the suffix")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the result lines, and why a point is not ok (the reason for exit status 1)")
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, checked; a missing or contradictory one exits 2 naming it (argparse's way)."""
    p = parser()
    args = p.parse_args(argv)
    require(p, args, REQUIRED)
    if not 0.0 <= args.range_ratio <= 1.0:
        p.error(f"--range-ratio {args.range_ratio} must be within [0, 1]")
    args.served_model_name = args.served_model_name or args.model
    args.tokenizer = args.tokenizer or args.model
    args.num_gpus = args.num_gpus or 1
    args.extra_body = args.extra_body or {}
    return args


# As the suites' [stages.X.client] tables have them (suites/gptoss: s1, s2)
CLIENT_VERSIONS = {
    "499c0b1": ClientVersion(source="kimbochen/bench_serving@499c0b1", initial_test_request=True, warmups_per_conc=0,
                             prompt_builder="499c0b1"),
    "ee86723": ClientVersion(source="kimbochen/bench_serving@ee86723", initial_test_request=False, warmups_per_conc=2,
                             prompt_builder="ee86723"),
}


def out_path(base: Path, conc: int, several: bool) -> Path:
    return base.with_name(f"{base.stem}-c{conc}{base.suffix or '.json'}") if several else base


def not_ok(outcome: PointOutcome, fail_on_stream_errors: bool) -> list[str]:
    """Why a point makes the command exit 1, each reason in a line: failed requests and their errors, a workload
    other than the one asked (INVALID), stream errors with --fail-on-stream-errors."""
    rec = outcome.record
    reasons = [outcome.failure_cause()] if outcome.failed else []
    reasons += [f"INVALID: {why}" for why in outcome.invalid]
    if fail_on_stream_errors and rec.stream_errors:
        reasons.append(f"stream errors: {rec.ours.stream.warning if rec.ours.stream else rec.stream_errors}")
    return reasons


def connect(base_url: str, model: str, tokenizer_id: str, api_key_env: str,
            ready_timeout: float = 60.0) -> tuple[str | None, Any]:
    """The API key from ``api_key_env`` and the loaded tokenizer, once the server at ``base_url`` answers;
    raises ServerError or RuntimeError with a one-line reason (the command lines print it and exit 2)."""
    api_key = os.environ.get(api_key_env) or None
    check_external(base_url, model, api_key=api_key, ready_timeout=ready_timeout)
    return api_key, load_tokenizer(tokenizer_id)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    progress = StreamProgress(sys.stderr, quiet=args.quiet)
    if why := check_writable(args.out.parent):  # before the server is asked anything
        print(f"error: --out {args.out}: cannot write there ({why}): choose a writable path", file=sys.stderr)
        return 2
    try:
        api_key, tokenizer = connect(args.server_url, args.served_model_name, args.tokenizer, args.api_key_env,
                                     args.server_ready_timeout)
    except (ServerError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = RunSettings.from_options(args, api_key=api_key)
    server = ServerTarget(args.server_url, args.served_model_name, tokenizer, args.tokenizer, args.backend)
    failed = 0
    version = CLIENT_VERSIONS[args.client_version]
    for conc in args.conc:
        point = Point(suite="adhoc", stage="adhoc", isl=args.isl, osl=args.osl, conc=conc,
                      num_prompts=args.num_prompts or 10 * conc,
                      num_warmups=version.warmups_per_conc * conc if args.num_warmups is None else args.num_warmups,
                      range_ratio=args.range_ratio, tp=args.num_gpus, tput_per_gpu_divisor=args.num_gpus,
                      client=version)
        path = out_path(args.out, conc, len(args.conc) > 1)
        try:
            outcome = run_point(point, server, settings, progress, RunFolder(path.parent), file=path)
        except (PointAborted, RecordNotSaved) as exc:  # a record the disk refused was kept elsewhere: named
            print(f"error: {exc}", file=sys.stderr)
            return 1
        rec = outcome.record
        print(f"{point.id}: {rec.completed}/{point.num_prompts} ok, {rec.output_throughput:.1f} out tok/s, "
              f"{rec.total_token_throughput:.1f} total tok/s, median TTFT {rec.median_ttft_ms:.1f} ms, "
              f"median TPOT {rec.median_tpot_ms:.2f} ms, median E2E {rec.median_e2el_ms:.0f} ms -> {path}")
        reasons = not_ok(outcome, args.fail_on_stream_errors)
        for why in reasons:  # INVALID was said by the point's progress lines, unless -q silenced them
            if args.quiet or not why.startswith("INVALID: "):
                print(f"error: {point.id}: {why}", file=sys.stderr)
        failed += bool(reasons)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
