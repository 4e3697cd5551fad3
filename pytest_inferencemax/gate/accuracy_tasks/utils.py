"""Functions for ``wikitext_local.yaml``: lm-eval's own wikitext ones, imported, not copied.

Same detokenizer and the same word/byte counts as lm-eval's ``wikitext`` task, so the metrics
mean exactly what the bounty's gate measured; only the documents differ.
"""
from lm_eval.tasks.wikitext.preprocess_wikitext import process_results, wikitext_detokenizer

__all__ = ["process_results", "wikitext_detokenizer"]
