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

    @property
    def total_output_tokens_requested(self) -> int:
        return sum(r.output_len for r in self.requests)


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

    requests = []
    for i in range(num_prompts):
        target = prefix_len + input_lens[i]
        ids = prefix + [int((offsets[i] + i + j) % vocab) for j in range(input_lens[i])]
        prompt = tokenizer.decode(ids)
        for _ in range(max_retries):
            ids = tokenizer.encode(prompt, add_special_tokens=False)
            if len(ids) < target:
                ids.extend(pad_rng.randint(0, vocab, size=target - len(ids)).tolist())
            elif len(ids) > target:
                ids = ids[:target]
            else:
                break
            prompt = tokenizer.decode(ids)
        prompt_len = len(tokenizer.encode(prompt, add_special_tokens=False))
        requests.append(RequestSpec(prompt, prompt_len, int(output_lens[i]), target))
    return Workload(tuple(requests), seed, range_ratio)


def load_tokenizer(name_or_path: str):
    """The served model's tokenizer through transformers (offline when HF_HUB_OFFLINE=1)."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise RuntimeError("transformers is needed to build the random workload: pip install transformers") from exc
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"cannot load the tokenizer {name_or_path!r}: {exc}. Give a local folder with "
            "--tokenizer PATH, or make it available in the Hugging Face cache."
        ) from exc
