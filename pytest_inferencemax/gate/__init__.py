"""The accuracy gate, beside measure: lm-eval against the running server (``accuracy.py``), the bounty's
stage-1 task ``wikitext_tokens`` (``wikitext_task.py``, ``accuracy_tasks/``), the task's identity check against
the baseline's bytes per word, local documents and Hugging Face hub access. The gate's spec is ``plan.rules``.
"""
