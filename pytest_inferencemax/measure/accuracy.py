"""The accuracy gate: lm-eval against the running server, judged against a stage's thresholds.

A stage's ``accuracy`` table becomes a :class:`GateSpec`; :func:`run_gate` runs lm-eval's Python API (no printed
table parsed). wikitext can read a local ``.jsonl`` (``dataset``) through our task ``wikitext_local``, or
``dataset = "builtin"``: documents built at run time from CPython's sources."""
from __future__ import annotations

import ast
import codecs
import hashlib
import importlib.resources
import importlib.util
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_inferencemax.errors import ConfigError
from pytest_inferencemax.serve import api

LEGACY_RULES = {"each metric <= baseline x threshold_multiplier": "max_ratio", "score >= minimum": "min_score"}
# min_score's default metric. lm-eval 0.4.x prints a task's rows sorted by "metric,filter", so the bounty's parser,
# taking the first gsm8k row, read "exact_match,flexible-extract" (it sorts before "exact_match,strict-match").
DEFAULT_METRIC = {"gsm8k": "exact_match,flexible-extract"}
HF_DATASETS = {"wikitext": ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1"),
               "gsm8k": ("openai/gsm8k", "main")}
LOGPROB_TASKS = {"wikitext"}  # loglikelihood tasks: the server must return prompt logprobs
RUNNER_KEYS = {"model", "base_url", "tokenizer"}  # set by run_gate from the server and --tokenizer, not by suites
BUILTIN_MODULES = ("argparse", "json", "re", "statistics", "configparser", "fileinput", "shelve", "wave", "timeit")


class AccuracyError(ConfigError):
    """The gate cannot run as configured; the message names the key or option to fix."""


class Rule(str, Enum):
    """How a gate judges: a ceiling per metric relative to a baseline, or a floor on one score."""
    MAX_RATIO = "max_ratio"  # every metric in baselines <= baseline x threshold_multiplier
    MIN_SCORE = "min_score"  # metric >= minimum


class GateSpec(BaseModel):
    """One stage's accuracy gate, as written in its ``accuracy`` table (unknown keys are errors)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    task: str = Field(min_length=1)  # "wikitext", "gsm8k" or any lm-eval task name
    rule: Rule
    baselines: dict[str, float] = Field(default_factory=dict)
    threshold_multiplier: float | None = Field(None, gt=0)
    minimum: float | None = None
    metric: str | None = None  # an lm-eval results key, ",none" optional
    num_fewshot: int | None = Field(None, ge=0)
    model_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    limit: int | float | None = Field(None, gt=0)
    dataset: str | None = None  # a .jsonl of {"page": text} lines, or "builtin" / "builtin:N"
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
        if self.rule is Rule.MAX_RATIO:
            if not self.baselines or self.threshold_multiplier is None:
                raise ValueError("rule 'max_ratio' needs baselines = {metric = value, ...} and threshold_multiplier")
            if self.minimum is not None or self.metric is not None:
                raise ValueError("rule 'max_ratio' takes no minimum/metric (those belong to 'min_score')")
        elif self.minimum is None or self.metric is None:
            raise ValueError(f"rule 'min_score' needs minimum, and metric (an lm-eval results key such as 'acc' "
                             f"or 'exact_match,strict-match') unless the task has a default ({DEFAULT_METRIC})")
        elif self.baselines or self.threshold_multiplier is not None:
            raise ValueError("rule 'min_score' takes no baselines/threshold_multiplier")
        if self.dataset is not None and self.task != "wikitext":
            raise ValueError("dataset (a local .jsonl) is supported only for task 'wikitext'")
        return self

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "accuracy", base_dir: Path | None = None) -> GateSpec:
        """Validate a suite table; a relative ``dataset`` path resolves against ``base_dir`` (the suite folder)."""
        try:
            spec = cls.model_validate(dict(table))
        except ValidationError as e:
            lines = [f"  {'.'.join(map(str, err['loc'])) or '(table)'}: {err['msg']}" for err in e.errors()]
            raise AccuracyError(f"[{where}] is not a valid accuracy gate:\n" + "\n".join(lines)) from None
        ds = spec.dataset
        if ds and base_dir and ds.partition(":")[0] != "builtin" and not Path(ds).expanduser().is_absolute():
            return spec.model_copy(update={"dataset": str(base_dir / ds)})
        return spec


@dataclass(frozen=True)
class MetricVerdict:
    """One judged metric; ``margin`` is the headroom to the limit (negative: failed)."""
    metric: str
    value: float
    limit: float
    op: str  # "<=" or ">="
    margin: float
    margin_pct: float  # margin as a percentage of the limit
    ok: bool


def judge(spec: GateSpec, values: Mapping[str, float]) -> list[MetricVerdict]:
    """Apply the spec's rule to metric values (lm-eval results keys with ',none' stripped)."""
    wanted = ([(m, b * spec.threshold_multiplier, "<=") for m, b in spec.baselines.items()]
              if spec.rule is Rule.MAX_RATIO else [(spec.metric.removesuffix(",none"), spec.minimum, ">=")])
    out: list[MetricVerdict] = []
    for metric, limit, op in wanted:
        if (v := values.get(metric)) is None:
            raise AccuracyError(f"lm-eval returned no metric {metric!r} for task {spec.task!r} "
                                f"(it returned {sorted(values)}): fix the accuracy table's metric/baselines")
        margin = limit - v if op == "<=" else v - limit
        pct = 100.0 * margin / abs(limit) if limit else float("nan")
        out.append(MetricVerdict(metric, float(v), limit, op, margin, pct, margin >= 0))
    return out


