"""Small real models that ship inside PyPI packages, made loadable by vLLM offline."""
