"""The accuracy gate's parts without a real server: spec parsing, judging, documents, task YAML, probes."""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
import yaml

from faulty_server import FaultyServer
from pytest_inferencemax.gate import accuracy, local_documents
from pytest_inferencemax.gate.accuracy import (AccuracyError, GateResult, builtin_documents, judge, probe_prompt_logprobs,
                                               render_wikitext_task, resolve_spec, run_gate, write_jsonl)
from pytest_inferencemax.plan.rules import GateRule as Rule, GateSpec

REPO = Path(__file__).resolve().parents[2]
WIKITEXT = {"task": "wikitext", "rule": "max_ratio", "threshold_multiplier": 1.03,
            "baselines": {"bits_per_byte": 2.0558, "byte_perplexity": 4.1577, "word_perplexity": 222.7893}}
GSM8K = {"task": "gsm8k", "rule": "min_score", "minimum": 0.38, "num_fewshot": 3}

NEW_TOML = '''
[stages.s1.accuracy]
task = "wikitext"
rule = "max_ratio"
threshold_multiplier = 1.03
baselines = { bits_per_byte = 2.0558, byte_perplexity = 4.1577, word_perplexity = 222.7893 }
model_args = { num_concurrent = 10, max_retries = 3 }
provenance = "bounty runner S1: fail if any metric > baseline x 1.03"

[stages.s2.accuracy]
task = "gsm8k"
rule = "min_score"
metric = "exact_match,flexible-extract"
minimum = 0.38
num_fewshot = 3
model_args = { num_concurrent = 65, max_retries = 1, tokenized_requests = false }
provenance = "bounty runner S2: GSM8K_BASELINE_METRIC 0.38, GSM8K_TOL 0.0"
'''


def _yaml(text: str) -> dict:
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_constructor("!function", lambda ld, node: f"!function {ld.construct_scalar(node)}")
    return yaml.load(text, Loader=loader)  # a SafeLoader subclass


# -- GateSpec ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", ["gptoss", "dsr1"])
def test_suite_files_accuracy_tables_parse(suite):
    stages = tomllib.loads((REPO / "suites" / suite / "suite.toml").read_text())["stages"]
    s1 = GateSpec.from_table(stages["s1"]["accuracy"])
    s2 = GateSpec.from_table(stages["s2"]["accuracy"])
    # the bounty's own stage-1 task (baberabb/lm-evaluation-harness@wikitext-tokens), chunked by Llama-2-7b
    assert (s1.task, s1.rule, s1.threshold_multiplier) == ("wikitext_tokens", Rule.MAX_RATIO, 1.03)
    assert s1.chunk_tokenizer == "meta-llama/Llama-2-7b-hf" and s1.dataset is None  # the hub's wikitext-2-raw-v1
    assert set(s1.baselines) == {"bits_per_byte", "byte_perplexity", "word_perplexity"}
    assert s1.model_args == {"num_concurrent": 10, "max_retries": 3}
    assert (s2.task, s2.rule, s2.num_fewshot, s2.metric) == ("gsm8k", Rule.MIN_SCORE, 3, "exact_match,flexible-extract")
    assert s2.model_args["tokenized_requests"] is False


def test_new_toml_schema_parses():
    stages = tomllib.loads(NEW_TOML)["stages"]
    s1, s2 = (GateSpec.from_table(stages[s]["accuracy"]) for s in ("s1", "s2"))
    assert s1.rule is Rule.MAX_RATIO and s1.provenance.startswith("bounty")
    assert s2.rule is Rule.MIN_SCORE and s2.minimum == 0.38 and s2.metric == "exact_match,flexible-extract"


