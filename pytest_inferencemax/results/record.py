"""The typed result record of one point: what ``<point>.json`` holds and what every reader gets.

One class, :class:`PointRecord`, is read and written by the run, the summary, the report, the
plots, the verdict, compare, merge and the leaderboard payload. Its JSON keeps the reference
client's key names and order (``request_goodput:`` with its colon included) so that files stay
byte-compatible with those written before the record was typed: :meth:`PointRecord.to_json` of
a record read by :meth:`PointRecord.from_json` gives back the same text.

Layout of the JSON, in order: the reference client's run header and figures; ``benchmark_args``;
the bounty's ``tput_per_gpu`` and ``interactivity``; ours under ``inferencemax``; the per-request
lists (``--save-detailed``); the baseline comparison (its group, named after the baseline, and
three ``*_ratio_vs_<prefix>_<tag>`` keys); ``baseline_note``; ``accuracy`` and
``accuracy_validation``; then fields added by ``pytest_inferencemax_record`` hooks. Optional
parts are left out, not written as null, when a run did not produce them (a record of
``cli.bench`` has no baseline, accuracy or server section). docs/metrics.md documents each key.

This module imports nothing from the measuring side: the leaderboard command reads records
without loading the load generator.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Union

from pydantic import Field, ValidationError

from pytest_inferencemax.errors import ResultsError, validation_problems
from pytest_inferencemax.plan.rules import INFERENCEMAX_MAX_FAILED, max_failed_share
from pytest_inferencemax.plan.values import Word
from pytest_inferencemax.measure.checks import (
    ClientCheck, ClientVersionRecord, GoodputCheck, InitialRequestCheck, StreamCheck,
)
from pytest_inferencemax.gate.at_load import AccuracyAtLoad
from pytest_inferencemax.measure.token_check import TokenCheck
from pytest_inferencemax.serve.prefix_cache import PrefixCacheCheck
from pytest_inferencemax.results.compare_record import CompareTo
from pytest_inferencemax.results.comparison import BaselineComparison, BaselineFigures  # noqa: F401  (part of a record)
from pytest_inferencemax.plan.part import Part
from pytest_inferencemax.results.rounds import RoundsSummary
from pytest_inferencemax.results.telemetry import TelemetrySummary

Number = Union[int, float]  # kept as written: 8 stays 8 and 8.0 stays 8.0 (byte-compatible files)

DETAILED_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "e2els", "errors")


class RecordError(ResultsError):
    """A file is not a point record, or a record lacks what a reader needs; the message names the file."""


_Part = Part  # the base of every part (plan/part.py)


class BenchmarkArgs(_Part):
    """The reference client's ``benchmark_args``: what it was asked to run."""

    model: str
    backend: str
    base_url: str
    dataset_name: str
    random_input_len: int
    random_output_len: int
    random_range_ratio: Number
    num_prompts: int
    max_concurrency: int
    request_rate: Union[str, Number]
    num_warmups: int
    seed: int


class ServerInfo(_Part):
    """The server a point ran against; how it was started when the run launched it (secrets redacted)."""

    base_url: str
    launched: bool
    engine: Optional[str] = None
    argv: Optional[list[str]] = None
    env: Optional[dict[str, str]] = None
    log: Optional[str] = None
    pid: Optional[int] = None
    recipe_key: Optional[str] = None


