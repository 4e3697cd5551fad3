"""The random workload: prompts of exact token lengths, reproducible from a seed.

Semantics of the InferenceMAX client (``sample_random_requests``, see
docs/metrics.md): per-request input and output lengths are drawn uniformly from the
integers ``[int(L * range_ratio), L]``; prompt ``i`` starts as the token ids
``(offset_i + i + j) % vocab`` for ``j < len_i``, is decoded to text, then re-encoded
and padded (random ids) or truncated up to ``max_retries`` times until its length is
exactly the target. The same seed gives the same prompts as the reference client:
the draws come from a legacy ``RandomState`` in the same order as its global ``np.random``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


class Tokenizer(Protocol):
    """What the workload needs from a tokenizer (Hugging Face tokenizers fit)."""

    vocab_size: int

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of the workload."""

    prompt: str
    prompt_len: int  # tokens, as the client's tokenizer counts the final prompt
    output_len: int  # max_tokens asked of the server (exact with ignore_eos)
    target_prompt_len: int


@dataclass(frozen=True)
class Workload:
    requests: tuple[RequestSpec, ...]
    seed: int
    range_ratio: float

    @property
    def length_mismatches(self) -> int:
        """How many prompts missed their target length after every retry."""
        return sum(r.prompt_len != r.target_prompt_len for r in self.requests)


def sample_lengths(rng: np.random.RandomState, length: int, range_ratio: float, n: int) -> list[int]:
    """Lengths uniform over the integers [int(length * range_ratio), length]."""
    if not 0.0 <= range_ratio <= 1.0:
        raise ValueError(f"range ratio must be within [0, 1], got {range_ratio}")
    # The reference allows a lower bound of 0 (an empty prompt, or max_tokens 0); we stop at 1.
    lower = max(int(length * range_ratio), 1)
    return rng.randint(lower, length + 1, size=n).tolist()


def random_workload(
    tokenizer: Tokenizer,
    *,
    input_len: int,
    output_len: int,
    num_prompts: int,
    range_ratio: float = 1.0,
    seed: int = 0,
    prefix_len: int = 0,
    max_retries: int = 10,
) -> Workload:
    """Build ``num_prompts`` random-token prompts of exact lengths (see module doc)."""
    if input_len < 1 or output_len < 1 or num_prompts < 1:
        raise ValueError("input_len, output_len and num_prompts must each be at least 1")
    rng = np.random.RandomState(seed)
    vocab = int(tokenizer.vocab_size)
    prefix = rng.randint(0, vocab, size=prefix_len).tolist()
    input_lens = sample_lengths(rng, input_len, range_ratio, num_prompts)
    output_lens = sample_lengths(rng, output_len, range_ratio, num_prompts)
    offsets = rng.randint(0, vocab, size=num_prompts)
    # Padding draws come from a second stream derived from (not advancing) the first, as the
    # reference client does, so the main stream's later draws stay the same however many retries run.
    pad_rng = np.random.RandomState(rng.get_state()[1][:4].tolist())

    def first_ids(i: int) -> list[int]:
        start = int(offsets[i]) + i  # Python ints: the same values as numpy's, without a numpy scalar per token
        return prefix + [(start + j) % vocab for j in range(input_lens[i])]

    ahead = _Ahead(tokenizer)
    requests = []
    for i in range(num_prompts):
        target = prefix_len + input_lens[i]
        if ahead.batched and i % PREFETCH_CHUNK == 0:
            hi = min(i + PREFETCH_CHUNK, num_prompts)
            ahead.prefetch([first_ids(k) for k in range(i, hi)], [prefix_len + n for n in input_lens[i:hi]], pad_rng, vocab)
        ids = first_ids(i)
        prompt = ahead.decode(ids)
        prompt_len = None
        for _ in range(max_retries):
            ids = ahead.encode(prompt)
            if len(ids) < target:
                ids.extend(pad_rng.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                ids = ids[:target]
            else:
                prompt_len = target  # this prompt encodes to exactly its target
                break
            prompt = ahead.decode(ids)
        if prompt_len is None:
            prompt_len = len(ahead.encode(prompt))
        requests.append(RequestSpec(prompt, prompt_len, int(output_lens[i]), target))
    return Workload(tuple(requests), seed, range_ratio)


PREFETCH_CHUNK = 256  # prompts whose encodings are worked out ahead at a time


class _Ahead:
    """The workload's encode/decode, with answers worked out ahead in batches when the tokenizer has
    ``encode_batch``/``decode_batch`` (the lean tokenizer: every core at once). Ahead of each chunk of
    prompts it encodes their first texts and guesses their first retry from a copy of the padding stream;
    the loop then takes an answer only for the very text (or ids) it asks about, so the prompts are the
    same as without it, and a wrong guess (a prompt needing a second retry, ~1%) only costs a plain call."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tok = tokenizer
        self.batched = callable(getattr(tokenizer, "encode_batch", None)) and callable(
            getattr(tokenizer, "decode_batch", None))
        self.encoded: dict[str, list[int]] = {}
        self.decoded: dict[tuple[int, ...], str] = {}

    def encode(self, text: str) -> list[int]:
        ids = self.encoded.pop(text, None)
        return self.tok.encode(text, add_special_tokens=False) if ids is None else ids

    def decode(self, ids: list[int]) -> str:
        text = self.decoded.pop(tuple(ids), None) if self.decoded else None
        return self.tok.decode(ids) if text is None else text

    def _learn(self, many_ids: list[list[int]]) -> list[list[int]]:
        texts = self.tok.decode_batch(many_ids)
        self.decoded.update(zip(map(tuple, many_ids), texts))
        encodings = self.tok.encode_batch(texts, add_special_tokens=False)
        self.encoded.update(zip(texts, encodings))
        return encodings

    def prefetch(self, firsts: list[list[int]], targets: list[int], pad_rng: np.random.RandomState, vocab: int) -> None:
        self.encoded.clear()
        self.decoded.clear()
        guess = np.random.RandomState()
        guess.set_state(pad_rng.get_state())
        retries = []
        for ids, target in zip(self._learn(firsts), targets):
            if len(ids) < target:
                retries.append(ids + guess.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                retries.append(ids[:target])
        if retries:
            self._learn(retries)


def load_tokenizer(name_or_path: str):
    """The served model's tokenizer: a lean fast tokenizer (``tokenizers`` on its tokenizer.json, no transformers
    or torch), from a local folder or the Hugging Face cache (offline when HF_HUB_OFFLINE=1); see tokenizer.py.
    Raises RuntimeError naming the path and the fix."""
    from pytest_inferencemax.measure.tokenizer import load_tokenizer as load_lean

    return load_lean(name_or_path)
