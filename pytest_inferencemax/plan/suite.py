"""Suite files: one declarative TOML per suite (model, server recipe, stages, workloads).

Parsed and validated with pydantic (unknown keys are errors, so a typo never silently falls
back to a default). See docs/suites.md for the format.
"""
from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (pyproject installs tomli there)
    import tomli as tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pytest_inferencemax.errors import ConfigError, validation_problems
from pytest_inferencemax.plan.rules import (
    BeatBaselineShare, GateSpec, NotApplicable, Targets, VerdictRule, max_failed_share,
)

SUITE_FILE = "suite.toml"


class SuiteError(ConfigError):
    """A suite file that cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Which points a recipe rule applies to (every given key must hold)."""

    isl: int | None = None
    osl: int | None = None
    conc: int | None = None
    conc_above: int | None = None
    conc_below: int | None = None

    def matches(self, isl: int, osl: int, conc: int) -> bool:
        return ((self.isl is None or self.isl == isl) and (self.osl is None or self.osl == osl)
                and (self.conc is None or self.conc == conc)
                and (self.conc_above is None or conc > self.conc_above)
                and (self.conc_below is None or conc < self.conc_below))


class Rule(_Strict):
    """Point-dependent recipe variables, e.g. the DeepSeek-R1 script's prefill size."""

    match: Match
    vars: dict[str, Union[str, int, float]]


class ServerSpec(_Strict):
    """How to launch the server. ``${name}`` placeholders are filled per point (docs/suites.md)."""

    argv: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # written verbatim into ${files_dir}
    vars: dict[str, Union[str, int, float]] = Field(default_factory=dict)
    when: tuple[Rule, ...] = ()
    health_path: str = "/health"
    host: str = "127.0.0.1"

    def merged(self, override: "ServerOverride | None") -> "ServerSpec":
        if override is None:
            return self
        data = self.model_dump()
        for key, value in override.model_dump(exclude_unset=True).items():
            if key in ("env_add", "args_add"):
                continue
            data[key] = value
        data["env"] = {**data["env"], **override.env_add}
        data["argv"] = tuple(data["argv"]) + tuple(override.args_add)
        return ServerSpec.model_validate(data)


class ServerOverride(_Strict):
    """A stage's changes to the suite's server: replace fields, or add env and arguments."""

    argv: tuple[str, ...] | None = None
    env: dict[str, str] | None = None
    files: dict[str, str] | None = None
    vars: dict[str, Union[str, int, float]] | None = None
    when: tuple[Rule, ...] | None = None
    env_add: dict[str, str] = Field(default_factory=dict)
    args_add: tuple[str, ...] = ()


class WorkloadSpec(_Strict):
    """One ISL/OSL pair and its concurrencies."""

    isl: int = Field(gt=0)
    osl: int = Field(gt=0)
    conc: tuple[int, ...]
    prompts_per_conc: int = Field(gt=0, description="NUM_PROMPTS = CONC x this")

    @field_validator("conc")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(c < 1 for c in v):
            raise ValueError("conc must be a non-empty list of positive integers")
        return v


# How each client commit builds its random prompts (measure/workload.py reproduces both)
PROMPT_BUILDERS = {"499c0b1": "one re-encode, truncated to the target, prompt_len = the target",
                   "ee86723": "up to 10 re-encodes, padded from the global np.random stream, prompt_len measured"}


class ClientVersion(_Strict):
    """Which bounty client (kimbochen/bench_serving) a stage's runner ran, as data: what it sends before
    the timed run and how it builds its prompts (docs/suites.md; each stage cloned the client's ``main``
    of its day). The default is ``ee86723``, the client's ``main`` since 2026-01-25 (stage 2)."""

    source: str = Field("kimbochen/bench_serving@ee86723", pattern=r"^[\w.-]+/[\w.-]+@[0-9a-f]{7,40}$")  # owner/repo@commit
    initial_test_request: bool = False  # 499c0b1: one untimed request of the first prompt, which must succeed
    warmups_per_conc: int = Field(2, ge=0)  # ee86723: --num-warmups = this x CONC copies of the first prompt
    prompt_builder: Literal["499c0b1", "ee86723"] = "ee86723"

    def before_timed(self, conc: int) -> str:
        """What goes before the timed run: ``1 initial test request, 0 warmups`` (499c0b1) or
        ``2×CONC warmups (64)`` (ee86723 at CONC 32)."""
        first = "1 initial test request, " if self.initial_test_request else ""
        n = self.warmups_per_conc
        return first + (f"{n}×CONC warmups ({n * conc})" if n else "0 warmups")

    @property
    def prompts(self) -> str:
        """``prompts as 499c0b1 (one re-encode, ...)``."""
        return f"prompts as {self.prompt_builder} ({PROMPT_BUILDERS[self.prompt_builder]})"


