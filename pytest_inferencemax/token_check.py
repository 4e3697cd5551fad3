"""Token-count truth: what the server says it did against what was asked, per point.

Three checks, each recorded with counts and a few examples:

- output: ``usage.completion_tokens`` against the ``max_tokens`` asked (with ``ignore_eos`` the two
  must match; a shorter answer means the server stopped early, a longer one miscounts);
- input: ``usage.prompt_tokens`` against the prompt's length as the workload built it (a chat
  template, a BOS token or another tokenizer on the server changes it);
- re-tokenization: the generated text's tokens counted here against ``usage.completion_tokens``,
  the error that has inflated other tools' output figures several-fold.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .loadgen import RequestResult

MAX_EXAMPLES = 5
# Re-tokenizing decoded text merges or splits some tokens (SmolLM2's random-ish output on vLLM:
# 0.96x); a gap beyond 10% is the kind that has inflated other tools' figures.
RETOKENIZE_TOLERANCE = 0.10


def _compare(pairs: list[tuple[int, int]], what: str) -> dict[str, Any]:
    diffs = [(want, got) for want, got in pairs if want != got]
    return {
        "requests_checked": len(pairs), "mismatched_requests": len(diffs),
        "expected_tokens": sum(w for w, _ in pairs), "reported_tokens": sum(g for _, g in pairs),
        "examples": [{"expected": w, "reported": g} for w, g in diffs[:MAX_EXAMPLES]],
        "what": what,
    }


def check_tokens(results: Sequence[RequestResult], count_tokens: Callable[[str], int] | None) -> dict[str, Any]:
    """The point's ``token_check`` record; ``flagged`` lists the checks that failed, in words."""
    ok = [r for r in results if r.success]
    out = _compare([(r.output_len_requested, r.output_tokens) for r in ok if r.output_tokens is not None],
                   "usage.completion_tokens against max_tokens")
    inp = _compare([(r.prompt_len, r.server_prompt_tokens) for r in ok if r.server_prompt_tokens is not None],
                   "usage.prompt_tokens against the workload's prompt length")
    flagged = []
    if out["mismatched_requests"]:
        flagged.append(f"{out['mismatched_requests']} of {out['requests_checked']} requests got another number of "
                       f"output tokens than asked ({out['reported_tokens']} reported, {out['expected_tokens']} asked)")
    if inp["mismatched_requests"]:
        flagged.append(f"the server counted other prompt lengths for {inp['mismatched_requests']} of "
                       f"{inp['requests_checked']} requests ({inp['reported_tokens']} tokens, "
                       f"{inp['expected_tokens']} sent)")
    record: dict[str, Any] = {"output": out, "input": inp, "without_usage": sum(r.output_tokens is None for r in ok)}
    if count_tokens is not None:
        with_usage = [r for r in ok if r.output_tokens is not None]
        retok = sum(count_tokens(r.generated_text) for r in with_usage)
        usage = sum(r.output_tokens or 0 for r in with_usage)
        ratio = retok / usage if usage else None
        record["retokenized"] = {"tokens": retok, "usage_tokens": usage, "ratio": ratio}
        if ratio is not None and abs(ratio - 1.0) > RETOKENIZE_TOLERANCE:
            flagged.append(f"re-tokenizing the generated text gives {ratio:.2f}x the server's usage count: "
                           f"figures from client-side token counts would be off by as much")
    if record["without_usage"]:
        flagged.append(f"{record['without_usage']} requests had no usage from the server: their output tokens "
                       f"were counted by re-tokenizing the text")
    record["flagged"] = flagged
    return record
