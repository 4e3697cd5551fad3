#!/usr/bin/env bash
# Command 2: set up, then run the project's tests (tests/unit, then tests/e2e against real vLLM
# CPU servers). pytest's exit code passes through: 5 (no tests ran) fails like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Slurm tests (tests/e2e/test_slurm_e2e.py) start a real one-node Slurm from Debian's packages: installed
# here when missing and this is root with apt-get (as CI is); elsewhere those tests say how to install them.
if ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing slurm-wlm and munge (apt-get) for the Slurm tests"
        (DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1; }) \
            || echo "setup: could not install slurm-wlm and munge: the Slurm tests will fail saying so"
    fi
fi
# No arguments: pyproject.toml's testpaths (tests/, both halves); `tests/unit` runs the fast half only.
# --durations=15: the 15 slowest tests, so a slow one shows up where it is added.
exec .venv/bin/python -m pytest -n 3 --dist loadgroup --durations=15 "$@"