@pytest.mark.parametrize("table, expect", [
    ({**WIKITEXT, "thresold_multiplier": 1.1}, "thresold_multiplier: Extra inputs are not permitted"),
    ({**WIKITEXT, "rule": "at most"}, "rule: Input should be 'max_ratio' or 'min_score'"),
    ({k: v for k, v in WIKITEXT.items() if k != "baselines"}, "needs baselines"),
    ({k: v for k, v in WIKITEXT.items() if k != "threshold_multiplier"}, "threshold_multiplier"),
    ({**WIKITEXT, "minimum": 0.5}, "'max_ratio' takes no minimum"),
    ({**WIKITEXT, "threshold_multiplier": 0}, "threshold_multiplier: Input should be greater than 0"),
    ({k: v for k, v in GSM8K.items() if k != "minimum"}, "'min_score' needs minimum"),
    ({**GSM8K, "task": "mmlu"}, "needs minimum, and metric"),
    ({**GSM8K, "threshold_multiplier": 1.03}, "'min_score' takes no baselines"),
    ({**GSM8K, "dataset": "x.jsonl"}, "supported only for tasks ['wikitext', 'wikitext_tokens']"),
    ({**WIKITEXT, "model_args": {"base_url": "http://x"}}, "model_args may not set ['base_url']"),
    ({**WIKITEXT, "num_fewshot": -1}, "num_fewshot"),
    ({"rule": "max_ratio"}, "task: Field required"),
])
def test_invalid_tables_name_the_problem(table, expect):
    with pytest.raises(AccuracyError) as e:
        GateSpec.from_table(table, where="suite.toml [stages.s1.accuracy]")
    assert "[suite.toml [stages.s1.accuracy]] is not a valid accuracy gate" in str(e.value)
    assert expect in str(e.value)


def test_min_score_on_any_task_with_explicit_metric():
    spec = GateSpec.from_table({"task": "mmlu", "rule": "min_score", "minimum": 0.6, "metric": "acc,none"})
    assert spec.metric == "acc,none"


def test_relative_dataset_resolves_against_the_suite_folder(tmp_path):
    rel = resolve_spec(GateSpec.from_table({**WIKITEXT, "dataset": "docs.jsonl"}), base_dir=tmp_path)
    assert rel.dataset == str(tmp_path / "docs.jsonl")
    for fixed in ("builtin", "builtin:4", "/abs/docs.jsonl"):
        assert resolve_spec(GateSpec.from_table({**WIKITEXT, "dataset": fixed}), base_dir=tmp_path).dataset == fixed


# -- judge and result ---------------------------------------------------------------------------------
def test_judge_max_ratio_margins():
    spec = GateSpec.from_table({**WIKITEXT, "baselines": {"bits_per_byte": 2.0, "word_perplexity": 100.0}})
    v = judge(spec, {"bits_per_byte": 2.0, "word_perplexity": 103.5, "byte_perplexity": 9.0})
    assert [x.metric for x in v] == ["bits_per_byte", "word_perplexity"]
    assert v[0].limit == pytest.approx(2.06) and v[0].margin == pytest.approx(0.06) and v[0].ok
    assert v[0].margin_pct == pytest.approx(100 * 0.06 / 2.06) and v[0].op == "<="
    assert v[1].limit == pytest.approx(103.0) and v[1].margin == pytest.approx(-0.5) and not v[1].ok


def test_judge_max_ratio_limit_itself_passes():
    spec = GateSpec.from_table({**WIKITEXT, "threshold_multiplier": 1.0, "baselines": {"bits_per_byte": 0.5}})
    assert judge(spec, {"bits_per_byte": 0.5})[0].ok


def test_judge_min_score():
    spec = GateSpec.from_table(GSM8K)
    ok = judge(spec, {"exact_match,flexible-extract": 0.40, "exact_match,strict-match": 0.10})
    assert len(ok) == 1 and ok[0].ok and ok[0].margin == pytest.approx(0.02) and ok[0].op == ">="
    bad = judge(spec, {"exact_match,flexible-extract": 0.37})
    assert not bad[0].ok and bad[0].margin == pytest.approx(-0.01)
    assert judge(spec, {"exact_match,flexible-extract": 0.38})[0].ok


def test_judge_strips_none_and_fails_nan():
    spec = GateSpec.from_table({"task": "arc_easy", "rule": "min_score", "minimum": 0.5, "metric": "acc,none"})
    assert judge(spec, {"acc": 0.7})[0].ok
    assert not judge(spec, {"acc": math.nan})[0].ok


