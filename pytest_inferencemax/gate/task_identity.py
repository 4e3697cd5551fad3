"""Is the gate's task the one its baseline was measured with? Bytes per word, from both sides.

lm-eval's word_perplexity is exp(-LL/words) and bits_per_byte is -LL/(bytes·ln 2), both over the whole
dataset, so log2(word_perplexity) / bits_per_byte = bytes/words: a property of the task's documents and of
how it counts words, whatever the model. A baseline's three figures therefore fix the bytes per word of the
task they were measured on (the bounty's stage 1: 3.794, bytes per Llama-2 token; stock lm-eval wikitext
counts whitespace words: about 5.35). :func:`check_identity` compares that with the bytes per word of the
task's own documents, counted as its ``process_results`` counts them, and refuses a task that differs."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_inferencemax.errors import AccuracyError

TOLERANCE = 0.001  # 0.1 %: the baselines' 4-5 significant digits move their ratio by < 0.02 %


@dataclass(frozen=True)
class TaskIdentity:
    """The task's bytes per word against the baseline's (``relative_difference`` = task / baseline - 1)."""

    documents: int
    words: int
    bytes: int
    task_bytes_per_word: float
    baseline_bytes_per_word: float
    relative_difference: float
    tolerance: float = TOLERANCE

    def line(self) -> str:
        return (f"task identity: {self.task_bytes_per_word:.4f} bytes per word over {self.documents} documents "
                f"({self.bytes} bytes / {self.words} words), baseline {self.baseline_bytes_per_word:.4f} "
                f"({100 * self.relative_difference:+.3f}%, within {100 * self.tolerance:g}%)")


def baseline_bytes_per_word(baselines: Mapping[str, float]) -> float | None:
    """log2(word_perplexity) / bits_per_byte of a baseline, or None when it lacks either figure."""
    wp, bpb = baselines.get("word_perplexity"), baselines.get("bits_per_byte")
    if wp is None or bpb is None or wp <= 1 or bpb <= 0:
        return None
    return math.log2(wp) / bpb


def check_identity(task: str, words: int, nbytes: int, documents: int, baselines: Mapping[str, float],
                   tolerance: float = TOLERANCE) -> TaskIdentity | None:
    """The identity of a task whose documents hold ``words`` words and ``nbytes`` bytes, against ``baselines``;
    None when the baselines cannot tell (no word_perplexity or bits_per_byte). Raises :class:`AccuracyError`
    when the two differ by more than ``tolerance`` (relative)."""
    base = baseline_bytes_per_word(baselines)
    if base is None:
        return None
    if words <= 0 or nbytes <= 0:
        raise AccuracyError(f"the accuracy task {task!r} has no words or no bytes to score ({documents} documents)")
    ours = nbytes / words
    diff = ours / base - 1
    if abs(diff) > tolerance:
        raise AccuracyError(
            f"the accuracy task {task!r} is not the task the baseline was measured with: its documents have "
            f"{ours:.4f} bytes per word ({nbytes} bytes / {words} words), the baseline's figures imply "
            f"{base:.4f} (log2(word_perplexity {baselines['word_perplexity']}) / bits_per_byte "
            f"{baselines['bits_per_byte']}), {100 * diff:+.2f}% apart (at most {100 * tolerance:g}% allowed); "
            "the bounty's stage-1 baselines (3.794) were measured with the wikitext task of "
            "baberabb/lm-evaluation-harness@wikitext-tokens: task = \"wikitext_tokens\" with Llama-2-7b-hf's "
            "tokenizer over wikitext-2-raw-v1's test split (stock lm-eval wikitext gives about 5.35)")
    return TaskIdentity(documents, words, nbytes, ours, base, diff, tolerance)
