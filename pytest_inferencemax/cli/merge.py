"""Merge results from several runs (xdist workers, separate sessions, CI matrix jobs, nodes) into one.

    python -m pytest_inferencemax.cli.merge DIR [DIR ...] --out DIR [--submit-team TEAM]

Each DIR is a run folder (``results/<run-id>``) or any folder above some (a downloaded CI
artifact): every folder holding point records (``<point>.json`` with an ``inferencemax`` key)
is one run. Each measurement counts once: a round met again (a copied run folder, a point a later run
reused) is skipped, with a line naming the file and the one it copies; the output of an earlier merge (a
folder with ``sources.json``) is never an input, so ``--out`` may lie inside a DIR
(results/merge_inputs.py). The merged folder gets every point record, each run's manifest
(``manifest-<run>.json``), ``sources.json`` (what came from where), then what a session writes
at its end: ``summary.json``, the curves' verdicts, ``plots/``, ``report.md`` and, with
``--submit-team``, the submissions of qualifying configurations.

The same point in several runs is pooled: every run's rounds of it (``--repeat``; a point run once
is one round) go to the merged ``rounds/`` and the point's record is made from all of them, as a
run with ``--repeat`` makes it (results/pool.py), provided the runs measured the same thing: the
same server recipe, model, workload (ISL, OSL, CONC, prompts, warmups, range ratio, seed) and
tput/GPU divisor.

Refused, with exit code 2 and the reason: the same point in two runs under different recipes or
workloads; records of one suite and stage judged by different verdict rules or compared with
different baselines (their figures would not form one curve); no point records at all. Exit code 1 when a point failed or a
submission did not go through, 0 otherwise. Nothing failed vanishes: each run's failures (its ``summary.json``; a
run whose points all failed has no record but is a run) go, grouped by cause and naming their run, to the merged
``summary.json`` (``failures``, ``failed``), ``sources.json`` and ``report.md`` (docs/results.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.errors import ResultsWriteError
from pytest_inferencemax.plan.options import add_arguments
from pytest_inferencemax.publish.finish import FinishedRun, SubmitOptions, finish_run
from pytest_inferencemax.results.merge import merge_runs
from pytest_inferencemax.results.merge_inputs import MergeError
from pytest_inferencemax.results.store import RunFolder
from pytest_inferencemax.results.summary import summary_lines, write_summary


def merge(dirs: Sequence[Path], out: Path, *, baselines_dir: Path | None = None,
          submit: SubmitOptions | None = None, echo: Any = print) -> tuple[FinishedRun, list[tuple[str, str]]]:
    """Write the merged run to ``out`` (results/merge.py), then judge and report it as a session's end does;
    return how it finished and the failures of all runs."""
    m = merge_runs(dirs, out)
    finished = finish_run(Path(out), m.records, m.rules, baselines_dir or Path("baselines"), submit, echo=echo,
                          failed=m.failed)
    write_summary(m.records, m.failures, Path(out), finished.lines(), failed=m.failed)
    return finished, m.failures


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.merge",
                                description="Merge run folders into one summary, curve, verdict and report.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run folders, or folders above them")
    p.add_argument("--out", type=Path, required=True, help="the merged run folder to write")
    p.add_argument("--baselines", type=Path, default=Path("baselines"),
                   help="folder of baseline tables for AMD checks (default: %(default)s)")
    add_arguments(p, ("submit-team", "submit-dry-run", "submit-unqualified", "submit-force", "leaderboard-url"))
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdicts and problems")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    submit = (SubmitOptions(team=args.submit_team, dry_run=args.submit_dry_run, force=args.submit_force,
                            unqualified=args.submit_unqualified, url_override=args.leaderboard_url)
              if args.submit_team or args.submit_dry_run else None)
    try:
        finished, failures = merge(args.dirs, args.out, baselines_dir=args.baselines, submit=submit,
                                   echo=(lambda _l: None) if args.quiet else print)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ResultsWriteError as exc:  # the disk said no half-way (full): what was written stays, the merge failed
        print(f"error: the merge is incomplete: {exc}", file=sys.stderr)
        return 1
    return conclude(finished, failures, args.out, args.quiet)


def conclude(finished: FinishedRun, failures: list[tuple[str, str]], out: Path, quiet: bool) -> int:
    """Print the merged run's table (unless ``quiet``), verdicts and problems; the exit status: 1 when a point
    failed in any run, a problem was found or a submission did not go through (docs/ci.md: a failed or empty
    group is no green CI job), else 0."""
    records = RunFolder(out).points()
    lines = finished.lines() if quiet else summary_lines(records, failures, out, failed=finished.failed) + finished.lines()
    for line in lines:
        print(line)
    not_sent = [s for s in finished.submissions if s.status not in ("submitted", "dry-run")]
    return 1 if failures or finished.failed or finished.problems or not_sent else 0


if __name__ == "__main__":
    sys.exit(main())