def test_judge_missing_metric_lists_what_came_back():
    with pytest.raises(AccuracyError, match=r"no metric 'bits_per_byte'.*\['word_perplexity'\]"):
        judge(GateSpec.from_table(WIKITEXT), {"word_perplexity": 1.0})


def _result(values: dict[str, float]) -> GateResult:
    spec = GateSpec.from_table({**WIKITEXT, "baselines": {"bits_per_byte": 2.0, "word_perplexity": 100.0}})
    return GateResult(spec=spec, task_name="wikitext", values=values, verdicts=judge(spec, values),
                      elapsed_s=12.34, lm_eval_version="0.4.13", task_config={"task": "wikitext"},
                      model_args={"model": "m"})


def test_result_message_table_and_record():
    good = _result({"bits_per_byte": 1.9, "word_perplexity": 90.0})
    assert good.passed
    lines = good.message().splitlines()
    assert lines[0].startswith("accuracy gate wikitext (max_ratio): PASSED in 12.3 s, lm-eval 0.4.13")
    assert [c.strip() for c in lines[1].strip("|").split("|")] == ["metric", "value", "limit", "margin", "ok"]
    assert [c.strip() for c in lines[3].strip("|").split("|")] == [
        "bits_per_byte", "1.9000", "<= 2.0600", "+0.1600 (+7.8%)", "yes"]
    bad = _result({"bits_per_byte": 1.9, "word_perplexity": 104.0})
    assert not bad.passed and "FAILED" in bad.message() and "| NO " in bad.message()
    rec = json.loads(json.dumps(bad.to_dict()))
    assert rec["passed"] is False and rec["spec"]["rule"] == "max_ratio" and rec["verdicts"][1]["ok"] is False


# -- documents and the local task ------------------------------------------------------------------------
def test_builtin_documents_deterministic_and_silent(capsys):
    docs = builtin_documents(8)
    assert docs == builtin_documents(8) and len(docs) == 8
    assert all(len(d) > 500 for d in docs)  # the Zen is the shortest (~850 characters)
    assert docs[0].startswith("The Zen of Python, by Tim Peters") and "Beautiful is better than ugly." in docs[0]
    assert len(set(docs)) == 8
    assert builtin_documents(3) == docs[:3]
    assert capsys.readouterr().out == ""  # the Zen was not printed (the `this` module is not imported)
    for bad in (0, 2 + len(local_documents.BUILTIN_MODULES)):
        with pytest.raises(AccuracyError, match="n must be"):
            builtin_documents(bad)


def test_write_jsonl_round_trip(tmp_path):
    docs = ["a \"quoted\"\nline", "ünïcode"]
    path = write_jsonl(docs, tmp_path / "d.jsonl")
    assert [json.loads(line)["page"] for line in path.read_text(encoding="utf-8").splitlines()] == docs


def test_rendered_task_is_lm_evals_wikitext_over_a_json_file(tmp_path):
    data = write_jsonl(["x"], tmp_path / 'odd "dir" name.jsonl')
    out = render_wikitext_task(data, tmp_path / "tasks")
    ours = _yaml(out.read_text())
    assert ours["task"] == "wikitext_local" and ours["dataset_path"] == "json"
    assert ours["dataset_kwargs"] == {"data_files": {"test": str(data.resolve())}}
    assert (out.parent / "utils.py").read_text() == (REPO / "pytest_inferencemax/gate/accuracy_tasks/utils.py").read_text()
    import lm_eval
    theirs = _yaml((Path(lm_eval.__file__).parent / "tasks/wikitext/wikitext.yaml").read_text())
    for key in ("output_type", "doc_to_text", "metric_list", "should_decontaminate", "doc_to_decontamination_query",
                "test_split"):
        assert ours[key] == theirs[key], key
    for key in ("doc_to_target", "process_results"):  # same function names, taken from lm-eval by import
        assert ours[key].split(".")[-1] == theirs[key].split(".")[-1]