@dataclass
class GateResult:
    """What :func:`run_gate` measured and decided."""
    spec: GateSpec
    task_name: str  # the lm-eval task run ("wikitext_local" for a local dataset)
    values: dict[str, float]
    verdicts: list[MetricVerdict]
    elapsed_s: float
    lm_eval_version: str
    task_config: dict[str, Any]  # lm-eval's dump of the task config it ran
    model_args: dict[str, Any]  # without the API key
    dataset: str | None = None
    dataset_sha256: str | None = None
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.passed = all(v.ok for v in self.verdicts)

    def message(self) -> str:
        """A headline and a table: metric | value | limit | margin | ok."""
        rows = [("metric", "value", "limit", "margin", "ok")]
        rows += [(v.metric, f"{v.value:.4f}", f"{v.op} {v.limit:.4f}", f"{v.margin:+.4f} ({v.margin_pct:+.1f}%)",
                  "yes" if v.ok else "NO") for v in self.verdicts]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        table = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        table.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        head = (f"accuracy gate {self.spec.task} ({self.spec.rule.value}): {'PASSED' if self.passed else 'FAILED'} "
                f"in {self.elapsed_s:.1f} s, lm-eval {self.lm_eval_version}, task {self.task_name}")
        return "\n".join([head, *table])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (spec, values, verdicts, timing, versions, task config)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("spec", "verdicts")}
        return {**d, "spec": self.spec.model_dump(mode="json"), "verdicts": [v.__dict__ for v in self.verdicts]}


def builtin_documents(n: int = 8) -> list[str]:
    """The embedded suite's documents: the Zen of Python, then standard modules' docstrings, read from CPython's
    sources with ``ast`` (nothing imported or printed). Deterministic for a given Python version."""
    def _module_ast(name: str) -> ast.Module:
        if (spec := importlib.util.find_spec(name)) is None or not (spec.origin or "").endswith(".py"):
            raise AccuracyError(f"the standard module {name!r} has no Python source here")
        return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))

    if not 1 <= n <= 1 + len(BUILTIN_MODULES):
        raise AccuracyError(f"builtin documents: n must be 1..{1 + len(BUILTIN_MODULES)}, got {n}")
    zen = next(node.value.value for node in _module_ast("this").body
               if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "s")
    docs = [codecs.decode(zen, "rot13")]
    for name in BUILTIN_MODULES[: n - 1]:
        if not (doc := ast.get_docstring(_module_ast(name), clean=True)):
            raise AccuracyError(f"the standard module {name!r} has no docstring in this Python")
        docs.append(doc)
    return docs


