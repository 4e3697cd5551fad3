"""Repository-level pytest configuration.

The plugin itself is registered by the ``pytest11`` entry point (pyproject.toml); nothing is
imported here. This file keeps pytest away from folders that hold no tests of ours.
"""
collect_ignore = ["benchmarks", "docs", "scripts", "results", ".cache", ".venv"]
