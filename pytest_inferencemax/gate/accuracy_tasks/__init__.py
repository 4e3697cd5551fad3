"""lm-eval task configs of the accuracy gate (package data), each a template rendered into an include folder.

- ``wikitext_tokens.yaml`` + ``wikitext_tokens.py``: the bounty's stage-1 task (the wikitext task of
  baberabb/lm-evaluation-harness@wikitext-tokens), rendered by
  :func:`pytest_inferencemax.gate.wikitext_task.render_task` with its dataset and chunk tokenizer.
- ``wikitext_local.yaml`` + ``utils.py``: lm-eval's stock wikitext task over a local ``.jsonl`` of pages,
  rendered by :func:`pytest_inferencemax.gate.accuracy.render_wikitext_task`.
"""
