"""How `--repeat auto` decides: rounds used and wrong decisions, for a point at a known distance from
its baseline with a known round-to-round noise.

Each trial draws rounds from a normal distribution (mean = ratio x baseline, sd = noise x mean) and
feeds them through the plugin's own rounds plan (plugin/rounds.py), pooling (results/pool.py) and
decision (judge/decided.py) until the plan stops, exactly as a run does, only with drawn figures in
place of measured ones. It prints, per (true ratio, noise): the mean and maximum rounds used, the
share of points decided, and the share decided the wrong way (beats when the truth is below the
baseline or the reverse). A true ratio of 1.00 has no right answer: every decision there is a
false alarm, the 5 % the 95 % interval allows per look, compounded over looks.

    .venv/bin/python benchmarks/rounds_decisions.py --trials 1000 [--uncorrected]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from record_factory import point_record  # noqa: E402  (a real record's shape, figures replaced)
from pytest_inferencemax.judge.baseline import BaselineTable, comparison  # noqa: E402
from pytest_inferencemax.judge.decided import open_question  # noqa: E402
from pytest_inferencemax.plan.rules import parse_rule  # noqa: E402
from pytest_inferencemax.plugin.rounds import RoundsPlan  # noqa: E402
from pytest_inferencemax.results.pool import pool_rounds  # noqa: E402

BASE = 1000.0
RULE = parse_rule({"rule": "beat_baseline_share", "metric": "tput_per_gpu"})
TABLE = BaselineTable.model_validate({
    "source": {"title": "synthetic", "origin": "benchmark", "recorded": "2026", "group": "b200_baseline_nv1126",
               "prefix": "b200", "tag": "1126"},
    "models": {"gptoss": [{"isl": 1024, "osl": 1024, "conc": 4, "median_e2e_ms": 1000.0, "median_intvty": 100.0,
                           "tput_per_gpu": BASE}]}, "path": Path("synthetic.toml")})


def trial(rng: np.random.Generator, ratio: float, noise: float, repeat_max: int,
          uncorrected: bool = False) -> tuple[int, str]:
    plan, records = RoundsPlan("auto", repeat_max), []
    confidence = 0.95 if uncorrected else plan.confidence
    while True:
        rec = point_record(4, float(rng.normal(ratio * BASE, noise * ratio * BASE)))
        comparison(TABLE, "gptoss", rec)
        records.append(rec)
        pooled = pool_rounds(records, [f"r{k}" for k in range(len(records))], confidence=confidence)
        question = open_question(pooled, RULE)
        stop, _ = plan.stop([1.0] * len(records), question)
        if stop:
            if question is not None:
                return len(records), "open"
            return len(records), "beats" if pooled.ours.rounds.ratios["tput_per_gpu"].low > 1 else "loses"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--repeat-max", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--uncorrected", action="store_true",
                   help="judge every look with a plain 95%% interval (no Bonferroni widening), to show why it is widened")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    per_look = 0.95 if args.uncorrected else RoundsPlan("auto", args.repeat_max).confidence
    print(f"--repeat auto --repeat-max {args.repeat_max}, {per_look:.4g} intervals per look, {args.trials} trials "
          "per row, stage-1 rule on tput/GPU")
    print(f"{'true ratio':>10} {'noise':>6} {'mean rounds':>11} {'max':>4} {'decided':>8} {'wrong':>7}")
    started = time.perf_counter()
    for noise in (0.02, 0.05):
        for ratio in (0.90, 0.97, 1.00, 1.03, 1.10):
            results = [trial(rng, ratio, noise, args.repeat_max, args.uncorrected) for _ in range(args.trials)]
            rounds = [n for n, _ in results]
            decided = [o for _, o in results if o != "open"]
            truth = "beats" if ratio > 1 else "loses"
            wrong = sum(o != truth for o in decided) if ratio != 1.0 else len(decided)
            print(f"{ratio:>10.2f} {noise:>6.0%} {np.mean(rounds):>11.2f} {max(rounds):>4} "
                  f"{len(decided) / len(results):>8.1%} {wrong / len(results):>7.1%}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
