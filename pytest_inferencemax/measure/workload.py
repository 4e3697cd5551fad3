"""The random workload: prompts of the bounty client's lengths, reproducible from a seed.

Semantics of the bounty client's ``sample_random_requests`` (kimbochen/bench_serving; docs/metrics.md):
``np.random.seed(seed)``, then per-request input and output lengths uniform over the integers
``[int(L * range_ratio), L]`` and one offset per prompt, in that order; prompt ``i`` starts as the token
ids ``(offset_i + i + j) % vocab`` for ``j < len_i``, decoded to text. Then, as the stage's client commit
did (``[stages.X.client] prompt_builder``):

- ``499c0b1`` (stage 1): re-encoded once (``add_special_tokens=False``), truncated to the target, decoded;
  the client's ``prompt_len`` is the target, not measured, and a prompt is never padded;
- ``ee86723`` (stage 2): re-encoded and padded (random ids drawn from the same global ``np.random`` stream,
  continuing after the offsets) or truncated, up to ``max_retries`` times, until it encodes to the target;
  ``prompt_len`` is the final prompt's measured length.

The draws come from a legacy ``RandomState(seed)``, which gives what the global ``np.random`` gives after
``np.random.seed(seed)``, so the same seed and tokenizer give the reference's prompts, string for string.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Protocol, Sequence

import numpy as np

Builder = Literal["499c0b1", "ee86723"]  # plan/suite.py's ClientVersion.prompt_builder


class Tokenizer(Protocol):
    """What the workload needs from a tokenizer (Hugging Face tokenizers fit)."""

    vocab_size: int

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def token_counter(tokenizer: Tokenizer) -> Callable[[str], int]:
    """How many tokens ``tokenizer`` makes of a generated text, special tokens left out (the count a record's
    output tokens are checked against, and parity's)."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of the workload."""

    prompt: str
    prompt_len: int  # the client's prompt length (its input_lens): ee86723 measures it, 499c0b1 takes the target
    output_len: int  # max_tokens asked of the server (exact with ignore_eos)
    target_prompt_len: int
    text_len: int | None = None  # the final prompt's own token count where prompt_len is not it (499c0b1)


@dataclass(frozen=True)
class Workload:
    requests: tuple[RequestSpec, ...]
    seed: int
    range_ratio: float
    builder: Builder = "ee86723"

    @property
    def length_mismatches(self) -> int:
        """How many prompts do not encode to their target length (ee86723: after every retry; 499c0b1:
        after its one re-encode, although the client counts them at the target)."""
        return sum((r.prompt_len if r.text_len is None else r.text_len) != r.target_prompt_len
                   for r in self.requests)


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
    builder: Builder = "ee86723",
) -> Workload:
    """Build ``num_prompts`` random-token prompts as the ``builder`` commit's client does (module doc)."""
    if input_len < 1 or output_len < 1 or num_prompts < 1:
        raise ValueError("input_len, output_len and num_prompts must each be at least 1")
    if builder not in ("499c0b1", "ee86723"):
        raise ValueError(f"unknown prompt builder {builder!r}: 499c0b1 or ee86723")
    rng = np.random.RandomState(seed)  # the reference's global stream after np.random.seed(seed)
    vocab = int(tokenizer.vocab_size)
    prefix = rng.randint(0, vocab, size=prefix_len).tolist()
    input_lens = sample_lengths(rng, input_len, range_ratio, num_prompts)
    output_lens = sample_lengths(rng, output_len, range_ratio, num_prompts)
    offsets = rng.randint(0, vocab, size=num_prompts)

    def first_ids(i: int) -> list[int]:
        start = int(offsets[i]) + i  # Python ints: the same values as numpy's, without a numpy scalar per token
        return prefix + [(start + j) % vocab for j in range(input_lens[i])]

    targets = [prefix_len + n for n in input_lens]
    if builder == "499c0b1":
        requests = _once_truncated(tokenizer, first_ids, targets, output_lens)
    else:
        requests = _padded(tokenizer, first_ids, targets, output_lens, rng, vocab, max_retries)
    return Workload(tuple(requests), seed, range_ratio, builder)


