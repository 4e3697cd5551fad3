"""lm-eval task configs of the accuracy gate that read a local dataset (package data).

``wikitext_local.yaml`` is a template: :func:`pytest_inferencemax.measure.accuracy.render_wikitext_task`
fills in the dataset path and writes it, with ``utils.py``, into a temporary include dir.
"""
