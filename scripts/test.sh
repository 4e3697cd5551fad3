#!/usr/bin/env bash
# Command 2: set up, then run the project's tests (tests/unit, then tests/e2e against real vLLM
# CPU servers). pytest's exit code passes through: 5 (no tests ran) fails like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# No arguments: pyproject.toml's testpaths (tests/, both halves); `tests/unit` runs the fast half only.
# --durations=15: the 15 slowest tests, so a slow one shows up where it is added.
exec .venv/bin/python -m pytest -n 3 --dist loadgroup --durations=15 "$@"
