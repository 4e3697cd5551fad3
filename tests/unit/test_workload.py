"""The random workload, with SmolLM2's real tokenizer."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pytest_inferencemax.measure.workload import RequestSpec, Workload, random_workload, sample_lengths

MODEL_DIR = Path(__file__).resolve().parents[2] / ".cache" / "models" / "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def tokenizer(smollm2_auto_tokenizer, smollm2_model):
    assert smollm2_model == MODEL_DIR
    return smollm2_auto_tokenizer  # transformers' AutoTokenizer, loaded once per session (tests/unit/conftest.py)


def encode_len(tok, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False))


def reference_draws(seed: int, isl: int, osl: int, ratio: float, n: int, vocab: int, prefix_len: int = 0):
    """The reference client's draws, written out independently of the module."""
    rng = np.random.RandomState(seed)
    prefix = rng.randint(0, vocab, size=prefix_len).tolist()
    input_lens = rng.randint(int(isl * ratio), isl + 1, size=n)
    output_lens = rng.randint(int(osl * ratio), osl + 1, size=n)
    offsets = rng.randint(0, vocab, size=n)
    return prefix, input_lens.tolist(), output_lens.tolist(), offsets.tolist()


# --- exact lengths ---------------------------------------------------------------------------


@pytest.mark.parametrize("isl", [128, 1000])
def test_every_prompt_has_exactly_the_target_length(tokenizer, isl):
    w = random_workload(tokenizer, input_len=isl, output_len=64, num_prompts=24, range_ratio=1.0, seed=0)
    assert isinstance(w, Workload)
    assert len(w.requests) == 24
    assert w.seed == 0 and w.range_ratio == 1.0
    for r in w.requests:
        assert isinstance(r, RequestSpec)
        assert r.target_prompt_len == isl
        assert r.prompt_len == isl
        # Counted again here, independently of the module's own count.
        assert encode_len(tokenizer, r.prompt) == isl
        assert r.output_len == 64
    assert w.length_mismatches == 0
    assert sum(r.output_len for r in w.requests) == 24 * 64


def test_prompts_differ_from_each_other(tokenizer):
    w = random_workload(tokenizer, input_len=128, output_len=8, num_prompts=16, seed=0)
    assert len({r.prompt for r in w.requests}) == 16


def test_exact_lengths_with_range_ratio(tokenizer):
    w = random_workload(tokenizer, input_len=200, output_len=50, num_prompts=40, range_ratio=0.5, seed=3)
    _, input_lens, output_lens, _ = reference_draws(3, 200, 50, 0.5, 40, tokenizer.vocab_size)
    assert [r.target_prompt_len for r in w.requests] == input_lens
    assert [r.output_len for r in w.requests] == output_lens
    for r in w.requests:
        assert 100 <= r.target_prompt_len <= 200
        assert 25 <= r.output_len <= 50
        assert r.prompt_len == r.target_prompt_len == encode_len(tokenizer, r.prompt)
    assert w.length_mismatches == 0
    assert sum(r.output_len for r in w.requests) == sum(output_lens)
    assert len(set(input_lens)) > 1  # the ratio really varied the lengths


def test_prefix_adds_to_the_target(tokenizer):
    w = random_workload(tokenizer, input_len=128, output_len=8, num_prompts=6, seed=2, prefix_len=16)
    for r in w.requests:
        assert r.target_prompt_len == 144
        assert r.prompt_len == 144 == encode_len(tokenizer, r.prompt)
    assert w.length_mismatches == 0


def test_length_mismatches_counts_prompts_that_missed(tokenizer):
    # With no retries the prompt is the decoded id sequence as drawn; SmolLM2 re-encodes
    # such text to another length, and the workload must say so rather than hide it.
    w = random_workload(tokenizer, input_len=128, output_len=8, num_prompts=10, seed=0, max_retries=0)
    missed = [r for r in w.requests if encode_len(tokenizer, r.prompt) != 128]
    assert missed  # the premise of this test
    assert all(r.prompt_len == encode_len(tokenizer, r.prompt) for r in w.requests)
    assert w.length_mismatches == len(missed)