def test_utils_reuses_lm_evals_functions():
    from lm_eval.tasks.wikitext import preprocess_wikitext

    from pytest_inferencemax.gate.accuracy_tasks import utils
    assert utils.process_results is preprocess_wikitext.process_results
    assert utils.wikitext_detokenizer is preprocess_wikitext.wikitext_detokenizer


def test_prepare_task_local_and_missing(tmp_path, monkeypatch):
    spec = GateSpec.from_table(WIKITEXT)
    prep = accuracy._prepare_task(spec, "builtin:2", tmp_path, allow_download=False)
    assert prep.name == "wikitext_local" and (prep.include / "wikitext_local.yaml").is_file()
    assert prep.dataset == "builtin:2" and len((tmp_path / "builtin.jsonl").read_text().splitlines()) == 2
    with pytest.raises(AccuracyError, match="is not a file"):
        accuracy._prepare_task(spec, str(tmp_path / "nope.jsonl"), tmp_path, allow_download=False)
    with pytest.raises(AccuracyError, match="only for tasks"):
        accuracy._prepare_task(GateSpec.from_table(GSM8K), "builtin", tmp_path, allow_download=False)
    monkeypatch.setattr(accuracy, "hf_dataset_cached", lambda repo: False)
    with pytest.raises(AccuracyError) as e:
        accuracy._prepare_task(spec, None, tmp_path, allow_download=False)
    assert "--accuracy-dataset PATH" in str(e.value) and "`dataset`" in str(e.value)
    assert "EleutherAI/wikitext_document_level" in str(e.value)
    assert accuracy._prepare_task(spec, None, tmp_path, allow_download=True) == accuracy._Prepared("wikitext")
    monkeypatch.setattr(accuracy, "hf_dataset_cached", lambda repo: True)
    assert accuracy._prepare_task(GateSpec.from_table(GSM8K), None, tmp_path, False) == accuracy._Prepared("gsm8k")


# -- probes against an in-process server --------------------------------------------------------------
def test_probe_reports_a_server_without_prompt_logprobs():
    with FaultyServer("ok") as server:
        err = probe_prompt_logprobs(server.base_url, "faulty")
    assert err is not None and "does not return prompt logprobs" in err
    assert "wikitext" in err and "echo=true, logprobs=1" in err


def test_probe_accepts_prompt_logprobs():
    with FaultyServer("logprobs") as server:
        assert probe_prompt_logprobs(server.base_url + "/v1", "faulty") is None


def test_probe_unreachable():
    from pytest_inferencemax.serve.server import free_port
    assert probe_prompt_logprobs(f"http://127.0.0.1:{free_port()}", "m").startswith("cannot reach")


