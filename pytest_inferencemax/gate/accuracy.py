"""The accuracy gate: lm-eval against the running server, judged against a stage's thresholds.

A stage's ``accuracy`` table becomes a :class:`GateSpec`; :func:`run_gate` runs lm-eval's Python API (no printed
table parsed). Stage 1's task is ``wikitext_tokens``, the bounty's own (``wikitext_task.py``): its dataset and
chunk tokenizer from the hub or local copies. Before scoring, the task's bytes per word are checked against
the baseline's (``task_identity.py``). lm-eval's stock wikitext can still read a local ``.jsonl``
(``dataset``) through our task ``wikitext_local``, or ``dataset = "builtin"``: documents built from CPython."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from pytest_inferencemax.errors import AccuracyError, import_extra
from pytest_inferencemax.gate import wikitext_task
from pytest_inferencemax.gate.hub_access import HubResource, is_cached
from pytest_inferencemax.gate.local_documents import builtin_documents, parse_builtin, write_jsonl
from pytest_inferencemax.gate.task_identity import TaskIdentity, check_identity
from pytest_inferencemax.plan.recipe import fill
from pytest_inferencemax.plan.rules import BOUNTY_S1, LOCAL_DATASET_TASKS, GateRule, GateSpec
from pytest_inferencemax.serve import api

__all__ = ["AccuracyError", "GateResult", "builtin_documents", "judge", "run_gate", "write_jsonl"]

HF_DATASETS = {"wikitext": ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1"),
               "gsm8k": ("openai/gsm8k", "main")}
LOGPROB_TASKS = {"wikitext", BOUNTY_S1}  # loglikelihood tasks: the server must return prompt logprobs
# lm-eval arguments whose default in the lm-eval we run (0.4.13) differs from the lm-eval the bounty's runner ran
# for the task: the branch's local-completions used the Hugging Face tokenizer named by `model` (tokenizer_backend
# "huggingface"); 0.4.13's default "auto" asks the server for its tokenizer first (docs/accuracy.md).
TASK_MODEL_ARGS: dict[str, dict[str, str]] = {BOUNTY_S1: {"tokenizer_backend": "huggingface"}}


def resolve_spec(spec: GateSpec, base_dir: Path | None = None, variables: Mapping[str, str] | None = None,
                 where: str = "accuracy") -> GateSpec:
    """``spec`` as this session runs it: with ``variables`` (``models_dir``, ``suite_dir``), ``${...}`` in
    ``dataset``/``chunk_tokenizer`` filled; a relative ``dataset`` path resolved against ``base_dir`` (the
    suite folder)."""
    update = {key: fill(value, dict(variables), f"[{where}] {key}") for key in ("dataset", "chunk_tokenizer")
              if variables is not None and (value := getattr(spec, key))}
    resolved = spec.model_copy(update=update) if update else spec
    if base_dir and resolved.dataset_is_path and not Path(resolved.dataset).expanduser().is_absolute():
        resolved = resolved.model_copy(update={"dataset": str(base_dir / resolved.dataset)})
    return resolved


def task_label(spec: GateSpec) -> str:
    """The task in a few words, for the plan (``--collect-only``) and messages."""
    if spec.task != BOUNTY_S1:
        return spec.task
    ds = spec.dataset or f"hub {wikitext_task.HUB_CONFIG} {wikitext_task.HUB_SPLIT}"
    return (f"{spec.task} (the bounty's stage-1 wikitext: {ds}, {wikitext_task.CHUNK_SIZE}-token chunks by "
            f"{spec.chunk_tokenizer or wikitext_task.HUB_TOKENIZER})")


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
              if spec.rule is GateRule.MAX_RATIO else [(spec.metric.removesuffix(",none"), spec.minimum, ">=")])
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
    chunk_tokenizer: str | None = None  # wikitext_tokens: the tokenizer that cut and counted its documents
    identity: TaskIdentity | None = None  # the task's bytes per word against the baseline's (task_identity.py)
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.passed = all(v.ok for v in self.verdicts)

    def message(self) -> str:
        """A headline, a table (metric | value | limit | margin | ok) and the task's identity."""
        rows = [("metric", "value", "limit", "margin", "ok")]
        rows += [(v.metric, f"{v.value:.4f}", f"{v.op} {v.limit:.4f}", f"{v.margin:+.4f} ({v.margin_pct:+.1f}%)",
                  "yes" if v.ok else "NO") for v in self.verdicts]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        table = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        table.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        head = (f"accuracy gate {self.spec.task} ({self.spec.rule.value}): {'PASSED' if self.passed else 'FAILED'} "
                f"in {self.elapsed_s:.1f} s, lm-eval {self.lm_eval_version}, task {self.task_name}")
        return "\n".join([head, *table, *([self.identity.line()] if self.identity else [])])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (spec, values, verdicts, timing, versions, task config, identity)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("spec", "verdicts", "identity")}
        return {**d, "spec": self.spec.model_dump(mode="json"), "verdicts": [v.__dict__ for v in self.verdicts],
                "identity": dataclasses.asdict(self.identity) if self.identity else None}


