"""One point against any OpenAI-compatible server, from the command line, without a suite.

    python -m pytest_inferencemax.cli.bench --base-url http://127.0.0.1:8000 --model NAME \\
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
from pytest_inferencemax.plan.values import (
    client_kind, conc_list, http_url, json_object, non_negative_float, non_negative_int, positive_float, positive_int,
)
from pytest_inferencemax.progress import StreamProgress
from pytest_inferencemax.results.build import PointOutcome, record_point
from pytest_inferencemax.results.store import RecordNotSaved, check_writable
from pytest_inferencemax.serve.server import ServerError, check_external


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.bench", description=__doc__.splitlines()[0])
    p.add_argument("--base-url", type=http_url, required=True, help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", required=True, help="model name the server serves (put in each request)")
    p.add_argument("--tokenizer", required=True, help="tokenizer path or id for the random workload")
    p.add_argument("--isl", type=positive_int, required=True, help="input tokens per request")
    p.add_argument("--osl", type=positive_int, required=True, help="output tokens per request")
    p.add_argument("--conc", type=conc_list, required=True, help="concurrency, or a list like 1,2,4 (one file each)")
    p.add_argument("--num-prompts", type=positive_int, help="requests (default: 10 x CONC)")
    p.add_argument("--client-version", choices=sorted(CLIENT_VERSIONS), default="ee86723",
                   help="the bounty client (kimbochen/bench_serving) to mirror: 499c0b1 (stage 1: one initial test "
                        "request, no warmups, prompts re-encoded once) or ee86723 (stage 2, the default: 2 x CONC "
                        "warmups, the 10-pass prompt builder)")
    p.add_argument("--num-warmups", type=non_negative_int,
                   help="warmup requests (default: the client version's, 0 or 2 x CONC)")
    p.add_argument("--range-ratio", type=float, default=1.0, help="lengths uniform in [int(L*r), L] (default: 1.0)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="workload seed (default: 0)")
    p.add_argument("--num-gpus", type=positive_int, default=1,
                   help="divisor of total token throughput for tput_per_gpu (default: 1; the bounty used 8)")
    p.add_argument("--request-timeout", type=positive_float, help="seconds per request (default: 300 + 0.5 x OSL)")
    p.add_argument("--extra-body", type=json_object, default={}, help="JSON object merged into each request")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var with the API key (default: %(default)s)")
    p.add_argument("--backend", default="vllm", help="backend label written to the JSON (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True,
                   help="result file; with several CONC values, '-c<CONC>' is added before the suffix")
    p.add_argument("--client-procs", type=positive_int, default=1,
                   help="client processes to spread the concurrency over (default: %(default)s)")
    p.add_argument("--client", type=client_kind, default="precise",
                   help="load generator: precise (default) or reference (the bounty client's semantics, aiohttp)")
    p.add_argument("--save-detailed", action="store_true", help="keep per-request arrays in the JSON")
    p.add_argument("--telemetry-interval", type=non_negative_float, default=1.0,
                   help="seconds between samples of /metrics and the GPUs (0: none; default: %(default)g)")
    p.add_argument("--server-ready-timeout", type=positive_float, default=60.0,
                   help="seconds to wait for the server to be ready (default: %(default)g)")
    p.add_argument("--fail-on-stream-errors", action="store_true",
                   help="exit 1 also when the server sent error events in its streams (ignored by the bounty "
                        "client; counted and warned about)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the result lines, and why a point is not ok (the reason for exit status 1)")
    return p


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
    args = parser().parse_args(argv)
    if not 0.0 <= args.range_ratio <= 1.0:
        parser().error(f"--range-ratio {args.range_ratio} must be within [0, 1]")
    progress = StreamProgress(sys.stderr, quiet=args.quiet)
    if why := check_writable(args.out.parent):  # before the server is asked anything
        print(f"error: --out {args.out}: cannot write there ({why}): choose a writable path", file=sys.stderr)
        return 2
    try:
        api_key, tokenizer = connect(args.base_url, args.model, args.tokenizer, args.api_key_env,
                                     args.server_ready_timeout)
    except (ServerError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = RunSettings(seed=args.seed, request_timeout=args.request_timeout, save_detailed=args.save_detailed,
                           extra_body=args.extra_body, api_key=api_key, client_procs=args.client_procs,
                           client=args.client, telemetry_interval=args.telemetry_interval)
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
            outcome = record_point(point, base_url=args.base_url, served_model=args.model, tokenizer=tokenizer,
                                   tokenizer_id=args.tokenizer, backend=args.backend, settings=settings,
                                   out_path=path, progress=progress)
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