def write_jsonl(docs: list[str], path: Path) -> Path:
    """Write documents as wikitext-style lines ``{"page": text}``."""
    Path(path).write_text("".join(json.dumps({"page": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return Path(path)


def render_wikitext_task(data_file: Path, include_dir: Path) -> Path:
    """Write ``wikitext_local.yaml`` (``data_file`` filled in) and its ``utils.py`` into ``include_dir``."""
    pkg = importlib.resources.files("pytest_inferencemax.measure.accuracy_tasks")
    text = pkg.joinpath("wikitext_local.yaml").read_text(encoding="utf-8")
    text = text.replace("${data_file}", json.dumps(str(Path(data_file).resolve())))
    include_dir.mkdir(parents=True, exist_ok=True)
    (include_dir / "utils.py").write_text(pkg.joinpath("utils.py").read_text(encoding="utf-8"), encoding="utf-8")
    (include_dir / "wikitext_local.yaml").write_text(text, encoding="utf-8")
    return include_dir / "wikitext_local.yaml"


def probe_prompt_logprobs(base_url: str, model: str, api_key: str | None = None, timeout: float = 60) -> str | None:
    """None if /v1/completions returns prompt-token logprobs (as lm-eval's loglikelihood asks), else why not."""
    url = f"{api.root(base_url)}/v1/completions"
    payload = {"model": model, "prompt": "The quick brown fox jumps over the lazy dog.", "temperature": 0,
               "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": True}  # lm-eval 0.4.13's loglikelihood payload
    try:
        r = api.post(base_url, "/v1/completions", payload, api_key=api_key, timeout=timeout)
        lps = r.json()["choices"][0]["logprobs"]["token_logprobs"] if r.ok else None
    except requests.RequestException as e:
        return f"cannot reach {url}: {e}"
    except (ValueError, KeyError, IndexError, TypeError):
        lps = None
    if not isinstance(lps, list) or len(lps) < 3 or not any(isinstance(x, (int, float)) for x in lps[1:-1]):
        return (f"the server at {url} does not return prompt logprobs (HTTP {r.status_code}: {r.text[:300]!r}); "
                "loglikelihood tasks (wikitext) need choices[0].logprobs.token_logprobs for the prompt tokens with "
                "echo=true, logprobs=1 (vLLM and SGLang return them unless disabled, e.g. vLLM --max-logprobs 0)")
    return None


def hf_dataset_cached(repo_id: str) -> bool:
    """Whether the Hugging Face hub cache or datasets cache holds anything of this dataset."""
    from datasets import config as ds_config
    from huggingface_hub import constants
    dirs = [Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}",
            Path(ds_config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")]
    return any(d.is_dir() and any(d.iterdir()) for d in dirs)


def _prepare_task(spec: GateSpec, ds: str | None, tmp: Path, allow_download: bool) -> tuple[str, Path | None, str]:
    """(lm-eval task name, include dir or None, local data file or "")."""
    if not ds:
        repo, name = HF_DATASETS.get(spec.task, (None, None))
        if repo and not allow_download and not hf_dataset_cached(repo):
            hint = ('set `dataset` in the stage accuracy table or pass --accuracy-dataset PATH (a .jsonl of '
                    '{"page": text} lines, or "builtin": embedded documents), or ' if spec.task == "wikitext" else "")
            raise AccuracyError(f"task {spec.task!r} needs the dataset {repo} ({name}), which is not in the Hugging "
                                f"Face cache: {hint}fetch it once online (datasets.load_dataset('{repo}', '{name}'))")
        return spec.task, None, ""
    if spec.task != "wikitext":
        raise AccuracyError(f"a local accuracy dataset is supported only for task 'wikitext', not {spec.task!r}")
    if ds.partition(":")[0] == "builtin":
        data_file = write_jsonl(builtin_documents(int(ds.partition(":")[2] or 8)), tmp / "builtin.jsonl")
    elif not (data_file := Path(ds).expanduser()).is_file():
        raise AccuracyError(f"accuracy dataset {ds!r} is not a file: set `dataset` in the stage's accuracy table "
                            "or --accuracy-dataset PATH to a .jsonl of {\"page\": text} lines")
    return "wikitext_local", render_wikitext_task(data_file, tmp / "tasks").parent, str(data_file)


def gate_model_args(spec: GateSpec, root: str, served_model: str, tokenizer_path: str | None,
                    num_concurrent: int | None = None) -> dict[str, Any]:
    """lm-eval's ``--model_args`` for the gate: exactly the bounty runner's, nothing more.

    The runner passed ``model=$MODEL,base_url=…/v1/completions`` plus the stage's own arguments
    (stage 1: ``num_concurrent=10,max_retries=3``), so lm-eval's ``local-completions`` defaults hold:
    ``max_length`` 2048, ``tokenized_requests`` true, the tokenizer named by ``model``. A suite adds
    keys only by writing them in its ``model_args``. ``tokenizer`` is passed only when the served
    model name is not the tokenizer's path or id (a server started with ``--served-model-name``): the
    runner's ``$MODEL`` named both, so this loads the same tokenizer lm-eval loaded there."""
    args: dict[str, Any] = {"model": served_model, "base_url": f"{root}/v1/completions"}
    if tokenizer_path and str(tokenizer_path) != served_model:
        args["tokenizer"] = str(tokenizer_path)
    args.update(spec.model_args)
    if num_concurrent:
        args["num_concurrent"] = num_concurrent
    return args


def run_gate(spec: GateSpec, base_url: str, served_model: str, tokenizer_path: str | None,
             num_concurrent: int | None = None, *, dataset: str | None = None, api_key: str | None = None,
             allow_download: bool = False, check_logprobs: bool = True, work_dir: Path | None = None) -> GateResult:
    """Run the gate's lm-eval task against the server at ``base_url`` (``http://host:port``) and judge it.

    lm-eval gets :func:`gate_model_args` (the runner's arguments; ``num_concurrent``/``dataset``
    override the spec's). Raises :class:`AccuracyError` when the gate cannot run (dataset, logprobs, metric)."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    root, ds = api.root(base_url), dataset or spec.dataset
    with tempfile.TemporaryDirectory(prefix="imx-acc-", dir=work_dir) as tmp:
        task_name, include, data_file = _prepare_task(spec, ds, Path(tmp), allow_download)
        if check_logprobs and spec.task in LOGPROB_TASKS and (e := probe_prompt_logprobs(root, served_model, api_key)):
            raise AccuracyError(e)
        model_args = gate_model_args(spec, root, served_model, tokenizer_path, num_concurrent)
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model="local-completions", model_args={**model_args, **({"header": api.auth_headers(api_key)} if api_key else {})},
            tasks=[task_name], num_fewshot=spec.num_fewshot, limit=spec.limit, log_samples=False, bootstrap_iters=0,
            task_manager=TaskManager(include_path=str(include) if include else None, include_defaults=include is None))
        elapsed = time.perf_counter() - t0  # lm-eval's whole run: task build, requests, metrics
        if not out or task_name not in out.get("results", {}):
            raise AccuracyError(f"lm-eval returned no results for task {task_name!r}")
        values = {k.removesuffix(",none"): float(v) for k, v in out["results"][task_name].items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "sample_len"}
        config = json.loads(json.dumps(out.get("configs", {}).get(task_name, {}), default=str))
        sha = hashlib.sha256(Path(data_file).read_bytes()).hexdigest() if data_file else None
    return GateResult(spec=spec, task_name=task_name, values=values, verdicts=judge(spec, values), elapsed_s=elapsed,
                      lm_eval_version=lm_eval.__version__, task_config=config, model_args=model_args,
                      dataset=ds if data_file.startswith(tmp) else data_file or None, dataset_sha256=sha)
