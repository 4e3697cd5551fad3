"""What each engine a suite names can and cannot do, as data: the plugin asks here instead of testing names.

``transformers`` is Hugging Face's ``transformers serve`` (transformers 5: FastAPI + Uvicorn, continuous batching
with paged attention under ``--continuous-batching``), read at 5.19 (``transformers/cli/serving/completion.py``):
it answers 422 to fields it does not know (``ignore_eos``: the same is asked through a request's
``generation_config`` with an empty ``eos_token_id``), takes ``echo``/``logprobs``/``stream_options`` without
acting on them (no prompt logprobs; usage always comes in the last chunk, beside its ``choices``), serves no
``/metrics``, and answers a request for another model than the one it was started with (``serve <model>``) with an
error: its served model name is that path or id (docs/engines.md)."""
from __future__ import annotations

from dataclasses import dataclass


VLLM_IGNORE_EOS = (("ignore_eos", True),)  # vLLM's and SGLang's sampling parameter
# transformers serve: a request's generation_config (JSON) replaces the model's, and an empty eos_token_id list never
# stops a sequence, so max_tokens is reached as with ignore_eos (its continuous batching ignores min_new_tokens)
TRANSFORMERS_IGNORE_EOS = (("generation_config", '{"eos_token_id": []}'),)


@dataclass(frozen=True)
class EngineTraits:
    # the request fields that make every request produce exactly max_tokens tokens; () when the engine has none
    ignore_eos_fields: tuple[tuple[str, object], ...] = VLLM_IGNORE_EOS
    prompt_logprobs: bool = True  # answers echo + logprobs with the prompt's logprobs (loglikelihood gate tasks)
    metrics: bool = True  # serves a Prometheus /metrics page (telemetry, prefix-cache counters)
    note: str = ""  # what the record and the plan say about it


ENGINES: dict[str, EngineTraits] = {
    "vllm": EngineTraits(),
    "sglang": EngineTraits(),
    "atom": EngineTraits(),
    "other": EngineTraits(),
    "transformers": EngineTraits(
        ignore_eos_fields=TRANSFORMERS_IGNORE_EOS, prompt_logprobs=False, metrics=False,
        note="transformers serve answers ignore_eos with HTTP 422 (asked through generation_config's eos_token_id "
             "instead), returns no prompt logprobs and serves no /metrics"),
}


def traits(engine: str | None) -> EngineTraits:
    """The engine's traits; an engine not listed is taken to behave as vLLM does."""
    return ENGINES.get(engine or "other", ENGINES["other"])