class Stage(_Strict):
    """One rule set of the bounty (points, gate, baseline, leaderboard)."""

    title: str = ""
    model: str | None = None  # replaces [suite].model for this stage
    workloads: tuple[WorkloadSpec, ...]
    range_ratio: float = Field(1.0, ge=0.0, le=1.0)
    client: ClientVersion = Field(default_factory=ClientVersion)
    tput_per_gpu_divisor: Union[Annotated[int, Field(gt=0)], Literal["tp"]] = "tp"
    baseline: str | None = None  # a file name under baselines/ (without .toml)
    baseline_key: str | None = None  # the model's key inside that file
    leaderboard_url: str | None = None  # may use ${isl} ${osl}
    payload_layout: Literal["s1", "s2"] | None = None  # the leaderboard's field order (docs/submission.md)
    verdict: VerdictRule | None = None  # the qualification rule (docs/verdict.md); none: not applicable
    accuracy: GateSpec | None = None  # the gate's task and thresholds (docs/accuracy.md); none: no gate
    failure_rule: str = "any"  # failed requests a point may have and count: "any" (none) or "max_rate:R"
    server: ServerOverride | None = None

    @field_validator("failure_rule")
    @classmethod
    def _failure_rule(cls, v: str) -> str:
        max_failed_share(v)  # raises with the two forms
        return v

    @field_validator("verdict", "accuracy", mode="before")
    @classmethod
    def _empty_table_is_none(cls, v: Any) -> Any:
        return None if v == {} else v

    @property
    def verdict_rule(self) -> BeatBaselineShare | Targets | NotApplicable:
        """The rule the stage's curves are judged by (``none`` when the stage declares none)."""
        return self.verdict or NotApplicable(rule="none")

    @property
    def verdict_table(self) -> dict[str, Any] | None:
        """The verdict table as written (what a record carries, read back by ``plan.rules.parse_rule``)."""
        return self.verdict.model_dump(exclude_unset=True) if self.verdict else None

    @model_validator(mode="before")
    @classmethod
    def _warmups_moved_into_client(cls, data: Any) -> Any:
        """``warmups_per_conc`` on the stage (suite files before [stages.X.client]) still loads, as the
        client table's ``warmups_per_conc``; given in both places it is an error."""
        if not isinstance(data, dict) or "warmups_per_conc" not in data:
            return data
        data = dict(data)
        warmups = data.pop("warmups_per_conc")
        client = data.get("client")
        if client is not None and not isinstance(client, dict):
            return {**data, "warmups_per_conc": warmups}  # pydantic names what is wrong
        if isinstance(client, dict) and "warmups_per_conc" in client:
            raise ValueError("warmups_per_conc is given both on the stage and in its client table: keep only "
                             "the client table's ([stages.<name>.client] warmups_per_conc)")
        data["client"] = {**(client or {}), "warmups_per_conc": warmups}
        return data

    @property
    def warmups_per_conc(self) -> int:
        return self.client.warmups_per_conc


class SuiteInfo(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.]+$")
    title: str = ""
    model: str
    served_model_name: str | None = None
    tokenizer: str | None = None
    engine: Literal["vllm", "sglang", "atom", "transformers", "other"]
    tp: int = Field(1, ge=1)
    default_stage: str
    prepare: str | None = None  # "module:function" called with the model path if it is missing


class Suite(_Strict):
    suite: SuiteInfo
    server: ServerSpec
    stages: dict[str, Stage]
    path: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _default_stage_exists(self) -> "Suite":
        if self.suite.default_stage not in self.stages:
            raise ValueError(f"[suite].default_stage {self.suite.default_stage!r} is not one of the stages "
                             f"{sorted(self.stages)}")
        return self

    @property
    def name(self) -> str:
        return self.suite.name

    @property
    def directory(self) -> Path:
        return self.path.parent

    def stage(self, name: str | None) -> tuple[str, Stage]:
        key = name or self.suite.default_stage
        if key not in self.stages:
            raise SuiteError(f"{self.path}: no stage {key!r}; choose one of {sorted(self.stages)} "
                             "with --stage")
        return key, self.stages[key]


def read_toml(path: Path, error: type[ConfigError], missing: str) -> dict:
    """A TOML file's table; ``error`` with ``missing`` (what to do) when it does not exist, and with the
    parser's line and column when it is not TOML (the suite, variants and baseline files share this)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: not found; {missing}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file; errors name the file, the key and what to change."""
    path = Path(path)
    if path.is_dir():
        path = path / SUITE_FILE
    raw = read_toml(path, SuiteError, f"suite file not found: each suite directory needs a {SUITE_FILE}")
    try:
        return Suite.model_validate({**raw, "path": path})
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise SuiteError(f"{path}: {problems}. Fix the file (format: docs/suites.md).") from None
