#!/usr/bin/env bash
# Command 2: set up, then run the project's tests (unit tests and end-to-end tests against a
# real vLLM CPU server). pytest's exit code passes through: 5 (no tests ran) fails like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest tests "$@"
