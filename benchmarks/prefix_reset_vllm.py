"""--reset-prefix-cache on real vLLM: the embedded suite with prefix caching on (its recipe without
``--no-enable-prefix-caching``), one point run twice (``--repeat 2``, the same seeded prompts in both rounds),
once with ``--reset-prefix-cache off`` and once with ``auto``; prints each round's prefix-cache counters.

    .venv/bin/python benchmarks/prefix_reset_vllm.py [--conc 2] [--isl 1024] [--keep DIR]

Each run launches its own vLLM CPU server (about 30 s on 2 cores) with the suite's other flags.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


WORKLOAD = "{ isl = 128, osl = 64, conc = [1, 2, 4], prompts_per_conc = 10 }"


def suite_with_caching(folder: Path, isl: int) -> Path:
    """The embedded suite, prefix caching on, its one workload at ``isl`` tokens: vLLM caches whole blocks only and
    recomputes a prompt's last token, so a prompt must span more than one block (16 on GPUs, 128 on the CPU build)
    to hit the cache at all; ISL 128 cannot."""
    d = folder / "smollm2-cache"
    d.mkdir(parents=True)
    text = (REPO / "suites" / "smollm2-cpu" / "suite.toml").read_text()
    assert '  "--no-enable-prefix-caching",\n' in text and WORKLOAD in text
    text = text.replace('  "--no-enable-prefix-caching",\n', "").replace(
        WORKLOAD, f"{{ isl = {isl}, osl = 16, conc = [1, 2, 4], prompts_per_conc = 4 }}")
    (d / "suite.toml").write_text(text)
    (d / "test_cache.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                     "# noqa: F401\n")
    return d


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conc", type=int, default=2)
    p.add_argument("--isl", type=int, default=1024)
    p.add_argument("--keep", type=Path, help="write the runs here (default: a temporary folder)")
    args = p.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="prefix-reset-"))
    suite = suite_with_caching(root, args.isl)
    for mode in ("off", "auto"):
        run = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
                              "-k", f"c{args.conc}]", "--skip-accuracy", "--repeat", "2", "--reset-prefix-cache", mode,
                              "--models-dir", str(REPO / ".cache" / "models"), "--results-dir", str(root),
                              "--run-id", mode, "--telemetry-interval", "0"], cwd=REPO, capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-2000:])
            return 1
        for n in (1, 2):
            rec = json.loads((root / mode / "rounds" / f"smollm2-{args.isl}-16-c{args.conc}.r{n}.json").read_text())
            c = rec["inferencemax"]["prefix_cache"]
            print(f"--reset-prefix-cache {mode:4} round {n}: query_tokens {c.get('query_tokens')}, hit_tokens "
                  f"{c.get('hit_tokens')}, reset {c.get('reset')}, median TTFT {rec['median_ttft_ms']:.1f} ms"
                  + (f"; WARNING: {c['warning'][:60]}..." if c.get("warning") else ""))
    print(f"runs in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
