"""One point, start to end, as the plugin and every command run it: measure (``measure/runner.py``) -> build
(``results/build.py``, pure) -> write (through :class:`RunFolder` only), then a line on the terminal and, when
the point did not finish cleanly, the exception that says why."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pytest_inferencemax.measure.loadtypes import LoadResult
from pytest_inferencemax.measure.runner import InitialRequestFailed, PointAborted, RunSettings, measure_point
from pytest_inferencemax.measure.workload import Workload
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.results.build import build_record
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import RecordNotSaved, RunFolder
from pytest_inferencemax.results.telemetry import series_lines, summarize


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
    counted = record.counted_output_throughput
    ours = f" ({counted:.1f} counted)" if counted is not None else ""
    return (f"{record.completed}/{record.num_prompts} ok in {duration:.1f} s, {record.output_throughput:.1f}{ours} out "
            f"tok/s, {record.tput_per_gpu:.1f} tok/s/GPU (/{record.ours.tput_per_gpu_divisor}), median TTFT "
            f"{record.median_ttft_ms:.0f} ms, median E2E {record.median_e2el_ms:.0f} ms")


@dataclass(frozen=True)
class ServerTarget:
    """The server a point runs against, and what its record names."""

    base_url: str
    served_model: str  # the model name in each request
    tokenizer: Any  # the workload's tokenizer (measure/tokenizer.py)
    tokenizer_id: str
    backend: str = "vllm"  # the record's label


def run_point(point: Point, server: ServerTarget, settings: RunSettings, progress: Progress, folder: RunFolder, *,
              file: Path | None = None, stage_fields: dict[str, Any] | None = None,
              complete: Callable[[PointRecord], PointRecord] | None = None,
              abort_check: Callable[[], str | None] | None = None, server_log: Path | None = None) -> PointOutcome:
    """Measure ``point`` (``measure/runner.py``), build its record (``results/build.py``), let ``complete`` add
    what the run knows beyond the measurement (the stage's comparison, accuracy, hook fields; it returns the
    record to write), and write it through ``folder`` (to ``file`` in it, else ``<point>.json``) before
    returning; say on the terminal what the point gave. The plugin and ``cli.bench`` both run points here.

    Raises :class:`RecordNotSaved` (the disk refused: the record was kept elsewhere), :class:`PointAborted`
    (cut short; the record holds what finished)."""
    target = file if file is not None else folder.point_file(point.id)
    m = measure_point(point, base_url=server.base_url, served_model=server.served_model, tokenizer=server.tokenizer,
                      settings=settings, progress=progress, abort_check=abort_check, server_log=server_log)
    record = build_record(m, served_model=server.served_model, tokenizer_id=server.tokenizer_id,
                          backend=server.backend, base_url=server.base_url, seed=settings.seed,
                          save_detailed=settings.save_detailed, stage_fields=stage_fields)
    refused: list[str] = []  # the disk said no: each file goes to the keep folder instead, and the point fails
    if m.telemetry is not None:  # the time series beside the record, its summary in it
        series = folder.keep(target.with_name(target.stem + ".telemetry.jsonl"), series_lines(m.telemetry, m.load.t0))
        refused += [series.refused] if series.refused else []
        # energy per output token over the tokens really produced (ours, total_output_tokens_counted): the reference
        # count is 0 on an engine that sends usage only beside its choices (transformers serve)
        tokens = record.ours.total_output_tokens_counted
        record.ours.telemetry = summarize(m.telemetry, m.load.t0, m.load.duration,
                                          tokens if tokens is not None else record.total_output_tokens)
        record.ours.telemetry.series = series.path.name if series.path else None
    if complete is not None:
        record = complete(record)
    saved = folder.keep(target, record.to_json())
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