# --- reproducibility -------------------------------------------------------------------------


def test_same_seed_gives_identical_workloads(tokenizer):
    kwargs = dict(input_len=300, output_len=40, num_prompts=12, range_ratio=0.7, seed=1234)
    a = random_workload(tokenizer, **kwargs)
    b = random_workload(tokenizer, **kwargs)
    assert a.requests == b.requests
    assert [r.prompt for r in a.requests] == [r.prompt for r in b.requests]


def test_different_seed_gives_different_prompts(tokenizer):
    a = random_workload(tokenizer, input_len=128, output_len=16, num_prompts=8, seed=0)
    b = random_workload(tokenizer, input_len=128, output_len=16, num_prompts=8, seed=1)
    assert all(x.prompt != y.prompt for x, y in zip(a.requests, b.requests))
    assert {r.prompt for r in a.requests}.isdisjoint({r.prompt for r in b.requests})


# --- reference draws -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7, 2024])
def test_draws_match_the_reference_order(tokenizer, seed):
    vocab = tokenizer.vocab_size
    assert vocab == 49152
    n, isl, osl, ratio = 10, 64, 32, 0.5
    _, input_lens, output_lens, offsets = reference_draws(seed, isl, osl, ratio, n, vocab)
    # max_retries=0 leaves each prompt as the decoded first id sequence, so the offsets show.
    w = random_workload(tokenizer, input_len=isl, output_len=osl, num_prompts=n, range_ratio=ratio,
                        seed=seed, max_retries=0)
    assert [r.target_prompt_len for r in w.requests] == input_lens
    assert [r.output_len for r in w.requests] == output_lens
    for i, r in enumerate(w.requests):
        ids = [(offsets[i] + i + j) % vocab for j in range(input_lens[i])]
        assert r.prompt == tokenizer.decode(ids), i


def test_draws_match_the_reference_with_a_prefix(tokenizer):
    vocab = tokenizer.vocab_size
    prefix, input_lens, output_lens, offsets = reference_draws(5, 40, 20, 0.5, 4, vocab, prefix_len=8)
    w = random_workload(tokenizer, input_len=40, output_len=20, num_prompts=4, range_ratio=0.5, seed=5,
                        prefix_len=8, max_retries=0)
    assert [r.target_prompt_len for r in w.requests] == [8 + n for n in input_lens]
    assert [r.output_len for r in w.requests] == output_lens
    for i, r in enumerate(w.requests):
        ids = prefix + [(offsets[i] + i + j) % vocab for j in range(input_lens[i])]
        assert r.prompt == tokenizer.decode(ids), i


def test_retries_keep_the_reference_lengths(tokenizer):
    # The padding draws must not disturb the lengths, whatever the retries do.
    _, input_lens, output_lens, _ = reference_draws(11, 500, 100, 0.9, 8, tokenizer.vocab_size)
    w = random_workload(tokenizer, input_len=500, output_len=100, num_prompts=8, range_ratio=0.9, seed=11)
    assert [r.target_prompt_len for r in w.requests] == input_lens
    assert [r.output_len for r in w.requests] == output_lens


# --- the two clients' prompt builders, written out independently of the module --------------


