"""Functions of ``wikitext_tokens.yaml`` (the bounty's stage-1 task), imported from the package: lm-eval
loads this file from the include folder, by path, in the plugin's process or in ``lm_eval``'s own."""
from pytest_inferencemax.gate.wikitext_task import process_results, task_dataset

__all__ = ["process_results", "task_dataset"]
