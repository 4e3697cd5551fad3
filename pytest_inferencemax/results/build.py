"""From a measurement to a record: the one place a :class:`PointRecord` is built, pure (typed inputs in, a
record out; nothing read, written or printed). ``results/point_pipeline.py`` runs measure -> build -> write.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any, Sequence

from pytest_inferencemax import __version__
from pytest_inferencemax.measure.loadtypes import RequestResult
from pytest_inferencemax.measure.runner import Measurement
from pytest_inferencemax.measure.checks import ClientVersionRecord
from pytest_inferencemax.results.record import (
    AccuracyStatus, AccuracyValidation, BenchmarkArgs, OurFields, PointRecord,
)


def error_line(error: str) -> str:
    """An error in one line: its first, or the last of a Python traceback (the reference client's errors)."""
    lines = [line for line in error.splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    return (lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0])[:200]


def error_summary(results: Sequence[RequestResult], limit: int = 10) -> dict[str, int]:
    """Failed requests grouped by error text (one line, shortened)."""
    counts = Counter(error_line(r.error) for r in results if not r.success)
    return dict(counts.most_common(limit))


def build_record(m: Measurement, *, served_model: str, tokenizer_id: str, backend: str, base_url: str,
                 seed: int, save_detailed: bool = False, stage_fields: dict[str, Any] | None = None) -> PointRecord:
    """The record of measurement ``m``: reference keys first, the bounty's, then ours.

    ``stage_fields``: what a suite's stage adds under ``inferencemax`` (server, leaderboard_url,
    payload_layout, baseline, baseline_key, verdict_rule); absent for ``cli.bench``."""
    point, load, figs = m.point, m.load, m.figures
    now = datetime.now().astimezone()  # "date" is local time, as the bounty client writes it; UTC is ours
    ok = [r for r in load.results if r.success]
    ours = OurFields(
        point=point.id, version=__version__, started_at=load.started_at,
        tput_per_gpu_divisor=figs.tput_per_gpu_divisor, failed=figs.failed,
        errors=error_summary(load.results), warmups=load.warmups, warmup_failures=load.warmup_failures,
        warmup_errors=dict(Counter(error_line(e) for e in load.warmup_errors).most_common(10)),
        output_tokens_from_usage=figs.output_tokens_from_usage, output_tokens_retokenized=figs.output_tokens_retokenized,
        total_output_tokens_counted=figs.total_output_tokens_counted, token_itl_counts_from=dict(figs.token_itl_counts_from),
        output_tokens_requested=sum(r.output_len_requested for r in ok),
        output_token_mismatches=sum(1 for r in ok if r.output_tokens is not None
                                    and r.output_tokens != r.output_len_requested),
        suite=point.suite, stage=point.stage, isl=point.isl, osl=point.osl, conc=point.conc, tp=point.tp,
        request_timeout_s=m.request_timeout, num_prompts_overridden=point.num_prompts_overridden,
        prompt_length_mismatches=m.workload.length_mismatches,
        client=m.client_check, prefix_cache=m.prefix_cache, token_check=m.token_check, stream=m.stream,
        client_version=ClientVersionRecord(**point.client.model_dump()),
        **({"initial_request": m.initial_request} if m.initial_request else {}),
        **({"goodput": m.goodput} if m.goodput else {}),
        date_utc=now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S"),
        **({"aborted": m.aborted} if m.aborted else {}), **(stage_fields or {}),
    )
    detailed: dict[str, Any] = {}
    if save_detailed:
        detailed = {"input_lens": [r.prompt_len for r in load.results],
                    "output_lens": m.output_lens,  # the bounty client's counts (0 for a failed request)
                    "ttfts": [r.ttft for r in load.results],
                    "itls": [list(r.itl) for r in load.results],  # gaps between events, as the reference
                    "e2els": [r.latency for r in load.results],
                    "errors": [r.error for r in load.results]}
    record = PointRecord.model_validate({
        "date": now.strftime("%Y%m%d-%H%M%S"), "backend": backend, "model_id": served_model,
        "tokenizer_id": tokenizer_id, "best_of": 1, "num_prompts": point.num_prompts, "request_rate": "inf",
        "burstiness": 1.0, "max_concurrency": point.conc, **figs.reference,
        "benchmark_args": BenchmarkArgs(
            model=served_model, backend=backend, base_url=base_url, dataset_name="random",
            random_input_len=point.isl, random_output_len=point.osl, random_range_ratio=point.range_ratio,
            num_prompts=point.num_prompts, max_concurrency=point.conc, request_rate="inf",
            num_warmups=point.num_warmups, seed=seed),
        "tput_per_gpu": figs.tput_per_gpu, "interactivity": figs.interactivity,
        "inferencemax": ours, **detailed,
    })
    record.ours.failed_share = record.failed_share
    record.ours.benchmark_outcome = record.inferencex_outcome()
    return record


def accuracy_fields(gate: Any, skipped_why: str | None) -> tuple[dict[str, Any] | None, AccuracyValidation]:
    """The bounty's ``accuracy`` and ``accuracy_validation``, with the limits really enforced.

    ``gate`` is the server's :class:`~pytest_inferencemax.gate.accuracy.GateResult` (a point only
    runs after its gate passed); ``skipped_why`` says why there is none."""
    if gate is None:
        return None, AccuracyValidation(status=AccuracyStatus.SKIPPED, reason=skipped_why)
    spec = gate.spec
    validation: dict[str, Any] = {
        "status": AccuracyStatus.PASSED if gate.passed else AccuracyStatus.FAILED, "task": spec.task, "rule": spec.rule.value,
        "limits": {v.metric: {"op": v.op, "limit": v.limit, "margin": v.margin} for v in gate.verdicts},
        "lm_eval_version": gate.lm_eval_version, "dataset": gate.dataset, "dataset_sha256": gate.dataset_sha256,
        "chunk_tokenizer": getattr(gate, "chunk_tokenizer", None), "provenance": spec.provenance,
    }
    if (identity := getattr(gate, "identity", None)) is not None:  # gate/task_identity.py
        validation.update(task_bytes_per_word=identity.task_bytes_per_word,
                          baseline_bytes_per_word=identity.baseline_bytes_per_word)
    if spec.rule.value == "max_ratio":
        accuracy = {v.metric: v.value for v in gate.verdicts}
        validation.update(baselines=dict(spec.baselines), threshold_multiplier=spec.threshold_multiplier)
    else:
        accuracy = {f"{spec.task}_metric": gate.verdicts[0].value, "task": spec.task}
        validation.update(minimum_accepted=spec.minimum, metric=spec.metric, num_fewshot=spec.num_fewshot)
    return accuracy, AccuracyValidation(**validation)