def render_wikitext_task(data_file: Path, include_dir: Path) -> Path:
    """Write ``wikitext_local.yaml`` (``data_file`` filled in) and its ``utils.py`` into ``include_dir``."""
    pkg = importlib.resources.files("pytest_inferencemax.gate.accuracy_tasks")
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
    return is_cached(HubResource(repo_id, "dataset", "README.md", "dataset", "--accuracy-dataset PATH"))


def gate_sources(spec: GateSpec, dataset: str | None = None, chunk_tokenizer: str | None = None) -> wikitext_task.Sources:
    """The bounty task's sources: the options' local copies first, then the table's, then the hub's."""
    return wikitext_task.Sources.resolve(dataset or spec.dataset, chunk_tokenizer or spec.chunk_tokenizer)


@dataclass(frozen=True)
class _Prepared:
    """The lm-eval task to run: its name, include folder (None: lm-eval's own), dataset label and sha256."""
    name: str
    include: Path | None = None
    dataset: str | None = None
    sha256: str | None = None
    chunk_tokenizer: str | None = None


def _prepare_task(spec: GateSpec, ds: str | None, tmp: Path, allow_download: bool,
                  chunk_tokenizer: str | None = None) -> _Prepared:
    if spec.task == BOUNTY_S1:
        sources = gate_sources(spec, ds, chunk_tokenizer)
        if problems := sources.local_problems():
            raise AccuracyError("; ".join(problems))
        include = wikitext_task.render_task(tmp / "tasks", sources).parent
        sha = wikitext_task.text_sha256(wikitext_task.load_lines(sources.dataset))
        return _Prepared(spec.task, include, sources.dataset, sha, sources.tokenizer)
    if not ds:
        repo, name = HF_DATASETS.get(spec.task, (None, None))
        if repo and not allow_download and not hf_dataset_cached(repo):
            hint = ('set `dataset` in the stage accuracy table or pass --accuracy-dataset PATH (a .jsonl of '
                    '{"page": text} lines, or "builtin": embedded documents), or ' if spec.task == "wikitext" else "")
            raise AccuracyError(f"task {spec.task!r} needs the dataset {repo} ({name}), which is not in the Hugging "
                                f"Face cache: {hint}fetch it once online (datasets.load_dataset('{repo}', '{name}'))")
        return _Prepared(spec.task)
    if spec.task != "wikitext":
        raise AccuracyError(f"a local accuracy dataset is supported only for tasks {sorted(LOCAL_DATASET_TASKS)}, "
                            f"not {spec.task!r}")
    if (n := parse_builtin(ds)) is not None:
        data_file = write_jsonl(builtin_documents(n), tmp / "builtin.jsonl")
    elif not (data_file := Path(ds).expanduser()).is_file():
        raise AccuracyError(f"accuracy dataset {ds!r} is not a file: set `dataset` in the stage's accuracy table "
                            "or --accuracy-dataset PATH to a .jsonl of {\"page\": text} lines")
    sha = hashlib.sha256(data_file.read_bytes()).hexdigest()
    label = ds if parse_builtin(ds) is not None else str(data_file)
    return _Prepared("wikitext_local", render_wikitext_task(data_file, tmp / "tasks").parent, label, sha)