def test_run_gate_stops_before_lm_eval_without_logprobs(tmp_path):
    spec = GateSpec.from_table({**WIKITEXT, "baselines": {"bits_per_byte": 5.0}, "dataset": "builtin:2"})
    with FaultyServer("ok") as server, pytest.raises(AccuracyError, match="does not return prompt logprobs"):
        run_gate(spec, server.base_url, "faulty", "unused-tokenizer", work_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the temporary task folder is gone


def test_run_gate_refuses_stock_wikitext_against_the_bounty_baseline_before_any_request(tmp_path):
    """Stock-style wikitext counts whitespace words: its bytes per word are not the bounty baseline's 3.794."""
    spec = GateSpec.from_table({**WIKITEXT, "dataset": "builtin:2"})
    with FaultyServer("logprobs") as server, pytest.raises(AccuracyError) as err:
        run_gate(spec, server.base_url, "faulty", "unused-tokenizer", work_dir=tmp_path)
    assert "is not the task the baseline was measured with" in str(err.value) and "3.7939" in str(err.value)
    assert server.peers == []  # refused before the probe and lm-eval's requests


def test_run_gate_end_to_end_on_made_up_logprobs(smollm2_model, tmp_path):
    """The whole lm-eval path (our task YAML in a temp include dir, local-completions, results) in seconds."""
    spec = GateSpec.from_table({**WIKITEXT, "baselines": {"bits_per_byte": 5.0}, "dataset": "builtin:3",
                                "model_args": {"max_retries": 1}})
    with FaultyServer("logprobs") as server:
        result = run_gate(spec, server.base_url, "faulty", str(smollm2_model), num_concurrent=2, work_dir=tmp_path)
    assert result.passed and result.task_name == "wikitext_local" and result.lm_eval_version == "0.4.13"
    assert set(result.values) == {"bits_per_byte", "byte_perplexity", "word_perplexity"}
    assert all(math.isfinite(v) and v > 0 for v in result.values.values())
    # the runner's arguments and nothing more: lm-eval's defaults (max_length 2048, tokenized requests) hold
    assert result.model_args == {"model": "faulty", "base_url": f"{server.base_url}/v1/completions",
                                 "tokenizer": str(smollm2_model), "max_retries": 1, "num_concurrent": 2}
    assert result.dataset == "builtin:3" and len(result.dataset_sha256) == 64
    assert result.task_config["dataset_path"] == "json" and result.task_config["output_type"] == "loglikelihood_rolling"
    assert list(tmp_path.iterdir()) == []


def test_gate_passes_exactly_the_runners_model_args():
    """Stage 1 ran ``lm_eval --model local-completions --model_args model=$MODEL,base_url=…/v1/completions,
    num_concurrent=10,max_retries=3 --tasks wikitext``: lm-eval's own defaults for the rest."""
    s1 = GateSpec.from_table({**WIKITEXT, "model_args": {"num_concurrent": 10, "max_retries": 3}})
    args = accuracy.gate_model_args(s1, "http://h:8888", "openai/gpt-oss-120b", "openai/gpt-oss-120b")
    assert args == {"model": "openai/gpt-oss-120b", "base_url": "http://h:8888/v1/completions",
                    "num_concurrent": 10, "max_retries": 3}
    assert "max_length" not in args and "tokenized_requests" not in args  # lm-eval's 2048 and True
    # a server started with --served-model-name: the tokenizer the runner's $MODEL named, by its path
    named = accuracy.gate_model_args(s1, "http://h:1", "smollm2", "/m/SmolLM2")
    assert named == {"model": "smollm2", "base_url": "http://h:1/v1/completions", "tokenizer": "/m/SmolLM2",
                     "num_concurrent": 10, "max_retries": 3}
    # a suite adds keys only by writing them; stage 2's tokenized_requests=False is such a key
    s2 = GateSpec.from_table({"task": "gsm8k", "rule": "min_score", "minimum": 0.38, "num_fewshot": 3,
                              "model_args": {"num_concurrent": 65, "max_retries": 1, "tokenized_requests": False}})
    assert accuracy.gate_model_args(s2, "http://h:1", "m", "m")["tokenized_requests"] is False
    assert accuracy.gate_model_args(s1, "http://h:1", "m", "m", num_concurrent=2)["num_concurrent"] == 2


def test_the_bounty_task_gets_the_branchs_tokenizer_backend():
    """lm-eval 0.4.13's local-completions defaults to tokenizer_backend "auto" (it may tokenize on the server);
    the branch's defaulted to "huggingface": the one default of the runner's lm-eval that differs, passed."""
    s1 = GateSpec.from_table({**WIKITEXT, "task": "wikitext_tokens", "model_args": {"num_concurrent": 10,
                                                                                   "max_retries": 3}})
    assert accuracy.gate_model_args(s1, "http://h:8888", "openai/gpt-oss-120b", "openai/gpt-oss-120b") == {
        "model": "openai/gpt-oss-120b", "base_url": "http://h:8888/v1/completions",
        "tokenizer_backend": "huggingface", "num_concurrent": 10, "max_retries": 3}
    import inspect

    from lm_eval.models.api_models import TemplateAPI
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    assert inspect.signature(LocalCompletionsAPI.__init__).parameters["tokenizer_backend"].default == "auto"
    branch = {"max_length": 2048, "add_bos_token": False, "tokenized_requests": True, "seed": 1234, "batch_size": 1,
              "max_retries": 3, "custom_prefix_token_id": None, "truncate": False}  # the same in both (docs/accuracy.md)
    params = inspect.signature(TemplateAPI.__init__).parameters
    assert {k: params[k].default for k in branch} == branch
