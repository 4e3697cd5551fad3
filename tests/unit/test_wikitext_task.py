"""The bounty's stage-1 task (wikitext_tokens) without a server: chunking and counting against figures made by
hand, its local sources, the task-identity check on the bounty's thresholds, and the hub access check's
messages on the real exceptions huggingface_hub raises (a local stand-in for the hub, a closed port)."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from pytest_inferencemax.errors import AccuracyError
from pytest_inferencemax.gate import wikitext_task
from pytest_inferencemax.gate.accuracy import resolve_spec, task_identity, task_label
from pytest_inferencemax.plan.rules import GateSpec
from pytest_inferencemax.gate.hub_access import HubResource, hub_problem
from pytest_inferencemax.gate.task_identity import baseline_bytes_per_word, check_identity
from pytest_inferencemax.gate.wikitext_task import Sources, chunk_documents, load_lines, render_task

GPTOSS = {"bits_per_byte": 2.0558, "byte_perplexity": 4.1577, "word_perplexity": 222.7893}
DSR1 = {"bits_per_byte": 0.4485, "byte_perplexity": 1.3646, "word_perplexity": 3.2522}
S1_TABLE = {"task": "wikitext_tokens", "rule": "max_ratio", "threshold_multiplier": 1.03, "baselines": GPTOSS}


@pytest.fixture(scope="module")
def char_tokenizer():
    """One id per character, "<s>" (BOS) added by the default call only: counts anyone can make by hand."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("abcdeé\n "))
    vocab = {"<unk>": 0, "<s>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def char_tokenizer_dir(char_tokenizer, tmp_path_factory):
    """The same tokenizer saved as a folder: what --accuracy-chunk-tokenizer names, loaded by the task's own loader."""
    folder = tmp_path_factory.mktemp("char-tokenizer")
    char_tokenizer.save_pretrained(str(folder))
    return folder


# -- chunking and counting ---------------------------------------------------------------------------------------
def test_chunks_and_counts_by_hand(char_tokenizer):
    # "ab" + "\n\n" + "" + "\n\n" + "cdé": 9 characters, 9 ids; chunks of 4: "ab\n\n", "\n\ncd", "é"
    docs = chunk_documents(["ab", "", "cdé"], char_tokenizer, chunk_size=4)
    assert [d.text for d in docs] == ["ab\n\n", "\n\ncd", "é"]
    assert [d.words for d in docs] == [5, 5, 2]  # 4 + BOS, 4 + BOS, 1 + BOS
    assert [d.bytes for d in docs] == [4, 4, 2]  # é is two bytes in UTF-8


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_chunk_boundaries_follow_the_joined_text(char_tokenizer, size):
    lines = ["a b", "", "", "ccc dd", "é e"]
    joined = "\n\n".join(lines)  # one id per character: chunk k is characters [k*size, (k+1)*size)
    docs = chunk_documents(lines, char_tokenizer, chunk_size=size)
    assert [d.text for d in docs] == [joined[i:i + size] for i in range(0, len(joined), size)]
    assert sum(d.words for d in docs) == len(joined) + len(docs)
    assert sum(d.bytes for d in docs) == len(joined.encode("utf-8")) == len(joined) + 1


def test_no_text_no_documents_and_a_bad_size(char_tokenizer):
    assert chunk_documents([], char_tokenizer) == []
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_documents(["a"], char_tokenizer, chunk_size=0)


def test_the_lm_eval_entry_points(char_tokenizer_dir, tmp_path):
    data = tmp_path / "lines.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["ab", "", "cdé"]), encoding="utf-8")
    split = wikitext_task.task_dataset(str(data), str(char_tokenizer_dir), 4, version=2.0, model="m")  # lm-eval's extras
    assert split["test"]["text"] == ["ab\n\n", "\n\ncd", "é"]
    doc = split["test"][0]
    assert wikitext_task.process_results(doc, [-3.0]) == {
        "word_perplexity": (-3.0, 5), "byte_perplexity": (-3.0, 4), "bits_per_byte": (-3.0, 4)}


def test_embedded_documents_with_smollm2_cut_where_the_ids_say(smollm2_auto_tokenizer):
    tok = smollm2_auto_tokenizer
    lines = load_lines("builtin")
    docs = chunk_documents(lines, tok)
    ids = tok("\n\n".join(lines), add_special_tokens=False).input_ids
    assert len(docs) == math.ceil(len(ids) / 2047) >= 3
    assert [tok(d.text, add_special_tokens=False).input_ids for d in docs[:-1]] == [
        ids[i:i + 2047] for i in range(0, 2047 * (len(docs) - 1), 2047)]  # SmolLM2 decodes and re-encodes exactly
    assert "".join(d.text for d in docs) == "\n\n".join(lines)


# -- sources ---------------------------------------------------------------------------------------------------
def test_local_copies_of_the_split(tmp_path):
    rows = [" = Robert Boulter = \n", "", " Robert Boulter is an English film , television and theatre actor .\n"]
    (tmp_path / "split.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows), encoding="utf-8")
    assert load_lines(str(tmp_path / "split.jsonl")) == rows
    (tmp_path / "wiki.test.raw.txt").write_text("".join(r or " \n" for r in rows), encoding="utf-8")
    assert load_lines(str(tmp_path / "wiki.test.raw.txt")) == rows  # a blank line is a row ""
    import datasets

    datasets.Dataset.from_dict({"text": rows}).to_parquet(str(tmp_path / "test.parquet"))
    assert load_lines(str(tmp_path / "test.parquet")) == rows
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": rows})}).save_to_disk(str(tmp_path / "saved"))
    assert load_lines(str(tmp_path / "saved")) == rows
    assert load_lines("builtin:2")[0].startswith("The Zen of Python")
    (tmp_path / "bad.jsonl").write_text('{"page": "x"}\n')
    with pytest.raises(AccuracyError, match="no string column 'text'"):
        load_lines(str(tmp_path / "bad.jsonl"))
    with pytest.raises(AccuracyError, match="--accuracy-wikitext PATH"):
        load_lines(str(tmp_path / "split.csv"))


def test_sources_defaults_hub_resources_and_missing_copies(tmp_path):
    hub = Sources.resolve(None, None)
    assert (hub.dataset, hub.tokenizer) == ("hub", "meta-llama/Llama-2-7b-hf")
    assert [(r.repo_id, r.repo_type) for r in hub.hub_resources()] == [
        ("meta-llama/Llama-2-7b-hf", "model"), ("Salesforce/wikitext", "dataset")]
    assert hub.hub_resources()[1].filename == "wikitext-2-raw-v1/test-00000-of-00001.parquet"
    local = Sources.resolve("builtin", str(tmp_path))
    assert local.hub_resources() == [] and local.local_problems() == []
    gone = Sources.resolve(str(tmp_path / "none.parquet"), str(tmp_path / "no-tokenizer"))
    problems = gone.local_problems()
    assert "chunk tokenizer folder" in problems[0] and "--accuracy-chunk-tokenizer" in problems[0]
    assert "none.parquet does not exist" in problems[1] and "--accuracy-wikitext" in problems[1]


def test_rendered_task_names_its_sources(tmp_path):
    path = render_task(tmp_path / "tasks", Sources.resolve("builtin:3", str(tmp_path)), chunk_size=5)
    text = path.read_text()
    assert "task: wikitext_tokens\n" in text and "${" not in text
    assert 'wikitext_source: "builtin:3"' in text and f'chunk_tokenizer: "{tmp_path}"' in text
    assert "chunk_size: 5" in text and (path.parent / "wikitext_tokens.py").is_file()


# -- the spec ------------------------------------------------------------------------------------------------------
def test_spec_keys_of_the_bounty_task(tmp_path):
    spec = resolve_spec(GateSpec.from_table({**S1_TABLE, "dataset": "split.parquet", "chunk_tokenizer": "${models_dir}/tok"}),
                        base_dir=tmp_path, variables={"models_dir": "/m", "suite_dir": str(tmp_path)})
    assert spec.dataset == str(tmp_path / "split.parquet") and spec.chunk_tokenizer == "/m/tok"
    assert "Llama-2-7b-hf" in task_label(GateSpec.from_table(S1_TABLE))
    with pytest.raises(AccuracyError, match="chunk_tokenizer belongs to task 'wikitext_tokens'"):
        GateSpec.from_table({**S1_TABLE, "task": "wikitext", "chunk_tokenizer": "x"})


# -- the task identity ---------------------------------------------------------------------------------------------
def test_baselines_of_both_models_carry_the_branch_fingerprint():
    assert baseline_bytes_per_word(GPTOSS) == pytest.approx(3.794, abs=5e-4)
    assert baseline_bytes_per_word(DSR1) == pytest.approx(3.794, abs=5e-4)
    assert baseline_bytes_per_word({"bits_per_byte": 1.0}) is None


@pytest.mark.parametrize("baselines", [GPTOSS, DSR1], ids=["gptoss", "dsr1"])
def test_identity_passes_3794_and_refuses_535(baselines):
    ok = check_identity("wikitext_tokens", 1_000_000, 3_794_000, 140, baselines)
    assert ok.task_bytes_per_word == 3.794 and abs(ok.relative_difference) < 0.001
    assert ok.baseline_bytes_per_word == pytest.approx(baseline_bytes_per_word(baselines))
    with pytest.raises(AccuracyError) as err:
        check_identity("wikitext", 1_000_000, 5_350_000, 62, baselines)
    message = str(err.value)
    assert "the accuracy task 'wikitext' is not the task the baseline was measured with" in message
    assert "5.3500 bytes per word" in message and f"{baseline_bytes_per_word(baselines):.4f}" in message
    assert "wikitext_tokens" in message


def test_identity_tolerance_is_a_tenth_of_a_percent():
    base = baseline_bytes_per_word(GPTOSS)
    assert check_identity("t", 10_000, round(base * 10_000 * 1.0009), 1, GPTOSS) is not None
    with pytest.raises(AccuracyError, match="at most 0.1% allowed"):
        check_identity("t", 10_000, round(base * 10_000 * 1.0012), 1, GPTOSS)
    assert check_identity("t", 10, 38, 1, {"bits_per_byte": 2.0}) is None  # nothing to compare with


def test_identity_of_an_lm_eval_task_counts_with_its_own_process_results(char_tokenizer_dir, tmp_path):
    from lm_eval.tasks import TaskManager

    data = tmp_path / "lines.jsonl"
    data.write_text(json.dumps({"text": "abcd" * 10}) + "\n", encoding="utf-8")  # 40 chars: 4 chunks of 10
    folder = render_task(tmp_path / "tasks", Sources.resolve(str(data), str(char_tokenizer_dir)), chunk_size=10).parent
    task = TaskManager(include_path=str(folder), include_defaults=False).load(["wikitext_tokens"])["tasks"][
        "wikitext_tokens"]
    bpw = 40 / 44  # 40 bytes over 4 x (10 + BOS) words
    fitting = {"word_perplexity": 2 ** (1.5 * bpw), "bits_per_byte": 1.5}
    identity = task_identity(GateSpec.from_table({**S1_TABLE, "baselines": fitting}), task)
    assert (identity.documents, identity.words, identity.bytes) == (4, 44, 40)
    with pytest.raises(AccuracyError, match="not the task the baseline was measured with"):
        task_identity(GateSpec.from_table(S1_TABLE), task)


# -- the hub access check ------------------------------------------------------------------------------------------
class _GatedHub(BaseHTTPRequestHandler):
    """The hub's answer for a gated file: 401 without a token, 403 with one (X-Error-Code: GatedRepo)."""

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(403 if self.headers.get("Authorization") else 401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gated_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


RES = HubResource("imx-test/gated-tokenizer", "model", "tokenizer_config.json", "chunk tokenizer",
                  "--accuracy-chunk-tokenizer PATH")
SECRET = "hf_imxTestTokenNeverPrinted"


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def test_gated_without_a_token_says_set_the_token(gated_hub, no_token):
    message = hub_problem(RES, endpoint=gated_hub)
    assert "no Hugging Face token is set (the repository is gated)" in message
    assert "set HF_TOKEN" in message and "huggingface-cli login" in message
    assert "https://huggingface.co/imx-test/gated-tokenizer" in message and "--accuracy-chunk-tokenizer" in message


def test_gated_with_a_token_says_accept_the_licence_and_never_prints_it(gated_hub, no_token, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    message = hub_problem(RES, endpoint=gated_hub)
    assert "has no access to it (gated repository, HTTP 403)" in message
    assert "accept its licence at https://huggingface.co/imx-test/gated-tokenizer" in message
    assert SECRET not in message and "hf_imx" not in message


def test_no_route_says_network(no_token):
    from pytest_inferencemax.serve.server import free_port

    message = hub_problem(RES, endpoint=f"http://127.0.0.1:{free_port()}", timeout=5)
    assert "the hub cannot be reached" in message and "no network route" in message
    assert "--accuracy-chunk-tokenizer PATH (a local copy)" in message


def test_offline_mode_is_named(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE is set" in hub_problem(RES)


def test_a_missing_tokenizer_is_a_usage_error_before_any_server(pytester, monkeypatch):
    """Collection refuses the run (exit code 4) naming what is missing; no server is launched (the recipe's
    launcher would fail: nothing listens)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    table = ('[stages.cpu.accuracy]\ntask = "wikitext_tokens"\nrule = "max_ratio"\nthreshold_multiplier = 1.03\n'
             'dataset = "builtin"\nchunk_tokenizer = "imx-test/gated-tokenizer"\n'
             'baselines = { bits_per_byte = 1.0, word_perplexity = 10.0 }\n')
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [1], prompts_per_conc = 1 }") + table)
    (d / "test_mini.py").write_text(SUITE_TEST)
    result = pytester.runpytest_inprocess("mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "chunk tokenizer imx-test/gated-tokenizer" in errors[0], result.errlines
    assert "HF_HUB_OFFLINE is set" in errors[0] and "[stages.cpu.accuracy]" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    from pytest_inferencemax.serve.server import free_port

    # --skip-accuracy: nothing to check (the points then fail on the closed --server-url, not at collection)
    skipped = pytester.runpytest_inprocess(
        "mini", "--models-dir", str(MODELS_DIR), "-p", "no:cacheprovider", "--skip-accuracy", "--server-url",
        f"http://127.0.0.1:{free_port()}", "--server-ready-timeout", "0.5", "--results-dir", str(pytester.path))
    assert skipped.ret == pytest.ExitCode.TESTS_FAILED and "chunk tokenizer" not in skipped.stdout.str()


# -- the identity in the record and the report ---------------------------------------------------------------------
def test_identity_lands_in_the_record_and_report_md():
    from record_factory import point_record

    from pytest_inferencemax.gate.accuracy import GateResult, judge
    from pytest_inferencemax.publish.report import _accuracy_lines
    from pytest_inferencemax.results.build import accuracy_fields
    from pytest_inferencemax.results.record import PointRecord

    spec = GateSpec.from_table({**S1_TABLE, "chunk_tokenizer": "/m/llama2"})
    values = {"bits_per_byte": 2.05, "byte_perplexity": 4.15, "word_perplexity": 220.0}
    identity = check_identity(spec.task, 1_000_000, 3_794_000, 140, spec.baselines)
    gate = GateResult(spec=spec, task_name=spec.task, values=values, verdicts=judge(spec, values), elapsed_s=1.0,
                      lm_eval_version="0.4.13", task_config={}, model_args={}, dataset="hub", dataset_sha256="ab",
                      chunk_tokenizer="/m/llama2", identity=identity)
    assert gate.message().splitlines()[-1].startswith("task identity: 3.7940 bytes per word over 140 documents")
    assert json.loads(json.dumps(gate.to_dict()))["identity"]["baseline_bytes_per_word"] == identity.baseline_bytes_per_word
    accuracy, validation = accuracy_fields(gate, None)
    assert validation.task_bytes_per_word == 3.794 and validation.chunk_tokenizer == "/m/llama2"
    rec = PointRecord.from_json(point_record(accuracy=accuracy, accuracy_validation=validation).to_json())
    assert rec.accuracy_validation.baseline_bytes_per_word == identity.baseline_bytes_per_word  # a round trip
    (line,) = _accuracy_lines([rec])
    assert "gate wikitext_tokens PASSED" in line
    assert f"task identity: 3.7940 bytes per word (baseline's {identity.baseline_bytes_per_word:.4f})" in line