class OurFields(_Part):
    """The ``inferencemax`` section: ours, beside the reference keys (docs/metrics.md)."""

    point: str
    version: str
    started_at: Optional[str] = None
    tput_per_gpu_divisor: Number
    failed: int = 0
    failure_rule: Optional[str] = None  # the stage's: "any" (None: written before it was kept, so "any") or "max_rate:R"
    failed_share: Optional[Number] = None  # failed or missing requests / requests
    benchmark_outcome: Optional[str] = None  # InferenceX's: "failure" beyond 5 % failed, else "success"
    errors: dict[str, int] = Field(default_factory=dict)
    warmups: int = 0
    warmup_failures: int = 0
    warmup_errors: dict[str, int] = Field(default_factory=dict)  # failed warmups by error (one line each)
    output_tokens_from_usage: int = 0
    output_tokens_retokenized: int = 0
    total_output_tokens_counted: Optional[int] = None  # ours: usage from any event, else re-tokenized text
    token_itl_counts_from: Optional[dict[str, int]] = None
    output_tokens_requested: int = 0
    output_token_mismatches: int = 0
    suite: str
    stage: str
    isl: int
    osl: int
    conc: int
    tp: int = 1
    request_timeout_s: Optional[Number] = None
    num_prompts_overridden: bool = False
    prompt_length_mismatches: int = 0
    client: Optional[ClientCheck] = None
    prefix_cache: Optional[PrefixCacheCheck] = None
    token_check: Optional[TokenCheck] = None
    stream: Optional[StreamCheck] = None  # absent from records written before it was counted
    goodput: Optional[GoodputCheck] = None  # --goodput: the SLOs and the requests within them
    accuracy_at_load: Optional[AccuracyAtLoad] = None  # --accuracy-at: the stage's task at this point's CONC
    # an engine asked for exact output lengths otherwise than with vLLM's ignore_eos (serve/engines.py); {}: it cannot
    ignore_eos_fields: Optional[dict[str, Any]] = None
    client_version: Optional[ClientVersionRecord] = None  # absent from records written before it was kept
    initial_request: Optional[InitialRequestCheck] = None  # present when the stage's client sends one
    date_utc: Optional[str] = None  # when the file was written, UTC (``date`` is local time, as the reference's)
    telemetry: Optional[TelemetrySummary] = None  # the server's and the GPUs' view (results/telemetry.py)
    aborted: Optional[str] = None  # why the point was cut short (a stall, the server's death); absent if it was not
    rounds: Optional[RoundsSummary] = None  # --repeat: every round's figures and their intervals (results/rounds.py)
    # what a suite's stage adds (absent from records of `cli.bench`)
    server: Optional[ServerInfo] = None
    leaderboard_url: Optional[str] = None
    payload_layout: Optional[str] = None
    baseline: Optional[str] = None
    baseline_key: Optional[str] = None
    verdict_rule: Optional[dict[str, Any]] = None
    variant: Optional[str] = None  # the recipe variant it ran on (docs/variants.md); absent without variants
    variant_changes: Optional[dict[str, Any]] = None  # what the variant changed in the suite's recipe
    reused_from: Optional[str] = None  # measured by an earlier run (same recipe hash and workload): its file
    compare_to: Optional[CompareTo] = None  # --compare-to: against the same point of an earlier run (compare_record.py)


class AccuracyStatus(Word):
    """The gate's outcome, as the bounty's ``accuracy_validation.status`` writes it."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # --skip-accuracy, or a stage without a gate
    UNKNOWN = "unknown"  # a record without accuracy_validation (not written by a gated run)


class PointStatus(Word):
    """Whether a point's figures may be read as a result (PointRecord.status)."""

    OK = "ok"
    PARTIAL = "partial"  # requests failed, or another round than the one on top was not clean
    INVALID = "invalid"  # another workload than the point names (its token counts)
    ABORTED = "aborted"  # cut short: figures of the requests that finished


class AccuracyValidation(_Part):
    """The bounty's ``accuracy_validation``: the gate's status and the limits really enforced."""

    status: AccuracyStatus
    reason: Optional[str] = None
    task: Optional[str] = None
    rule: Optional[str] = None
    limits: Optional[dict[str, Any]] = None
    lm_eval_version: Optional[str] = None
    dataset: Optional[str] = None
    dataset_sha256: Optional[str] = None
    chunk_tokenizer: Optional[str] = None  # the bounty's stage-1 task: the tokenizer that cut and counted it
    task_bytes_per_word: Optional[Number] = None  # the task identity: its documents' bytes / words ...
    baseline_bytes_per_word: Optional[Number] = None  # ... and log2(word_perplexity) / bits_per_byte of the baseline
    provenance: Optional[str] = None
    baselines: Optional[dict[str, Any]] = None
    threshold_multiplier: Optional[Number] = None
    minimum_accepted: Optional[Number] = None
    metric: Optional[str] = None
    num_fewshot: Optional[int] = None


