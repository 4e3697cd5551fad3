"""The lean tokenizer (pytest_inferencemax/measure/tokenizer.py) against transformers' AutoTokenizer: the same ids,
the same text, the same random workload, without importing transformers or torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_inferencemax.measure.tokenizer import LeanTokenizer, clean_up_tokenization, load_tokenizer
from pytest_inferencemax.measure.workload import load_tokenizer as workload_load_tokenizer, random_workload

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"
HUB_CACHE = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME") or Path.home() / ".cache"
                                                        / "huggingface") / "hub")


def hub_tokenizers() -> list[Path]:
    """Snapshots in the Hugging Face hub cache that hold a tokenizer.json."""
    return sorted(HUB_CACHE.glob("models--*/snapshots/*/tokenizer.json")) if HUB_CACHE.is_dir() else []


# SmolLM2 as it is, and variants of it whose tokenizer_config.json exercises what AutoTokenizer applies on top
VARIANTS = ["smollm2", "smollm2-config-tokens", "smollm2-bos-eos-template", "smollm2-split-special", "wordpiece-cleanup"]
HUB = [pytest.param(str(p.parent), id="hub-" + p.parts[-4].removeprefix("models--")) for p in hub_tokenizers()] or [
    pytest.param(None, id="hub-cache", marks=pytest.mark.skip(
        reason=f"no other tokenizer available offline: no tokenizer.json under {HUB_CACHE}"))]

TEXTS = [
    "", "hello", " hello", "Hello, world! How's it going? I'm fine, you're kind, they've gone, don't .",
    "  leading, internal    runs\n\n\n\ttabs\t\t and\r\nCRLF   trailing   ",
    "unicode: naïve café — 日本語のテキスト, 한국어, emoji 🤖🚀👩‍👩‍👧, combining e\u0301, RTL עברית, zero width \u200b\ufeff",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>x<|endoftext|>",
    "half <|im_start special <|im_end", " <|im_start|> spaced <|im_end|> ", "<|extra_config|> and <|tool|>!",
    "[CLS] the cat sat . [SEP] [UNK] ?", "control \x00\x07\x1b chars", "numbers 3.14159 1,000,000 0x1F",
    "def f(x):\n    return x ** 2  # code\n", "word " * 400,
]


def _smollm2_dir() -> Path:
    if not (MODEL_DIR / "tokenizer.json").is_file():
        from pytest_inferencemax.serve.models.smollm2 import ensure_model

        ensure_model(MODEL_DIR)
    return MODEL_DIR


def _variant(name: str, root: Path) -> Path:
    if name == "smollm2":
        return _smollm2_dir()
    out = root / name
    out.mkdir()
    if name == "wordpiece-cleanup":  # a non-BPE model: transformers 5 applies clean_up_tokenization_spaces
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        texts = [t for t in TEXTS if t.isascii()] * 3
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]", "[CLS]", "[SEP]"]))
        tok.save(str(out / "tokenizer.json"))
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": True,
               "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
        (out / "tokenizer_config.json").write_text(json.dumps(cfg))
        return out
    src = _smollm2_dir()
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    if name == "smollm2-config-tokens":  # tokens only the config knows: added as AutoTokenizer adds them
        cfg["added_tokens_decoder"] = {"49152": {"content": "<|extra_config|>", "lstrip": False, "rstrip": False,
                                                 "normalized": False, "single_word": False, "special": True}}
        cfg["additional_special_tokens"] = ["<|tool|>", "<|im_start|>"]
        cfg["mask_token"] = "<|mask|>"
    elif name == "smollm2-bos-eos-template":  # a post-processor that adds BOS/EOS; flags transformers 5 drops
        tj = json.loads((src / "tokenizer.json").read_text())
        tj["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
                               "<|im_end|>": {"id": "<|im_end|>", "ids": [2], "tokens": ["<|im_end|>"]}}}
        (out / "tokenizer.json").write_text(json.dumps(tj))
        cfg.update(add_bos_token=False, add_eos_token=True, clean_up_tokenization_spaces=True)
    elif name == "smollm2-split-special":
        cfg["split_special_tokens"] = True
    (out / "tokenizer_config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, smollm2_auto_tokenizer):
    """name -> (lean tokenizer, AutoTokenizer) for every variant, loaded offline (SmolLM2's AutoTokenizer: the
    session's, tests/unit/conftest.py)."""
    made: dict = {"smollm2": (load_tokenizer(str(_smollm2_dir())), smollm2_auto_tokenizer)}
    root = tmp_path_factory.mktemp("tokenizers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        def get(name: str, path: str | None = None):
            if name not in made:
                path = path or str(_variant(name, root))
                made[name] = (load_tokenizer(path), AutoTokenizer.from_pretrained(path))
            return made[name]

        yield get


def _random_ids(n: int, size: int, seed: int) -> list[list[int]]:
    rng = np.random.RandomState(seed)
    return [rng.randint(0, size, size=int(rng.randint(1, 200))).tolist() for _ in range(n)]


def check_same(lean, auto) -> None:
    assert isinstance(lean, LeanTokenizer)
    assert lean.vocab_size == auto.vocab_size and len(lean) == len(auto)
    prompts = [r.prompt for r in random_workload(auto, input_len=128, output_len=8, num_prompts=24, seed=3).requests]
    for text in TEXTS + prompts:
        for special in (True, False):
            assert lean.encode(text, add_special_tokens=special) == auto.encode(text, add_special_tokens=special), \
                (text[:80], special)
        assert lean(text).input_ids == auto(text).input_ids
        ids = auto.encode(text)
        assert lean.decode(ids) == auto.decode(ids), text[:80]
    for ids in _random_ids(64, len(auto), seed=1):  # any ids, added and special ones included
        assert lean.decode(ids) == auto.decode(ids)


@pytest.mark.parametrize("name", VARIANTS)
def test_same_ids_and_text_as_autotokenizer(pairs, name):
    lean, auto = pairs(name)
    check_same(lean, auto)


@pytest.mark.parametrize("path", HUB)
def test_same_ids_and_text_as_autotokenizer_for_the_hub_cache(pairs, path):
    lean, auto = pairs(path, path)
    check_same(lean, auto)


def test_the_variants_exercise_what_they_claim(pairs):
    lean, _ = pairs("smollm2-config-tokens")
    # the config's added token, then the named special tokens, then the extra ones, as transformers orders them
    assert lean.encode("<|extra_config|><|tool|><|mask|>", add_special_tokens=False) == [49152, 49154, 49153]
    lean, _ = pairs("smollm2-bos-eos-template")
    assert lean.encode("hi") == [1, *lean.encode("hi", add_special_tokens=False), 2]  # tokenizer.json's template
    assert lean.decode(lean.encode("a , b .")) == "<|im_start|>a , b .<|im_end|>"  # no cleanup for BPE
    lean, _ = pairs("smollm2-split-special")
    assert 1 not in lean.encode("<|im_start|>")
    lean, _ = pairs("wordpiece-cleanup")
    assert lean.decode(lean.encode("the cat , sat .", add_special_tokens=False)) == "the cat, sat."


@pytest.mark.parametrize("kwargs", [dict(input_len=128, output_len=64, num_prompts=64, seed=0),
                                    dict(input_len=300, output_len=16, num_prompts=32, seed=7, range_ratio=0.5,
                                         prefix_len=20)])
def test_random_workload_is_byte_identical_with_either_tokenizer(pairs, kwargs):
    lean, auto = pairs("smollm2")
    mine, theirs = random_workload(lean, **kwargs), random_workload(auto, **kwargs)
    assert [r.prompt.encode() for r in mine.requests] == [r.prompt.encode() for r in theirs.requests]
    assert mine == theirs


def sequential_workload(tok, *, input_len, num_prompts, range_ratio=1.0, seed=0, prefix_len=0, max_retries=10):
    """random_workload's prompts (ee86723) one call at a time, before batching: padding continues the stream."""
    rng = np.random.RandomState(seed)
    vocab = int(tok.vocab_size)
    prefix = rng.randint(0, vocab, size=prefix_len).tolist()
    input_lens = rng.randint(max(int(input_len * range_ratio), 1), input_len + 1, size=num_prompts).tolist()
    rng.randint(max(int(8 * range_ratio), 1), 8 + 1, size=num_prompts)  # the output lengths' draws
    offsets = rng.randint(0, vocab, size=num_prompts)
    out = []
    for i in range(num_prompts):
        target = prefix_len + input_lens[i]
        ids = prefix + [int((offsets[i] + i + j) % vocab) for j in range(input_lens[i])]
        prompt = tok.decode(ids)
        for _ in range(max_retries):
            ids = tok.encode(prompt, add_special_tokens=False)
            if len(ids) < target:
                ids.extend(rng.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                ids = ids[:target]
            else:
                break
            prompt = tok.decode(ids)
        out.append((prompt, len(tok.encode(prompt, add_special_tokens=False))))
    return out


@pytest.mark.parametrize("kwargs", [dict(input_len=128, num_prompts=600, seed=1),  # 3 chunks, wrong guesses
                                    dict(input_len=64, num_prompts=40, seed=2, range_ratio=0.3, prefix_len=5),
                                    dict(input_len=64, num_prompts=30, max_retries=1),
                                    dict(input_len=64, num_prompts=10, max_retries=0)])
def test_batched_workload_equals_the_one_call_at_a_time_algorithm(kwargs):
    lean = load_tokenizer(str(_smollm2_dir()))
    assert lean.encode_batch(["a b", "<|im_start|>c"], add_special_tokens=False) == [lean.encode("a b", False),
                                                                                   lean.encode("<|im_start|>c", False)]
    w = random_workload(lean, output_len=8, **kwargs)
    assert [(r.prompt, r.prompt_len) for r in w.requests] == sequential_workload(lean, **kwargs)


def test_transformers_4_semantics_on_request(tmp_path):
    """With transformers 4 installed: Llama-style classes set BOS/EOS from the flags, BPE cleanup applies."""
    shutil.copy(_smollm2_dir() / "tokenizer.json", tmp_path / "tokenizer.json")
    cfg = {"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
           "add_eos_token": True, "clean_up_tokenization_spaces": True}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    v4, v5 = load_tokenizer(str(tmp_path), transformers_version=4), load_tokenizer(str(tmp_path), transformers_version=5)
    body = v5.encode("hi")
    assert v4.encode("hi") == [1, *body, 2] and v4.encode("hi", add_special_tokens=False) == body
    assert v4.decode(v4.encode("a , b .", add_special_tokens=False)) == "a, b."
    assert v5.decode(v5.encode("a , b .")) == "a , b ."
    cfg = {"bos_token": "<|im_start|>", "add_bos_token": False}  # no class named: config.json's model_type (llama)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert load_tokenizer(str(tmp_path), transformers_version=4).encode("hi") == body
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|im_start|>"}))
    assert load_tokenizer(str(tmp_path), transformers_version=4).encode("hi") == [1, *body]
    assert clean_up_tokenization("I 'm here , do n't go !") == "I'm here, don't go!"


def test_a_slow_only_tokenizer_falls_back_to_transformers_with_a_note(tmp_path, capsys, monkeypatch):
    """A folder without tokenizer.json (GPT-2 style vocab.json + merges.txt) loads through transformers."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = json.loads((_smollm2_dir() / "tokenizer.json").read_text())["model"]
    (tmp_path / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    tok = workload_load_tokenizer(str(tmp_path))
    note = capsys.readouterr().err
    assert "has no tokenizer.json" in note and note.count("\n") == 1
    assert not isinstance(tok, LeanTokenizer)
    assert tok.encode("hello world", add_special_tokens=False) == load_tokenizer(str(_smollm2_dir())).encode("hello world")


def _fake_hub(cache: Path, repo: str, src: Path, files: list[str]) -> None:
    base = cache / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    (base / "snapshots" / commit).mkdir(parents=True)
    for name in files:
        shutil.copy(src / name, base / "snapshots" / commit / name)


def _start(code: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """``python -c code args`` in a fresh process (what it imports is its own) with ``env``, left running."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


CLIENT_PATH = """
import sys
from pytest_inferencemax.cli import bench
from pytest_inferencemax.measure import loadgen, multiclient, runner
from pytest_inferencemax.plugin import session  # the client's modules
from pytest_inferencemax.results import build
from pytest_inferencemax.measure.workload import load_tokenizer, random_workload
for name in sys.argv[1:]:  # one line per tokenizer; the modules imported by all of them
    tok = load_tokenizer(name)
    w = random_workload(tok, input_len=64, output_len=8, num_prompts=8)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers"})
    print(type(tok).__name__, w.length_mismatches, heavy, tok.encode("hello world"))
"""


def test_the_client_path_imports_neither_torch_nor_transformers(tmp_path):
    _fake_hub(tmp_path, "example/smol", _smollm2_dir(), ["tokenizer.json", "tokenizer_config.json", "config.json"])
    # from the folder, then by repository id from the Hugging Face cache, online but cached: no network needed
    # (the hub's address leads nowhere here)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    online = _start(CLIENT_PATH, str(_smollm2_dir()), "example/smol",
                    env={**env, "HF_HUB_CACHE": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9"})
    # the same from the cache, offline, by repository id: in a process of its own beside the first
    offline = _start(CLIENT_PATH, "example/smol", env={**os.environ, "HF_HUB_CACHE": str(tmp_path),
                                                       "HF_HUB_OFFLINE": "1"})
    online, offline = _finish(online), _finish(offline)
    assert online.returncode == 0, online.stderr
    folder, hub_online = online.stdout.splitlines()
    assert folder.startswith("LeanTokenizer 0 [] "), online.stdout  # no torch, no transformers
    assert hub_online == folder
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == folder + "\n"


MISSING = """
import sys
from pytest_inferencemax.measure.workload import load_tokenizer
for name in sys.argv[1:]:
    try:
        load_tokenizer(name)
    except RuntimeError as exc:
        print(f"raised {type(exc).__name__}: {exc}", file=sys.stderr)
    else:
        print(f"loaded {name!r}")
"""


def test_errors_name_the_path_and_the_fix(tmp_path):
    missing = ("example/not-cached", str(tmp_path / "no-such-folder"), "not a repo id!")
    res = _finish(_start(MISSING, *missing, env={**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}))
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr  # every one raised
    errors = [line for line in res.stderr.splitlines() if line.startswith("raised ")]
    assert len(errors) == len(missing), res.stderr  # one line each
    for name, error in zip(missing, errors):
        assert f"cannot load the tokenizer {name!r}" in error
        assert "--tokenizer PATH" in error
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=r"cannot load the tokenizer .*--tokenizer PATH"):
        workload_load_tokenizer(str(tmp_path))
