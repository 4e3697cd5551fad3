#!/usr/bin/env bash
# Command 1: set up, then run the embedded suite (vLLM CPU + SmolLM2) end to end.
# Extra arguments go to pytest, e.g.: bash scripts/quickstart.sh -k c4
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest suites/smollm2-cpu "$@"
