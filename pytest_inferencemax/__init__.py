"""pytest-inferencemax: an open InferenceMAX-style LLM serving benchmark runner, as a pytest plugin.

The pipeline, one package a stage (imports run downwards only, no circles): plan (suites and their rules,
points, recipes, the option table) -> serve (the server's lifecycle, API and observation) -> measure (workload,
clients and their schedule, figures, self-checks) beside gate (the lm-eval accuracy gate) -> results (the typed
record, the point pipeline, the run folder) -> judge (baselines, curves, verdicts) -> publish (report, plots,
submission); plugin/ and cli/ on top. README.md's Layout section has one line per stage.
"""
__version__ = "0.1.0"