def builder_ee86723(tok, seed: int, isl: int, osl: int, ratio: float, n: int, prefix_len: int = 0):
    """ee86723's sample_random_requests transcribed: padding ids continue the one global stream."""
    stream = np.random.RandomState(seed)  # np.random.seed(seed)
    vocab = tok.vocab_size
    prefix = stream.randint(0, vocab, size=prefix_len).tolist()
    input_lens = stream.randint(int(isl * ratio), isl + 1, size=n).tolist()
    output_lens = stream.randint(int(osl * ratio), osl + 1, size=n).tolist()
    offsets = stream.randint(0, vocab, size=n)
    out, padded = [], 0
    for i in range(n):
        target = prefix_len + input_lens[i]
        prompt = tok.decode(prefix + [(offsets[i] + i + j) % vocab for j in range(input_lens[i])])
        for _ in range(10):
            ids = tok.encode(prompt, add_special_tokens=False)
            if len(ids) < target:
                ids.extend(stream.randint(0, vocab, size=target - len(ids)).tolist())
                padded += 1
            elif len(ids) > target:
                ids = ids[:target]
            else:
                break
            prompt = tok.decode(ids)
        out.append((prompt, len(tok.encode(prompt, add_special_tokens=False)), output_lens[i]))
    return out, padded


def builder_499c0b1(tok, seed: int, isl: int, osl: int, ratio: float, n: int, prefix_len: int = 0):
    """499c0b1's sample_random_requests transcribed: one re-encode, truncated; prompt_len is the target."""
    stream = np.random.RandomState(seed)
    vocab = tok.vocab_size
    prefix = stream.randint(0, vocab, size=prefix_len).tolist()
    input_lens = stream.randint(int(isl * ratio), isl + 1, size=n)
    output_lens = stream.randint(int(osl * ratio), osl + 1, size=n)
    offsets = stream.randint(0, vocab, size=n)
    out = []
    for i in range(n):
        prompt = tok.decode(prefix + [(offsets[i] + i + j) % vocab for j in range(input_lens[i])])
        prompt = tok.decode(tok.encode(prompt, add_special_tokens=False)[:prefix_len + input_lens[i]])
        out.append((prompt, int(prefix_len + input_lens[i]), int(output_lens[i])))
    return out


_BUILT: dict = {}


def built(tok, **kwargs) -> Workload:
    """``random_workload(tok, **kwargs)``, built once per module: the builder tests below look at the same
    300-prompt workloads (``random_workload`` is deterministic: test_same_seed_gives_identical_workloads)."""
    key = (id(tok), tuple(sorted(kwargs.items())))
    if key not in _BUILT:
        _BUILT[key] = (tok, random_workload(tok, **kwargs))  # tok kept: its id stays its own
    return _BUILT[key][1]


@pytest.fixture(scope="module")
def lean():
    from pytest_inferencemax.measure.tokenizer import load_tokenizer

    return load_tokenizer(str(MODEL_DIR))


@pytest.mark.parametrize("isl, osl, n, ratio, seed", [(256, 32, 300, 0.8, 0), (1024, 128, 40, 0.8, 0),
                                                      (2000, 100, 12, 0.5, 7)])
def test_ee86723_pads_from_the_global_stream_as_the_client_does(tokenizer, lean, isl, osl, n, ratio, seed):
    expected, padded = builder_ee86723(tokenizer, seed, isl, osl, ratio, n)
    assert padded  # the premise: some prompt came out short and was padded
    for tok in (tokenizer, lean):  # one by one, and in batches worked out ahead (the lean tokenizer)
        w = built(tok, input_len=isl, output_len=osl, num_prompts=n, range_ratio=ratio, seed=seed,
                  builder="ee86723")
        assert [(r.prompt, r.prompt_len, r.output_len) for r in w.requests] == expected
        assert w.builder == "ee86723" and all(r.text_len is None for r in w.requests)


def test_ee86723_is_the_default_builder(tokenizer):
    kwargs = dict(input_len=256, output_len=8, num_prompts=60, range_ratio=0.8, seed=0)
    assert random_workload(tokenizer, **kwargs) == random_workload(tokenizer, builder="ee86723", **kwargs)


