"""pytest-inferencemax: an open InferenceMAX-style LLM serving benchmark runner, as a pytest plugin.

The pipeline, one package a stage (imports run downwards only): plan (suite, points, recipe) -> serve (the
server's lifecycle and API) -> measure (workload, clients and their schedule, metrics, the accuracy gate) ->
results (the typed record, the run folder) -> judge (baselines, curves, verdicts) -> publish (report, plots,
submission); plugin/ and cli/ on top.
"""
__version__ = "0.1.0"
