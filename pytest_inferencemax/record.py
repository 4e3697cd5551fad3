"""The result record of one point: the reference client's JSON keys plus the bounty's fields.

Written atomically (temp file in the same folder, fsync, rename) so a crash or Ctrl-C never
leaves a half-written result, and a finished point is on disk before the next one starts.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import __version__
from .loadgen import LoadResult, RequestResult

SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
SECRET_FLAGS = ("--api-key", "--hf-token", "--token")
REDACTED = "***"

# The keys every point's JSON holds (docs/metrics.md documents each one).
REFERENCE_KEYS = (
    "date", "backend", "model_id", "tokenizer_id", "best_of", "num_prompts", "request_rate", "burstiness",
    "max_concurrency", "duration", "completed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput:", "output_throughput", "total_token_throughput",
)
BOUNTY_KEYS = ("benchmark_args", "tput_per_gpu", "interactivity")


def redact_env(env: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: (REDACTED if SECRET_NAME.search(k) else v) for k, v in env}


def redact_argv(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def error_summary(results: Sequence[RequestResult], limit: int = 10) -> dict[str, int]:
    """Failed requests grouped by error text (first line, shortened)."""
    counts = Counter((r.error.splitlines()[0][:200] if r.error else "unknown error") for r in results if not r.success)
    return dict(counts.most_common(limit))


def build_record(
    *,
    point_id: str,
    load: LoadResult,
    metrics: dict[str, Any],
    run_args: dict[str, Any],
    context: dict[str, Any],
    save_detailed: bool = False,
) -> dict[str, Any]:
    """One point's result JSON: reference keys first, then the bounty's, then ours under ``inferencemax``."""
    rec: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
        "backend": run_args["backend"],
        "model_id": run_args["model"],
        "tokenizer_id": run_args["tokenizer"],
        "best_of": 1,
        "num_prompts": run_args["num_prompts"],
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": run_args["max_concurrency"],
    }
    rec.update({k: v for k, v in metrics.items() if k not in ("tput_per_gpu", "interactivity", "tput_per_gpu_divisor",
                                                               "failed", "output_tokens_from_usage",
                                                               "output_tokens_retokenized", "token_itl_counts_from")})
    rec["benchmark_args"] = {k: run_args[k] for k in (
        "model", "backend", "base_url", "dataset_name", "random_input_len", "random_output_len",
        "random_range_ratio", "num_prompts", "max_concurrency", "request_rate", "num_warmups", "seed")}
    rec["tput_per_gpu"] = metrics["tput_per_gpu"]
    rec["interactivity"] = metrics["interactivity"]
    ok = [r for r in load.results if r.success]
    requested = sum(r.output_len_requested for r in ok)
    rec["inferencemax"] = {
        "point": point_id,
        "version": __version__,
        "started_at": load.started_at,
        "tput_per_gpu_divisor": metrics["tput_per_gpu_divisor"],
        "failed": metrics["failed"],
        "errors": error_summary(load.results),
        "warmups": load.warmups,
        "warmup_failures": load.warmup_failures,
        "output_tokens_from_usage": metrics["output_tokens_from_usage"],
        "output_tokens_retokenized": metrics["output_tokens_retokenized"],
        "token_itl_counts_from": metrics.get("token_itl_counts_from"),
        "output_tokens_requested": requested,
        "output_token_mismatches": sum(
            1 for r in ok if r.output_tokens is not None and r.output_tokens != r.output_len_requested),
        **context,
    }
    if save_detailed:
        rec["input_lens"] = [r.prompt_len for r in load.results]
        rec["output_lens"] = [r.output_tokens for r in load.results]
        rec["ttfts"] = [r.ttft for r in load.results]
        rec["itls"] = [list(r.itl) for r in load.results]  # gaps between events, as the reference
        rec["e2els"] = [r.latency for r in load.results]
        rec["errors"] = [r.error for r in load.results]
    return rec


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def accuracy_fields(gate: Any, skipped_why: str | None) -> dict[str, Any]:
    """The bounty's ``accuracy`` and ``accuracy_validation`` fields, with the limits really enforced.

    ``gate`` is the server's :class:`~pytest_inferencemax.accuracy.GateResult` (a point only runs
    after its gate passed); ``skipped_why`` says why there is none.
    """
    if gate is None:
        return {"accuracy": None, "accuracy_validation": {"status": "SKIPPED", "reason": skipped_why}}
    spec = gate.spec
    validation: dict[str, Any] = {
        "status": "PASSED" if gate.passed else "FAILED", "task": spec.task, "rule": spec.rule.value,
        "limits": {v.metric: {"op": v.op, "limit": v.limit, "margin": v.margin} for v in gate.verdicts},
        "lm_eval_version": gate.lm_eval_version, "dataset": gate.dataset, "dataset_sha256": gate.dataset_sha256,
        "provenance": spec.provenance,
    }
    if spec.rule.value == "max_ratio":
        accuracy = {v.metric: v.value for v in gate.verdicts}
        validation.update(baselines=dict(spec.baselines), threshold_multiplier=spec.threshold_multiplier)
    else:
        accuracy = {f"{spec.task}_metric": gate.verdicts[0].value, "task": spec.task}
        validation.update(minimum_accepted=spec.minimum, metric=spec.metric, num_fewshot=spec.num_fewshot)
    return {"accuracy": accuracy, "accuracy_validation": validation}


def record_warnings(record: dict[str, Any]) -> list[str]:
    """What the summary and the terminal warn about for one point's record."""
    ours = record.get("inferencemax", {})
    out = []
    if (ours.get("client") or {}).get("client_bound"):
        out.append("client-bound: " + ours["client"]["why"])
    out += [f"token counts: {f}" for f in (ours.get("token_check") or {}).get("flagged", [])]
    if (ours.get("prefix_cache") or {}).get("warning"):
        out.append("prefix cache: " + ours["prefix_cache"]["warning"])
    return out


# The figures a CI's test view shows for each point (pytest --junitxml writes them as <property>).
JUNIT_FIGURES = ("completed", "num_prompts", "max_concurrency", "output_throughput", "total_token_throughput",
                 "tput_per_gpu", "interactivity", "median_ttft_ms", "median_tpot_ms", "median_itl_ms",
                 "median_e2el_ms", "p99_e2el_ms")


def junit_properties(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """A point's key figures, its baseline ratios, accuracy status and self-check flags, as
    (name, value) pairs for the JUnit XML of the CI's test view."""
    ours = record.get("inferencemax", {})
    props: list[tuple[str, Any]] = [(k, record[k]) for k in JUNIT_FIGURES if record.get(k) is not None]
    props += [(k, v) for k, v in record.items() if "_ratio_vs_" in k and v is not None]
    props.append(("accuracy", (record.get("accuracy_validation") or {}).get("status", "unknown")))
    props.append(("failed_requests", ours.get("failed", 0)))
    props.append(("client_bound", bool((ours.get("client") or {}).get("client_bound"))))
    props += [("warning", w) for w in record_warnings(record)]
    return props
