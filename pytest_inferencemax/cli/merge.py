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
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.errors import ResultsWriteError
from pytest_inferencemax.publish.finish import FinishedRun, SubmitOptions, finish_run
from pytest_inferencemax.results.identity import configuration
from pytest_inferencemax.results.merge_inputs import MergeError, Run, find_runs
from pytest_inferencemax.results.pool import pool_rounds
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.rounds import ROUNDS_DIR
from pytest_inferencemax.results.store import SOURCES_FILE, SUMMARY_FILE, RunFolder, check_writable
from pytest_inferencemax.results.summary import FailedGroup, failed_groups, summary_lines, write_summary


def _baseline_identity(rec: PointRecord) -> tuple[Any, ...]:
    """Which baseline a record was compared with: the stage's file and key, and the group it wrote."""
    return rec.ours.baseline, rec.ours.baseline_key, rec.comparison.group if rec.comparison else None


def check_consistent(runs: Sequence[Run]) -> dict[tuple[str, str], Any]:
    """The verdict rule of each (suite, stage); raises :class:`MergeError` on any mix-up."""
    seen_points: dict[str, tuple[dict[str, Any], Path]] = {}
    rules: dict[tuple[str, str], tuple[Any, Path]] = {}
    baselines: dict[tuple[str, str], tuple[Any, Path]] = {}
    for run in runs:
        for rec in run.records:
            point, key = rec.point_id, (rec.ours.suite, rec.ours.stage)
            config = configuration(rec)
            if point in seen_points and seen_points[point][0] != config:
                first, where = seen_points[point]
                diff = ", ".join(f"{k} {first[k]!r} vs {config[k]!r}" for k in config if first[k] != config[k])
                raise MergeError(f"point {point} in {where} and {run.path} measured different things ({diff}): "
                                 "their rounds cannot be pooled; merge one of them, or give the variant "
                                 "another suite or stage")
            seen_points.setdefault(point, (config, run.path))
            rule = rec.ours.verdict_rule
            if key in rules and rules[key][0] != rule:
                raise MergeError(
                    f"suite {key[0]} stage {key[1]}: {rules[key][1]} and {run.path} were judged by different "
                    f"verdict rules ({json.dumps(rules[key][0])} vs {json.dumps(rule)}); merge runs of one "
                    "suite version only")
            rules.setdefault(key, (rule, run.path))
            base = _baseline_identity(rec)
            if key in baselines and baselines[key][0] != base:
                raise MergeError(
                    f"suite {key[0]} stage {key[1]}: {baselines[key][1]} and {run.path} compare with different "
                    f"baselines ({baselines[key][0]} vs {base}); merge runs that used the same baseline file")
            baselines.setdefault(key, (base, run.path))
    return {key: rule for key, (rule, _) in rules.items()}


def merge(dirs: Sequence[Path], out: Path, *, baselines_dir: Path | None = None,
          submit: SubmitOptions | None = None, echo: Any = print) -> tuple[FinishedRun, list[tuple[str, str]]]:
    """Write the merged run to ``out``; return how it finished and the failures of all runs."""
    runs = find_runs(dirs, out=out)
    rules = check_consistent(runs)
    out = Path(out)
    if out.resolve() in {r.path.resolve() for r in runs}:
        raise MergeError(f"--out {out} is one of the runs being merged: choose a new folder")
    if why := check_writable(out):  # before anything is written: a merge is all or nothing on a disk that says no
        raise MergeError(f"--out {out}: cannot write the merged run there ({why}): choose a writable folder")
    merged = RunFolder(out)
    failures: list[tuple[str, str]] = []
    failed: list[FailedGroup] = []  # every run's failures by group and cause, each naming its run
    sources = []
    by_point: dict[str, list[tuple[PointRecord, Run]]] = {}
    for run in runs:
        for rec in run.records:
            by_point.setdefault(rec.point_id, []).append((rec, run))
    records = [_merge_point(merged, found) for found in by_point.values()]
    for n, run in enumerate(runs):
        for manifest, data in run.folder.manifests():
            merged.write_json(f"manifest-{n}-{run.path.name}-{manifest.stem}.json", data)
        failures += [f for f in run.failures if f not in failures]
        failed += (groups := failed_in(run))
        sources.append({"run": str(run.path), "points": [r.point_id for r in run.records],
                        "failures": [p for p, _ in run.failures], "failed": [g.to_dict() for g in groups]})
    merged.write_json(SOURCES_FILE, {"runs": sources})
    records.sort(key=PointRecord.sort_key)
    finished = finish_run(out, records, rules, baselines_dir or Path("baselines"), submit, echo=echo,
                          failed=failed)
    write_summary(records, failures, out, finished.lines(), failed=failed)
    return finished, failures


