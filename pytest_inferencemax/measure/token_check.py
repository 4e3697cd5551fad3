"""Token-count truth: what the server says it did against what was asked, per point.

Three checks, each recorded with counts and a few examples:

- output: ``usage.completion_tokens`` against the ``max_tokens`` asked (with ``ignore_eos`` the two
  must match; a shorter answer means the server stopped early, a longer one miscounts);
- input: ``usage.prompt_tokens`` against the prompt's length as the workload built it (a chat
  template, a BOS token or another tokenizer on the server changes it);
- re-tokenization: the generated text's tokens counted here against ``usage.completion_tokens``,
  the error that has inflated other tools' output figures several-fold.

Two of them decide whether the point measured the workload it names (``failures``, which fail the
point): the server's prompt token counts more than ``WORKLOAD_TOLERANCE`` off the client's on
average (after the special tokens the tokenizer adds, e.g. a BOS), and, when ``ignore_eos`` was
asked, output token counts more than that off ``max_tokens`` on average.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from pydantic import Field

from pytest_inferencemax.measure.loadtypes import RequestResult
from pytest_inferencemax.plan.part import Part as _Part

MAX_EXAMPLES = 5
# Re-tokenizing decoded text merges or splits some tokens (SmolLM2's random-ish output on vLLM:
# 0.96x); a gap beyond 10% is the kind that has inflated other tools' figures.
RETOKENIZE_TOLERANCE = 0.10
# Mean relative gap between what the server counted and what the point asked, beyond which the point
# did not run the workload it names (issue 11). A BOS the server adds is accounted for separately.
WORKLOAD_TOLERANCE = 0.01

PROMPT_CAUSE = (
    "the tokenizer that built the prompts is not the one the server uses (known case: transformers 5 rebuilds "
    "DeepSeek-R1's tokenizer so that a 7,000-token prompt becomes ~35,000 tokens on the server), or the server "
    "applies a chat template. Fix: give --tokenizer the very tokenizer folder the server loads, or install the "
    "transformers version the server runs with (e.g. pip install 'transformers<5')")
OUTPUT_CAUSE = (
    "ignore_eos was asked, so every request should have produced exactly max_tokens tokens: the server ignores "
    "ignore_eos, stops at its context limit or at a stop string, or counts tokens otherwise. Fix: check that the "
    "engine honours ignore_eos (vLLM and SGLang do), that --extra-body does not override it, and that "
    "ISL + OSL fits the server's --max-model-len")


class TokenCheck(_Part):
    """The server's token counts against the workload's: ``failures`` make the point invalid."""

    output: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    without_usage: int = 0
    retokenized: Optional[dict[str, Any]] = None
    flagged: list[str] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)
    # False: the requests did not ask for ignore_eos (an engine that refuses it): a request may stop before max_tokens,
    # so OSL is an upper bound and the output counts are checked for not exceeding it; None: asked (records before)
    ignore_eos: Optional[bool] = None


def _compare(pairs: list[tuple[int, int]], what: str) -> dict[str, Any]:
    diffs = [(want, got) for want, got in pairs if want != got]
    return {
        "requests_checked": len(pairs), "mismatched_requests": len(diffs),
        "expected_tokens": sum(w for w, _ in pairs), "reported_tokens": sum(g for _, g in pairs),
        "examples": [{"expected": w, "reported": g} for w, g in diffs[:MAX_EXAMPLES]],
        "what": what,
    }


def mean_relative_gap(pairs: Sequence[tuple[int, int]]) -> float:
    """Mean over requests of |reported - expected| / expected (0 without pairs)."""
    gaps = [abs(got - want) / want for want, got in pairs if want > 0]
    return sum(gaps) / len(gaps) if gaps else 0.0


def _judge_outputs(out: dict[str, Any], pairs: list[tuple[int, int]], ignore_eos: bool, failures: list[str],
                   flagged: list[str]) -> None:
    """The output counts: with ignore_eos, exactly max_tokens each; without (an engine that refuses it), at most."""
    if ignore_eos and out["mean_relative_gap"] > WORKLOAD_TOLERANCE:
        failures.append(
            f"the server produced {out['reported_tokens']} output tokens where {out['expected_tokens']} were asked "
            f"({100 * out['mean_relative_gap']:.1f}% off per request on average, limit "
            f"{100 * WORKLOAD_TOLERANCE:g}%): the point did not run the OSL it names. Probable cause: " + OUTPUT_CAUSE)
    if not ignore_eos and (over := sum(1 for want, got in pairs if got > want)):
        failures.append(f"{over} of {out['requests_checked']} requests got more output tokens than max_tokens: the "
                        "server does not honour max_tokens")
    if not ignore_eos and out["mismatched_requests"]:
        flagged.append(f"without ignore_eos (the engine refuses it), {out['mismatched_requests']} of "
                       f"{out['requests_checked']} requests stopped before max_tokens ({out['reported_tokens']} "
                       f"output tokens of {out['expected_tokens']} asked): OSL is an upper bound for this point")
    elif out["mismatched_requests"]:
        flagged.append(f"{out['mismatched_requests']} of {out['requests_checked']} requests got another number of "
                       f"output tokens than asked ({out['reported_tokens']} reported, {out['expected_tokens']} asked)")


def check_tokens(results: Sequence[RequestResult], count_tokens: Callable[[str], int] | None, *,
                 special_tokens: int = 0, ignore_eos: bool = True) -> TokenCheck:
    """The point's ``token_check`` record: ``flagged`` lists what looks wrong, in words; ``failures``
    what makes the point invalid (its workload is not the one it names).

    ``special_tokens``: tokens the tokenizer adds to a prompt (a BOS), which the server counts and the
    reference client's prompt length does not."""
    ok = [r for r in results if r.success]
    out_pairs = [(r.output_len_requested, r.output_tokens) for r in ok if r.output_tokens is not None]
    in_pairs = [(r.prompt_len + special_tokens, r.server_prompt_tokens) for r in ok
                if r.server_prompt_tokens is not None]
    out = _compare(out_pairs, "usage.completion_tokens against max_tokens")
    inp = _compare(in_pairs, "usage.prompt_tokens against the workload's prompt length"
                   + (f" plus {special_tokens} special token(s)" if special_tokens else ""))
    out["mean_relative_gap"], inp["mean_relative_gap"] = mean_relative_gap(out_pairs), mean_relative_gap(in_pairs)
    failures = []
    if inp["mean_relative_gap"] > WORKLOAD_TOLERANCE:
        failures.append(
            f"the server counted {inp['reported_tokens']} prompt tokens where the client sent "
            f"{inp['expected_tokens']} ({100 * inp['mean_relative_gap']:.1f}% off per request on average, "
            f"limit {100 * WORKLOAD_TOLERANCE:g}%): the point did not run the ISL it names. Probable cause: "
            + PROMPT_CAUSE)
    flagged: list[str] = []
    _judge_outputs(out, out_pairs, ignore_eos, failures, flagged)
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
    zero = sum(1 for r in ok if r.reference_output_tokens == 0 and r.output_tokens != 0)
    if zero:  # no usage chunk without choices: the bounty client's count stays at its default, 0
        flagged.append(f"{zero} requests had no usage in a chunk without choices: the bounty client counts 0 output "
                       f"tokens for them, and so do the reference keys (total_output_tokens, output_throughput, "
                       f"TPOT); inferencemax.total_output_tokens_counted has the server's usage or the re-tokenized "
                       f"text instead")
    retokenized = sum(1 for r in ok if r.reference_output_tokens is None)
    if retokenized:
        flagged.append(f"{retokenized} requests had a usage chunk without completion_tokens: their output tokens "
                       f"were counted by re-tokenizing the text, as the bounty client does")
    return TokenCheck(**record, flagged=flagged, failures=failures, **({} if ignore_eos else {"ignore_eos": False}))