def gate_model_args(spec: GateSpec, root: str, served_model: str, tokenizer_path: str | None,
                    num_concurrent: int | None = None) -> dict[str, Any]:
    """lm-eval's ``--model_args`` for the gate: the bounty runner's, and the defaults of the lm-eval it ran.

    The runner passed ``model=$MODEL,base_url=…/v1/completions`` plus the stage's own arguments
    (stage 1: ``num_concurrent=10,max_retries=3``), so lm-eval's ``local-completions`` defaults hold:
    ``max_length`` 2048, ``tokenized_requests`` true, the tokenizer named by ``model``. A suite adds
    keys only by writing them in its ``model_args``. Where the lm-eval we run has another default than the
    lm-eval the runner ran for the task, the runner's is passed (:data:`TASK_MODEL_ARGS`). ``tokenizer`` is
    passed only when the served model name is not the tokenizer's path or id (a server started with
    ``--served-model-name``): the runner's ``$MODEL`` named both, so this loads the same tokenizer."""
    args: dict[str, Any] = {"model": served_model, "base_url": f"{root}/v1/completions"}
    if tokenizer_path and str(tokenizer_path) != served_model:
        args["tokenizer"] = str(tokenizer_path)
    args.update(TASK_MODEL_ARGS.get(spec.task, {}))
    args.update(spec.model_args)
    if num_concurrent:
        args["num_concurrent"] = num_concurrent
    return args


def task_identity(spec: GateSpec, task: Any) -> TaskIdentity | None:
    """Bytes per word of an lm-eval task's own documents (its ``process_results`` counts, from a dummy
    loglikelihood) against the spec's baselines; raises :class:`AccuracyError` when they differ."""
    if spec.rule is not GateRule.MAX_RATIO or task.get_config("output_type") != "loglikelihood_rolling":
        return None
    words = nbytes = docs = 0
    for doc in task.eval_docs:
        items = task.process_results(doc, [0.0])
        if "word_perplexity" not in items or "bits_per_byte" not in items:
            return None
        words, nbytes, docs = words + items["word_perplexity"][1], nbytes + items["bits_per_byte"][1], docs + 1
    return check_identity(spec.task, words, nbytes, docs, spec.baselines)


def run_gate(spec: GateSpec, base_url: str, served_model: str, tokenizer_path: str | None,
             num_concurrent: int | None = None, *, dataset: str | None = None, chunk_tokenizer: str | None = None,
             api_key: str | None = None, allow_download: bool = False, check_logprobs: bool = True,
             work_dir: Path | None = None) -> GateResult:
    """Run the gate's lm-eval task against the server at ``base_url`` (``http://host:port``) and judge it.

    lm-eval gets :func:`gate_model_args` (the runner's arguments; ``num_concurrent``/``dataset``/
    ``chunk_tokenizer`` override the spec's). Raises :class:`AccuracyError` when the gate cannot run (dataset,
    tokenizer, logprobs, metric) or its task is not the baseline's (bytes per word, :func:`task_identity`)."""
    lm_eval = import_extra("lm_eval", "eval", "the accuracy gate")
    tasks = import_extra("lm_eval.tasks", "eval", "the accuracy gate")
    root = api.root(base_url)
    with tempfile.TemporaryDirectory(prefix="imx-acc-", dir=work_dir) as tmp:
        t0 = time.perf_counter()
        prep = _prepare_task(spec, dataset or spec.dataset, Path(tmp), allow_download, chunk_tokenizer)
        manager = tasks.TaskManager(include_path=str(prep.include) if prep.include else None,
                                    include_defaults=prep.include is None)
        task = manager.load([prep.name])["tasks"][prep.name]  # builds its documents (the bounty task: chunks)
        identity = task_identity(spec, task)  # before any request: a task that is not the baseline's is refused
        if check_logprobs and spec.task in LOGPROB_TASKS and (e := probe_prompt_logprobs(root, served_model, api_key)):
            raise AccuracyError(e)
        model_args = gate_model_args(spec, root, served_model, tokenizer_path, num_concurrent)
        out = lm_eval.simple_evaluate(
            model="local-completions", model_args={**model_args, **({"header": api.auth_headers(api_key)} if api_key else {})},
            tasks=[task], num_fewshot=spec.num_fewshot, limit=spec.limit, log_samples=False, bootstrap_iters=0,
            task_manager=manager)
        elapsed = time.perf_counter() - t0  # the whole gate: documents, identity, probe, requests, metrics
    if not out or prep.name not in out.get("results", {}):
        raise AccuracyError(f"lm-eval returned no results for task {prep.name!r}")
    values = {k.removesuffix(",none"): float(v) for k, v in out["results"][prep.name].items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "sample_len"}
    config = json.loads(json.dumps(out.get("configs", {}).get(prep.name, {}), default=str))
    return GateResult(spec=spec, task_name=prep.name, values=values, verdicts=judge(spec, values), elapsed_s=elapsed,
                      lm_eval_version=lm_eval.__version__, task_config=config, model_args=model_args,
                      dataset=prep.dataset, dataset_sha256=prep.sha256, chunk_tokenizer=prep.chunk_tokenizer,
                      identity=identity)
