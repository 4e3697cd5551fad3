"""Runs merged into one: each run's point records checked for one curve's consistency (the same measurement
wherever a point appears, one verdict rule and one baseline per suite and stage), the same point's rounds from
several runs pooled into one record (results/pool.py), each run's manifests, telemetry series and failures
carried over, ``sources.json`` saying what came from where. The judging and the report of the merged run
(publish) and the command line (cli/merge.py) come on top."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.results.identity import configuration
from pytest_inferencemax.results.merge_inputs import MergeError, Run, find_runs
from pytest_inferencemax.results.pool import pool_rounds
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.rounds import ROUNDS_DIR
from pytest_inferencemax.results.store import SOURCES_FILE, SUMMARY_FILE, RunFolder, check_writable
from pytest_inferencemax.results.summary import FailedGroup, failed_groups


@dataclass
class MergedRuns:
    """What ``merge_runs`` wrote and found: the merged point records (sorted), the verdict rule of each (suite,
    stage), every run's failures (point, reason) once, and their failed groups, each naming its run."""

    records: list[PointRecord]
    rules: dict[tuple[str, str], Any]
    failures: list[tuple[str, str]]
    failed: list[FailedGroup]


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


def merge_runs(dirs: Sequence[Path], out: Path) -> MergedRuns:
    """Find the runs under ``dirs`` and write their merged records, rounds, series, manifests and ``sources.json``
    to ``out``; :class:`MergeError` when they cannot form one run (nothing is written then)."""
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
    return MergedRuns(records, rules, failures, failed)


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
