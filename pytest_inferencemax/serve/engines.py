"""What each engine a suite names can and cannot do, as data: the plugin asks here instead of testing names.

``transformers`` is Hugging Face's ``transformers serve`` (transformers 5: FastAPI + Uvicorn, continuous batching
with paged attention under ``--continuous-batching``), read at 5.19 (``transformers/cli/serving/completion.py``):
it answers 422 to fields it does not know (``ignore_eos``), takes ``echo``/``logprobs``/``stream_options`` without
acting on them (no prompt logprobs; usage always comes in the last chunk, beside its ``choices``), serves no
``/metrics``, and answers a request for another model than the one it was started with (``serve <model>``) with an
error: its served model name is that path or id (docs/engines.md)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineTraits:
    ignore_eos: bool = True  # takes ignore_eos: every request produces exactly max_tokens tokens
    prompt_logprobs: bool = True  # answers echo + logprobs with the prompt's logprobs (loglikelihood gate tasks)
    metrics: bool = True  # serves a Prometheus /metrics page (telemetry, prefix-cache counters)
    note: str = ""  # what the record and the plan say about it


ENGINES: dict[str, EngineTraits] = {
    "vllm": EngineTraits(),
    "sglang": EngineTraits(),
    "atom": EngineTraits(),
    "other": EngineTraits(),
    "transformers": EngineTraits(
        ignore_eos=False, prompt_logprobs=False, metrics=False,
        note="transformers serve takes no ignore_eos (HTTP 422), returns no prompt logprobs and serves no /metrics"),
}


def traits(engine: str | None) -> EngineTraits:
    """The engine's traits; an engine not listed is taken to behave as vLLM does."""
    return ENGINES.get(engine or "other", ENGINES["other"])
