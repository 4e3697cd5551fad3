"""The pieces of the client that need no server: the loop-lag limit and merge, and how several client processes
share a point. What the client measures against the calibration server (benchmarks/calibration_server.py), which
records when it really wrote each event, is checked in tests/e2e (it starts that server as a process)."""
from __future__ import annotations

import pytest

from pytest_inferencemax.measure.looplag import LoopLag, lag_limit_ms
from pytest_inferencemax.measure.multiclient import split
from calibration import specs


def test_lag_limit_and_merge():
    assert lag_limit_ms(4.0) == 1.0 and lag_limit_ms(100.0) == pytest.approx(5.0)
    merged = LoopLag.merge([LoopLag(10, 0.1, 0.5, 2.0), LoopLag(5, 0.3, 0.2, 9.0)])
    assert merged == LoopLag(15, 0.3, 0.5, 9.0)
    assert LoopLag.of([]) == LoopLag(0, 0.0, 0.0, 0.0)


def test_split_spreads_concurrency_requests_and_warmups():
    reqs = specs(10, 5)
    shares = split(5, reqs, 10, procs=2)
    assert [s.concurrency for s in shares] == [3, 2]
    assert [len(s.requests) for s in shares] == [5, 5]
    assert [s.warmups for s in shares] == [6, 4]
    assert len(split(2, reqs, 0, procs=8)) == 2  # never more processes than slots


def test_only_the_process_holding_the_first_request_sends_the_initial_test_request():
    reqs = specs(10, 5)
    assert [s.initial_test for s in split(6, reqs, 0, procs=3, initial_test=True)] == [True, False, False]
    assert split(6, reqs, 0, procs=3, initial_test=True)[0].requests[0] is reqs[0]
    assert [s.initial_test for s in split(6, reqs, 0, procs=3)] == [False, False, False]
    assert [s.initial_test for s in split(6, reqs, 0, procs=1, initial_test=True)] == [True]




def test_the_calibration_servers_tokenizer_json_count_is_autotokenizers(smollm2_model, smollm2_auto_tokenizer,
                                                                        tmp_path):
    """``--tokenizer`` on the calibration server counts a prompt with the ``tokenizers`` library over the folder's
    tokenizer.json (no transformers import at its start): the count AutoTokenizer gives, special tokens and all.
    Where transformers would rewrite the post-processor (a Llama-style ``add_bos_token``), it leaves that to it."""
    import json
    import shutil

    from calibration_server import tokenizer_json_counter

    count = tokenizer_json_counter(smollm2_model)
    texts = ["hello world", "", " leading space", "Ünïcödé ☃\n\nnext", "<|im_start|>user\nhi<|im_end|>",
             " ".join(["the", "cat", "12345", "\t", "ÿ"] * 40)]
    assert [count(t) for t in texts] == [len(smollm2_auto_tokenizer(t)["input_ids"]) for t in texts]
    llama_like = tmp_path / "llama-like"
    shutil.copytree(smollm2_model, llama_like)
    config = json.loads((llama_like / "tokenizer_config.json").read_text())
    (llama_like / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}))
    assert tokenizer_json_counter(llama_like) is None and tokenizer_json_counter(tmp_path / "none") is None
