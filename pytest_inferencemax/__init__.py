"""pytest-inferencemax: an open InferenceMAX-style LLM serving benchmark runner, as a pytest plugin.

Data flow, one module each: suite (config) -> points -> recipe -> server -> workload ->
loadgen -> metrics -> record -> summary (curve/verdict/submission come with later issues).
"""
__version__ = "0.1.0"
