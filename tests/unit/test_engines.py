"""Engines as data (serve/engines.py), and the token check for an engine that refuses ignore_eos: outputs are held
to at most max_tokens (never silently unchecked), and what stopped early is said."""
from __future__ import annotations

from pytest_inferencemax.measure.loadtypes import ClientConfig, RequestResult
from pytest_inferencemax.measure.token_check import check_tokens
from pytest_inferencemax.measure.workload import RequestSpec
from pytest_inferencemax.serve.engines import traits


def test_what_each_engine_can_do_and_how_each_is_asked_for_exact_lengths():
    tf = traits("transformers")
    assert (tf.prompt_logprobs, tf.metrics) == (False, False) and "422" in tf.note
    assert traits("vllm").ignore_eos_fields == (("ignore_eos", True),) and traits(None) == traits("other")
    spec = RequestSpec(prompt="p", prompt_len=1, output_len=8, target_prompt_len=1)
    vllm = ClientConfig("http://h", "m")
    assert vllm.payload(spec)["ignore_eos"] is True and vllm.asks_ignore_eos(vllm.payload(spec))
    hf = ClientConfig("http://h", "m", ignore_eos_fields=tf.ignore_eos_fields)
    body = hf.payload(spec)  # transformers serve: 422 for ignore_eos; an empty eos_token_id list never stops
    assert "ignore_eos" not in body and body["generation_config"] == '{"eos_token_id": []}'
    assert hf.asks_ignore_eos(body)
    overridden = ClientConfig("http://h", "m", extra_body={"ignore_eos": False})
    assert not overridden.asks_ignore_eos(overridden.payload(spec))  # --extra-body took it back
    none = ClientConfig("http://h", "m", ignore_eos=False)
    assert "ignore_eos" not in none.payload(spec) and not none.asks_ignore_eos(none.payload(spec))


def results(*outputs: int) -> list[RequestResult]:
    return [RequestResult(prompt_len=4, output_len_requested=8, success=True, output_tokens=n, server_prompt_tokens=4,
                          reference_output_tokens=n) for n in outputs]


def test_without_ignore_eos_early_stops_are_said_and_more_than_asked_fails():
    early = check_tokens(results(8, 3, 8), None, ignore_eos=False)
    assert early.ignore_eos is False and early.failures == []
    assert early.flagged == ["without ignore_eos (the engine refuses it), 1 of 3 requests stopped before max_tokens "
                             "(19 output tokens of 24 asked): OSL is an upper bound for this point"]
    over = check_tokens(results(8, 9), None, ignore_eos=False)
    assert over.failures == ["1 of 2 requests got more output tokens than max_tokens: the server does not honour "
                             "max_tokens"]
    strict = check_tokens(results(8, 3, 8), None)  # with ignore_eos the same counts are another workload
    assert strict.ignore_eos is None and strict.failures and "did not run the OSL it names" in strict.failures[0]