class PointRecord(_Part):
    """One point's result, as written to ``<point>.json``."""

    date: str
    backend: str
    model_id: str
    tokenizer_id: str
    best_of: int = 1
    num_prompts: int
    request_rate: Union[str, Number] = "inf"
    burstiness: Number = 1.0
    max_concurrency: int
    duration: Number
    completed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: Number
    request_goodput: Optional[Number] = Field(None, alias="request_goodput:")
    output_throughput: Number
    total_token_throughput: Number
    mean_ttft_ms: Number
    median_ttft_ms: Number
    std_ttft_ms: Number
    p99_ttft_ms: Number
    mean_tpot_ms: Number
    median_tpot_ms: Number
    std_tpot_ms: Number
    p99_tpot_ms: Number
    mean_itl_ms: Number
    median_itl_ms: Number
    std_itl_ms: Number
    p99_itl_ms: Number
    mean_token_itl_ms: Optional[Number] = None
    median_token_itl_ms: Optional[Number] = None
    std_token_itl_ms: Optional[Number] = None
    p99_token_itl_ms: Optional[Number] = None
    mean_e2el_ms: Number
    median_e2el_ms: Number
    std_e2el_ms: Number
    p99_e2el_ms: Number
    benchmark_args: BenchmarkArgs
    tput_per_gpu: Number
    interactivity: Number
    ours: OurFields = Field(alias="inferencemax")
    input_lens: Optional[list[int]] = None
    output_lens: Optional[list[Optional[int]]] = None
    ttfts: Optional[list[Optional[Number]]] = None
    itls: Optional[list[list[Number]]] = None
    e2els: Optional[list[Optional[Number]]] = None
    errors: Optional[list[Optional[str]]] = None
    comparison: Optional[BaselineComparison] = Field(None, exclude=True)
    baseline_note: Optional[str] = None
    accuracy: Optional[dict[str, Any]] = None
    accuracy_validation: Optional[AccuracyValidation] = None

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "record") -> PointRecord:
        """A record from its JSON object; :class:`RecordError` names ``source`` and the bad field."""
        if not isinstance(data, dict) or not isinstance(data.get("inferencemax"), dict):
            raise RecordError(f"{source}: not a point record (no 'inferencemax' object)")
        data = dict(data)
        try:
            comparison = BaselineComparison.pop_from(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"{source}: baseline comparison unreadable: {exc}") from None
        try:
            record = cls.model_validate(data)
        except ValidationError as exc:
            problems = validation_problems(exc, 5, brackets=False)
            raise RecordError(f"{source}: not a valid point record ({problems}); was it written by "
                              "pytest-inferencemax? Re-run the point or remove the file") from None
        if comparison is not None:
            record.comparison = comparison
        return record

    @classmethod
    def from_json(cls, text: str, source: str = "record") -> PointRecord:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{source}: not JSON ({exc}); the file is damaged: re-run the point") from None
        return cls.from_dict(data, source)

    # -- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in the order of the reference client and of earlier files."""
        dumped = self.model_dump(by_alias=True, exclude_unset=True, mode="python")
        out: dict[str, Any] = {}
        inserted = self.comparison is None
        for key, value in dumped.items():
            if not inserted and key not in _BEFORE_COMPARISON:
                out.update(self.comparison.to_items())
                inserted = True
            out[key] = value
        if not inserted:
            out.update(self.comparison.to_items())
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str) + "\n"

    # -- what readers ask ------------------------------------------------------------------
    @property
    def point_id(self) -> str:
        return self.ours.point

    @property
    def failed(self) -> int:
        return self.ours.failed

    @property
    def counted_output_throughput(self) -> float | None:
        """Ours: output tokens/s by our count, where it differs from the reference keys' (a server whose usage
        only comes inside a chunk with choices, as transformers serve's: the bounty client counts 0); else None."""
        counted = self.ours.total_output_tokens_counted
        if counted is None or counted == self.total_output_tokens or not self.duration:
            return None
        return counted / self.duration

    @property
    def invalid(self) -> list[str]:
        """Why the point did not measure the workload it names (its token counts), if it did not."""
        return list(self.ours.token_check.failures) if self.ours.token_check else []

    @property
    def status(self) -> PointStatus:
        """``ok``; ``aborted`` (cut short: figures of the requests that finished), ``invalid`` (another
        workload than the point names) or ``partial`` (requests failed): figures not to be read as a result."""
        if self.ours.aborted:
            return PointStatus.ABORTED
        if self.invalid:
            return PointStatus.INVALID
        if self.ours.rounds and self.ours.rounds.not_ok:  # another round than the one on top was not clean
            return PointStatus.PARTIAL
        return PointStatus.PARTIAL if self.failures_count else PointStatus.OK

    @property
    def failed_share(self) -> float:
        """Failed (or missing) requests as a share of the point's requests."""
        missing = max(self.failed, self.num_prompts - self.completed)
        return missing / self.num_prompts if self.num_prompts else 0.0

    @property
    def failures_count(self) -> bool:
        """The failed requests make the point partial under its stage's ``failure_rule`` (``any``: one does; InferenceX's
        ``max_rate:0.05``: more than 5 % do)."""
        return self.failed_share > max_failed_share(self.ours.failure_rule)

    def inferencex_outcome(self) -> str:
        """InferenceX's verdict on the run, whatever this stage's rule: ``failure`` when more than 5 % of the
        requests failed, else ``success`` (docs/metrics.md)."""
        return "failure" if self.failed_share > INFERENCEMAX_MAX_FAILED else "success"

    @property
    def accuracy_status(self) -> AccuracyStatus:
        return AccuracyStatus(self.accuracy_validation.status) if self.accuracy_validation else AccuracyStatus.UNKNOWN

    @property
    def accuracy_failed_at_load(self) -> bool:
        """--accuracy-at: the stage's accuracy task failed (or could not run) at this point's own concurrency."""
        return bool(self.ours.accuracy_at_load and self.ours.accuracy_at_load.failed)

    @property
    def client_bound(self) -> bool:
        return bool(self.ours.client and self.ours.client.client_bound)

    def figure(self, name: str) -> Any:
        """A top-level figure by its JSON key (e.g. ``median_e2el_ms``, ``request_goodput:``); None if absent."""
        return self.to_dict().get(name) if name.endswith(":") else getattr(self, name, None)

    def warnings(self) -> list[str]:
        """What the summary and the terminal warn about for this point."""
        out = []
        if self.client_bound:
            out.append("client-bound: " + str(self.ours.client.why))
        if self.ours.token_check:
            out += [f"token counts: {f}" for f in self.ours.token_check.flagged]
        if self.ours.prefix_cache and self.ours.prefix_cache.warning:
            out.append("prefix cache: " + self.ours.prefix_cache.warning)
        if self.ours.stream and self.ours.stream.warning:
            out.append("stream: " + self.ours.stream.warning)
        if self.ours.compare_to and (regressed := self.ours.compare_to.warning()):
            out.append(regressed)  # a warning unless --compare-fail made it the point's failure
        return out

    @property
    def stream_errors(self) -> int:
        """Unreadable stream lines and error events the point's requests received (0 for records without them)."""
        return self.ours.stream.malformed_events + (self.ours.stream.error_events or 0) if self.ours.stream else 0

    def sort_key(self) -> tuple[str, str, int, int, int]:
        o = self.ours
        return o.suite, o.stage, o.isl, o.osl, o.conc


# Keys written before the baseline comparison; baseline_note, accuracy and hook fields come after it.
_BEFORE_COMPARISON = frozenset((f.alias or name) for name, f in PointRecord.model_fields.items()
                               if name not in ("comparison", "baseline_note", "accuracy", "accuracy_validation"))