@pytest.mark.parametrize("isl, osl, n, ratio, seed", [(256, 32, 300, 0.8, 0), (2000, 100, 12, 0.5, 7)])
def test_499c0b1_truncates_once_and_counts_the_target(tokenizer, lean, isl, osl, n, ratio, seed):
    expected = builder_499c0b1(tokenizer, seed, isl, osl, ratio, n)
    for tok in (tokenizer, lean):
        w = built(tok, input_len=isl, output_len=osl, num_prompts=n, range_ratio=ratio, seed=seed,
                  builder="499c0b1")
        assert [(r.prompt, r.prompt_len, r.output_len) for r in w.requests] == expected
        assert all(r.prompt_len == r.target_prompt_len for r in w.requests)  # the client's count: the target
        # our own check measures the text: prompts whose one re-encode came out short are not padded
        measured = [encode_len(tokenizer, r.prompt) for r in w.requests]
        assert [r.text_len for r in w.requests] == measured
        assert w.length_mismatches == sum(m != r.target_prompt_len for m, r in zip(measured, w.requests)) > 0


def test_the_builders_differ_exactly_where_one_pass_missed_the_target(tokenizer):
    kwargs = dict(input_len=256, output_len=32, num_prompts=300, range_ratio=0.8, seed=0)
    a = built(tokenizer, builder="499c0b1", **kwargs)
    b = built(tokenizer, builder="ee86723", **kwargs)
    differ = {i for i, (x, y) in enumerate(zip(a.requests, b.requests)) if x.prompt != y.prompt}
    missed = {i for i, r in enumerate(a.requests) if r.text_len != r.target_prompt_len}  # 499c0b1 stopped short
    assert differ and differ == missed
    assert [r.output_len for r in a.requests] == [r.output_len for r in b.requests]


def test_unknown_builder_is_refused(tokenizer):
    with pytest.raises(ValueError, match="unknown prompt builder 'x'"):
        random_workload(tokenizer, input_len=8, output_len=8, num_prompts=1, builder="x")


# --- sample_lengths --------------------------------------------------------------------------


def test_sample_lengths_ratio_bounds_inclusive_and_reachable():
    rng = np.random.RandomState(0)
    values = sample_lengths(rng, 100, 0.8, 5000)
    assert len(values) == 5000
    assert all(isinstance(v, int) for v in values)
    assert min(values) == 80
    assert max(values) == 100
    assert set(values) == set(range(80, 101))


def test_sample_lengths_matches_randint():
    values = sample_lengths(np.random.RandomState(42), 1024, 0.8, 50)
    # int(1024 * 0.8) = int(819.2) = 819
    assert values == np.random.RandomState(42).randint(819, 1025, size=50).tolist()
    assert all(819 <= v <= 1024 for v in values)


def test_sample_lengths_ratio_one_gives_exactly_l():
    assert sample_lengths(np.random.RandomState(0), 100, 1.0, 200) == [100] * 200


def test_sample_lengths_ratio_zero_stops_at_one():
    # the reference would draw 0 (an empty prompt or max_tokens 0); we keep every length >= 1
    values = sample_lengths(np.random.RandomState(0), 3, 0.0, 400)
    assert set(values) == {1, 2, 3}


@pytest.mark.parametrize("ratio", [-0.1, 1.0001, 2.0, math.nan])
def test_sample_lengths_rejects_ratio_outside_unit_interval(ratio):
    with pytest.raises(ValueError, match="range ratio"):
        sample_lengths(np.random.RandomState(0), 100, ratio, 10)


def test_workload_rejects_bad_range_ratio(tokenizer):
    with pytest.raises(ValueError, match="range ratio"):
        random_workload(tokenizer, input_len=10, output_len=10, num_prompts=2, range_ratio=1.5)


# --- invalid arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(input_len=0, output_len=10, num_prompts=1),
    dict(input_len=-5, output_len=10, num_prompts=1),
    dict(input_len=10, output_len=0, num_prompts=1),
    dict(input_len=10, output_len=10, num_prompts=0),
])
def test_invalid_sizes_raise(tokenizer, kwargs):
    with pytest.raises(ValueError, match="at least 1"):
        random_workload(tokenizer, **kwargs)
