"""From a measurement to a record on disk: the one place a :class:`PointRecord` is built.

:func:`record_point` measures a point (``measure/runner.py``), builds its record, lets the caller
add what the run knows beyond the measurement (the stage, baseline comparison, accuracy, hook
fields), writes it to the run's folder and says on the terminal what the point gave. The
pytest fixture and ``cli.bench`` both call it, so both write the same record.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from pytest_inferencemax import __version__
from pytest_inferencemax.measure.loadtypes import LoadResult, RequestResult
from pytest_inferencemax.measure.runner import (
    InitialRequestFailed, Measurement, PointAborted, RunSettings, measure_point,
)
from pytest_inferencemax.measure.workload import Workload
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.measure.checks import ClientVersionRecord
from pytest_inferencemax.results.record import (
    AccuracyStatus, AccuracyValidation, BenchmarkArgs, OurFields, PointRecord,
)
from pytest_inferencemax.results.store import RecordNotSaved, RunFolder, save_or_keep
from pytest_inferencemax.results.telemetry import series_lines, summarize


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
    return PointRecord.model_validate({
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


@dataclass(repr=False)
class PointOutcome:
    """A finished point: its record, where it lies, and the raw results it came from (its repr is one short
    line: pytest prints it in a failed assertion, and the raw results hold every prompt)."""

    point: Point
    record: PointRecord
    path: Path
    load: LoadResult
    workload: Workload

    @property
    def failed(self) -> int:
        """Failed requests (over every round, for a point run with --repeat)."""
        rounds = self.record.ours.rounds
        return sum(rounds.failed) if rounds else self.record.failed

    @property
    def invalid(self) -> list[str]:
        return self.record.invalid

    def __repr__(self) -> str:
        return f"PointOutcome({self.point.id}: {self.record.completed}/{self.record.num_prompts} ok, {self.path})"

    def failure_cause(self) -> str:
        """Why requests failed, in one line: how many, their errors by count, and the warmups' errors."""
        rec, rounds = self.record, self.record.ours.rounds
        of = f"{rounds.n} x {self.point.num_prompts}" if rounds else str(self.point.num_prompts)
        head = "no request succeeded" if not rec.completed and not rounds else f"{self.failed} of {of} requests failed"
        errors = "; ".join(f"{n} x {text}" for text, n in rec.ours.errors.items())
        warm = rec.ours.warmup_errors
        warmups = (f"; warmups: {rec.ours.warmup_failures} of {rec.ours.warmups} failed: "
                   + "; ".join(f"{n} x {text}" for text, n in warm.items())) if warm else ""
        return f"{head}: {errors or 'no error text'}{warmups}"

    def failure_report(self) -> str:
        """The failed requests' cause and the record's path (two lines)."""
        return f"{self.point.id}: {self.failure_cause()}\nrecord: {self.path}"


def point_line(record: PointRecord, duration: float) -> str:
    """What a finished point gave, in one line (figures of no successful request are n/a)."""
    if not record.completed:
        return f"0/{record.num_prompts} ok in {duration:.1f} s: no request succeeded, no figures"
    return (f"{record.completed}/{record.num_prompts} ok in {duration:.1f} s, {record.output_throughput:.1f} out "
            f"tok/s, {record.tput_per_gpu:.1f} tok/s/GPU (/{record.ours.tput_per_gpu_divisor}), median TTFT "
            f"{record.median_ttft_ms:.0f} ms, median E2E {record.median_e2el_ms:.0f} ms")


def record_point(point: Point, *, base_url: str, served_model: str, tokenizer: Any, tokenizer_id: str,
                 backend: str, settings: RunSettings, progress: Progress, folder: RunFolder | None = None,
                 out_path: Path | None = None, stage_fields: dict[str, Any] | None = None,
                 complete: Callable[[PointRecord], PointRecord] | None = None,
                 abort_check: Callable[[], str | None] | None = None,
                 server_log: Path | None = None) -> PointOutcome:
    """Measure ``point``, build its record, let ``complete`` add to it (it returns the record to write),
    and write it (to ``out_path``, else to ``folder``'s ``<point>.json``) before returning."""
    if out_path is None and folder is None:
        raise ValueError("record_point needs a folder or an out_path")
    target = out_path if out_path is not None else folder.point_file(point.id)
    run_dir = folder.path if folder is not None else None
    m = measure_point(point, base_url=base_url, served_model=served_model, tokenizer=tokenizer, settings=settings,
                      progress=progress, abort_check=abort_check, server_log=server_log)
    record = build_record(m, served_model=served_model, tokenizer_id=tokenizer_id, backend=backend,
                          base_url=base_url, seed=settings.seed, save_detailed=settings.save_detailed,
                          stage_fields=stage_fields)
    refused: list[str] = []  # the disk said no: each file goes to the keep folder instead, and the point fails
    if m.telemetry is not None:  # the time series beside the record, its summary in it
        series = save_or_keep(target.with_name(target.stem + ".telemetry.jsonl"),
                              series_lines(m.telemetry, m.load.t0), run_dir)
        refused += [series.refused] if series.refused else []
        record.ours.telemetry = summarize(m.telemetry, m.load.t0, m.load.duration, record.total_output_tokens)
        record.ours.telemetry.series = series.path.name if series.path else None
    if complete is not None:
        record = complete(record)
    saved = save_or_keep(target, record.to_json(), run_dir)
    refused += [saved.refused] if saved.refused else []
    path = saved.path or target
    progress.line(f"inferencemax: {point.id}: {point_line(record, m.load.duration)} -> {path}")
    if refused:  # measured, and kept: the point fails with where its record went
        also = [f"cut short: {m.aborted}"] if m.aborted else []
        also += [f"{record.failed} of {point.num_prompts} requests failed"] if record.failed else []
        also += [f"invalid: {why}" for why in record.invalid]
        raise RecordNotSaved(f"measured, but its record could not be saved: {'; '.join(refused)}; "
                             f"{saved.where()}" + "".join(f"; also {a}" for a in also), saved.path)
    if m.aborted:  # on disk with what it got to; the point fails with the cause
        failed = InitialRequestFailed if m.initial_request_failed else PointAborted
        raise failed(m.aborted_report, record_path=path)
    for warning in record.warnings():
        progress.line(f"inferencemax: {point.id}: WARNING: {warning}")
    outcome = PointOutcome(point, record, path, m.load, m.workload)
    for why in outcome.invalid:
        progress.line(f"inferencemax: {point.id}: INVALID: {why}")
    return outcome