def _once_truncated(tokenizer: Tokenizer, first_ids, targets: list[int], output_lens: list[int]) -> list[RequestSpec]:
    """499c0b1: decode, re-encode once, keep the first ``target`` ids, decode; ``prompt_len`` is the target.
    The final text is encoded once more here (the client never does) for our own length check."""
    many = _Many(tokenizer)
    requests = []
    for lo in range(0, len(targets), PREFETCH_CHUNK):
        hi = min(lo + PREFETCH_CHUNK, len(targets))
        encoded = many.encode(many.decode([first_ids(i) for i in range(lo, hi)]))
        prompts = many.decode([ids[:t] for ids, t in zip(encoded, targets[lo:hi])])
        for i, prompt, ids in zip(range(lo, hi), prompts, many.encode(prompts)):
            requests.append(RequestSpec(prompt, targets[i], int(output_lens[i]), targets[i], text_len=len(ids)))
    return requests


def _padded(tokenizer: Tokenizer, first_ids, targets: list[int], output_lens: list[int],
            rng: np.random.RandomState, vocab: int, max_retries: int) -> list[RequestSpec]:
    """ee86723: re-encode, pad from ``rng`` (the stream the lengths came from) or truncate, until the length
    is the target or ``max_retries`` passes are done; ``prompt_len`` is the final prompt's length."""
    ahead = _Ahead(tokenizer)
    requests = []
    for i, target in enumerate(targets):
        if ahead.batched and i % PREFETCH_CHUNK == 0:
            hi = min(i + PREFETCH_CHUNK, len(targets))
            ahead.prefetch([first_ids(k) for k in range(i, hi)], targets[i:hi], rng, vocab)
        ids = first_ids(i)
        prompt = ahead.decode(ids)
        prompt_len = None
        for _ in range(max_retries):
            ids = ahead.encode(prompt)
            if len(ids) < target:
                ids.extend(rng.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                ids = ids[:target]
            else:
                prompt_len = target  # this prompt encodes to exactly its target
                break
            prompt = ahead.decode(ids)
        if prompt_len is None:
            prompt_len = len(ahead.encode(prompt))
        requests.append(RequestSpec(prompt, prompt_len, int(output_lens[i]), target))
    return requests


PREFETCH_CHUNK = 256  # prompts whose encodings are worked out ahead at a time


class _Ahead:
    """The workload's encode/decode, with answers worked out ahead in batches when the tokenizer has
    ``encode_batch``/``decode_batch`` (the lean tokenizer: every core at once). Ahead of each chunk of
    prompts it encodes their first texts and guesses their first retry from a copy of the random stream
    (padding draws continue it, prompt after prompt, so a copy taken at the chunk's start draws the same ids);
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

    def prefetch(self, firsts: list[list[int]], targets: list[int], rng: np.random.RandomState, vocab: int) -> None:
        self.encoded.clear()
        self.decoded.clear()
        guess = np.random.RandomState()
        guess.set_state(rng.get_state())  # a copy: the real draws happen in the loop, in the same order
        retries = []
        for ids, target in zip(self._learn(firsts), targets):
            if len(ids) < target:
                retries.append(ids + guess.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                retries.append(ids[:target])
        if retries:
            self._learn(retries)


class _Many:
    """Encode and decode lists: in batches where the tokenizer has them (the lean tokenizer), else one by one."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tok = tokenizer
        self.batched = callable(getattr(tokenizer, "encode_batch", None)) and callable(
            getattr(tokenizer, "decode_batch", None))

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.batched:
            return self.tok.encode_batch(texts, add_special_tokens=False)
        return [self.tok.encode(t, add_special_tokens=False) for t in texts]

    def decode(self, many_ids: list[list[int]]) -> list[str]:
        return self.tok.decode_batch(many_ids) if self.batched else [self.tok.decode(ids) for ids in many_ids]


def load_tokenizer(name_or_path: str, *, note: str = ""):
    """The served model's tokenizer: a lean fast tokenizer (``tokenizers`` on its tokenizer.json, no transformers
    or torch), from a local folder or the Hugging Face cache (offline when HF_HUB_OFFLINE=1); see tokenizer.py.
    Raises TokenizerError (a ConfigError and a RuntimeError): one line naming the path and the fix; ``note``
    says, for a folder that is not there, how its path came about (e.g. where ``${models_dir}`` came from)."""
    from pytest_inferencemax.measure.tokenizer import load_tokenizer as load_lean

    return load_lean(name_or_path, note=note)
