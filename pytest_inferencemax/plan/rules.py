"""The rule tables of a suite's stages as types, checked when the suite loads (``plan/suite.py``).

* :data:`VerdictRule`, a stage's ``[stages.<name>.verdict]``: does a curve qualify (judged in
  ``judge/verdict.py``; docs/verdict.md). A record carries its rule's table, read back by :func:`parse_rule`.
* :class:`GateSpec`, a stage's ``[stages.<name>.accuracy]``: the lm-eval task and the thresholds its gate
  applies (run in ``gate/accuracy.py``; docs/accuracy.md).

Pure schemas: nothing here runs, reads a file or imports a stage below ``plan``.
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from pytest_inferencemax.errors import AccuracyError, ConfigError, validation_problems

BOUNTY_S1 = "wikitext_tokens"  # the bounty's stage-1 gate task (gate/wikitext_task.py)
LOCAL_DATASET_TASKS = {"wikitext", BOUNTY_S1}  # tasks whose `dataset` may name a local copy
RUNNER_KEYS = {"model", "base_url", "tokenizer"}  # set by run_gate from the server and --tokenizer, not by suites
LEGACY_RULES = {"each metric <= baseline x threshold_multiplier": "max_ratio", "score >= minimum": "min_score"}
# min_score's default metric. lm-eval 0.4.x prints a task's rows sorted by "metric,filter", so the bounty's parser,
# taking the first gsm8k row, read "exact_match,flexible-extract" (it sorts before "exact_match,strict-match").
DEFAULT_METRIC = {"gsm8k": "exact_match,flexible-extract"}

class VerdictError(ConfigError):
    """A verdict rule that cannot be used; the message names where it was declared."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BeatBaselineShare(_Strict):
    rule: Literal["beat_baseline_share"]
    min_share: float = Field(0.5, gt=0, le=1)
    metric: Literal["tput_per_gpu", "interactivity", "median_e2e"] = "tput_per_gpu"
    amd_baseline: str | None = None  # a table under baselines/ holding AMD's existing points
    amd_baseline_key: str | None = None  # the model's key in it (default: the suite name)


class Targets(_Strict):
    rule: Literal["targets"]
    min_points: int = Field(1, ge=1)  # points that must meet all three targets


class NotApplicable(_Strict):
    rule: Literal["none"]
    reason: str = "this stage declares no verdict rule"


VerdictRule = Annotated[Union[BeatBaselineShare, Targets, NotApplicable], Field(discriminator="rule")]
_RULE = TypeAdapter(VerdictRule)


def parse_rule(data: Mapping[str, Any] | None, where: str = "verdict") -> BeatBaselineShare | Targets | NotApplicable:
    """A stage's verdict table as a rule; an empty or missing table is "not applicable"."""
    if not data:
        return NotApplicable(rule="none")
    try:
        return _RULE.validate_python(dict(data))
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise VerdictError(f"{where}: {problems}. Rules: beat_baseline_share, targets, none "
                           "(docs in pytest_inferencemax/judge/verdict.py).") from None


class GateRule(str, Enum):
    """How a gate judges: a ceiling per metric relative to a baseline, or a floor on one score."""
    MAX_RATIO = "max_ratio"  # every metric in baselines <= baseline x threshold_multiplier
    MIN_SCORE = "min_score"  # metric >= minimum