def failed_in(run: Run) -> list[FailedGroup]:
    """What failed in ``run``, by group and cause (its summary.json's failures), each naming the run; a run
    that left no point record and no failure (killed before its end) is a failed group of its own."""
    settings = [data.get("settings") for _, data in run.folder.manifests() if isinstance(data, dict)]
    stage = next((s["stage"] for s in settings if isinstance(s, dict) and s.get("stage")), None)
    groups = failed_groups(run.failures, run.records, run=str(run.path), stage=stage)
    if not run.records and not run.failures:
        why = ("the session did not finish (no summary.json: killed, or its job cancelled or timed out)"
               if not (run.path / SUMMARY_FILE).is_file() else "its summary.json lists no failure either")
        groups.append(FailedGroup(f"run {run.path.name}", f"no point record: {why}; see its manifest and server "
                                  "logs", run=str(run.path)))
    return groups


def _copy_series(rec: PointRecord, src_dir: Path, dst: RunFolder, name: str) -> None:
    """Copy a record's telemetry series beside it under ``name`` (relative to ``dst``), renaming it in the record."""
    t = rec.ours.telemetry
    if t is None or not t.series:
        return
    src = src_dir / t.series
    if src.is_file():
        dst.write_text(name, src.read_text(encoding="utf-8"))
        t.series = Path(name).name


def _merge_point(merged: RunFolder, found: list[tuple[PointRecord, Run]]) -> PointRecord:
    """One point of the merged run: its record as it was when one run holds it once; else every run's rounds
    not counted already (``Run.rounds_of``) copied to ``rounds/`` (numbered in run order) and pooled."""
    if len(found) == 1 and found[0][0].ours.rounds is None:
        rec, run = found[0]
        merged.write_point(rec)
        t = rec.ours.telemetry
        if t and t.series and (run.path / t.series).is_file():
            merged.write_text(t.series, (run.path / t.series).read_text(encoding="utf-8"))
        return rec
    rounds: list[PointRecord] = []
    files: list[str] = []
    durations: list[float] = []
    for rec, run in found:
        for one in run.rounds_of(rec):
            round_rec = one.record().model_copy(deep=True)
            path = merged.round_file(rec.point_id, len(rounds) + 1)
            _copy_series(round_rec, one.src_dir, merged, f"{ROUNDS_DIR}/{path.stem}.telemetry.jsonl")
            merged.write_text(f"{ROUNDS_DIR}/{path.name}", round_rec.to_json())
            rounds.append(round_rec)
            files.append(f"{ROUNDS_DIR}/{path.name}")
            durations.append(one.seconds)
    pooled = pool_rounds(rounds, files, durations=durations, sources=[str(run.path) for _, run in found],
                         stopped=f"pooled by merge from {len(found)} run(s)")
    merged.write_point(pooled)
    return pooled


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.merge",
                                description="Merge run folders into one summary, curve, verdict and report.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run folders, or folders above them")
    p.add_argument("--out", type=Path, required=True, help="the merged run folder to write")
    p.add_argument("--baselines", type=Path, default=Path("baselines"),
                   help="folder of baseline tables for AMD checks (default: %(default)s)")
    p.add_argument("--submit-team", metavar="TEAM", help="submit qualifying configurations as this team")
    p.add_argument("--submit-dry-run", action="store_true", help="save payloads, send nothing (needs no --submit-team)")
    p.add_argument("--submit-unqualified", action="store_true", help="with --submit-team: also non-qualifying")
    p.add_argument("--submit-force", action="store_true",
                   help="with --submit-team: also points with a skipped gate or failed requests")
    p.add_argument("--leaderboard-url", metavar="URL", help="leaderboard instead of each stage's")
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
    records = RunFolder(args.out).points()
    lines = (finished.lines() if args.quiet
             else summary_lines(records, failures, args.out, failed=finished.failed) + finished.lines())
    for line in lines:
        print(line)
    not_sent = [s for s in finished.submissions if s.status not in ("submitted", "dry-run")]
    # docs/ci.md: 1 when a point failed, in any run (a failed or empty group is no green CI job)
    return 1 if failures or finished.failed or finished.problems or not_sent else 0


if __name__ == "__main__":
    sys.exit(main())