class GateSpec(BaseModel):
    """One stage's accuracy gate, as written in its ``accuracy`` table (unknown keys are errors)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    task: str = Field(min_length=1)  # "wikitext_tokens" (the bounty's stage 1), "wikitext", "gsm8k" or any lm-eval task
    rule: GateRule
    baselines: dict[str, float] = Field(default_factory=dict)
    threshold_multiplier: float | None = Field(None, gt=0)
    minimum: float | None = None
    metric: str | None = None  # an lm-eval results key, ",none" optional
    num_fewshot: int | None = Field(None, ge=0)
    model_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    limit: int | float | None = Field(None, gt=0)
    # a local copy of the task's dataset, or "builtin" / "builtin:N"; wikitext_tokens: wikitext-2-raw-v1's test
    # split (.parquet, .jsonl, .txt, a folder; default: the hub's); wikitext: a .jsonl of {"page": text} lines
    dataset: str | None = None
    chunk_tokenizer: str | None = None  # wikitext_tokens: a hub id or folder (default: meta-llama/Llama-2-7b-hf)
    provenance: str = ""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Map the first suite files' free-text rules to the enum; give min_score its task's default metric."""
        if isinstance(data, dict) and isinstance(data.get("rule"), str):
            data = {**data, "rule": LEGACY_RULES.get(data["rule"], data["rule"])}
            if data["rule"] == "min_score" and data.get("metric") is None and data.get("task") in DEFAULT_METRIC:
                data["metric"] = DEFAULT_METRIC[data["task"]]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> GateSpec:
        if bad := sorted(RUNNER_KEYS & set(self.model_args)):
            raise ValueError(f"model_args may not set {bad}: the runner sets them from the server it started")
        if self.rule is GateRule.MAX_RATIO:
            if not self.baselines or self.threshold_multiplier is None:
                raise ValueError("rule 'max_ratio' needs baselines = {metric = value, ...} and threshold_multiplier")
            if self.minimum is not None or self.metric is not None:
                raise ValueError("rule 'max_ratio' takes no minimum/metric (those belong to 'min_score')")
        elif self.minimum is None or self.metric is None:
            raise ValueError(f"rule 'min_score' needs minimum, and metric (an lm-eval results key such as 'acc' "
                             f"or 'exact_match,strict-match') unless the task has a default ({DEFAULT_METRIC})")
        elif self.baselines or self.threshold_multiplier is not None:
            raise ValueError("rule 'min_score' takes no baselines/threshold_multiplier")
        if self.dataset is not None and self.task not in LOCAL_DATASET_TASKS:
            raise ValueError(f"dataset (a local copy) is supported only for tasks {sorted(LOCAL_DATASET_TASKS)}")
        if self.chunk_tokenizer is not None and self.task != BOUNTY_S1:
            raise ValueError(f"chunk_tokenizer belongs to task {BOUNTY_S1!r} (the bounty's stage-1 wikitext)")
        return self

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "accuracy") -> GateSpec:
        """Validate a suite's ``accuracy`` table; AccuracyError names ``where`` and each key that is wrong.
        ``${...}`` in ``dataset``/``chunk_tokenizer`` and a relative ``dataset`` are the session's to fill
        (``gate.accuracy.resolve_spec``)."""
        try:
            return cls.model_validate(dict(table))
        except ValidationError as e:
            lines = [f"  {'.'.join(map(str, err['loc'])) or '(table)'}: {err['msg']}" for err in e.errors()]
            raise AccuracyError(f"[{where}] is not a valid accuracy gate:\n" + "\n".join(lines)) from None

    @property
    def dataset_is_path(self) -> bool:
        """``dataset`` names a file or folder (not ``builtin`` or ``builtin:N``, CPython-made documents)."""
        return bool(self.dataset) and self.dataset.partition(":")[0] != "builtin"


INFERENCEMAX_MAX_FAILED = 0.05  # InferenceX rejects a run whose client saw more than 5 % failed requests


def max_failed_share(rule: str | None) -> float:
    """The share of failed requests a stage's ``failure_rule`` lets a point have and still count: ``any`` (the
    bounty's, and the default: any failed request makes the point partial) is 0; ``max_rate:0.05`` (InferenceX's)
    is 0.05. ValueError names the rule and the two forms."""
    if rule in (None, "any"):
        return 0.0
    head, _, value = str(rule).partition(":")
    try:
        share = float(value) if head == "max_rate" else None
    except ValueError:
        share = None
    if share is None or not 0.0 <= share < 1.0:
        raise ValueError(f"failure_rule {rule!r}: write \"any\" (the bounty's: no failed request) or "
                         "\"max_rate:R\" with 0 <= R < 1 (InferenceX's: max_rate:0.05)")
    return share
