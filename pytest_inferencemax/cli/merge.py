"""Merge results from several runs (xdist workers, separate sessions, CI matrix jobs, nodes) into one.

    python -m pytest_inferencemax.cli.merge DIR [DIR ...] --out DIR [--submit-team TEAM]

Each DIR is a run folder (``results/<run-id>``) or any folder above some (a downloaded CI
artifact): every folder holding point records (``<point>.json`` with an ``inferencemax`` key)
is one run. The merged folder gets every point record, each run's manifest
(``manifest-<run>.json``), ``sources.json`` (what came from where), then what a session writes
at its end: ``summary.json``, the curves' verdicts, ``plots/``, ``report.md`` and, with
``--submit-team``, the submissions of qualifying configurations.

Refused, with exit code 2 and the reason: the same point in two runs; records of one suite and
stage judged by different verdict rules or compared with different baselines (their figures
would not form one curve); no point records at all. Exit code 1 when a point failed or a
submission did not go through, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.publish.finish import FinishedRun, SubmitOptions, finish_run
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.store import SOURCES_FILE, RunFolder
from pytest_inferencemax.results.summary import summary_lines, write_summary


class MergeError(ResultsError):
    """The runs cannot be merged into one; the message says why and what to do."""


@dataclass
class Run:
    folder: RunFolder
    records: list[PointRecord]
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder.path


def find_runs(dirs: Sequence[Path]) -> list[Run]:
    """Every run folder at or below ``dirs``, in a stable order."""
    runs: dict[Path, Run] = {}
    for top in dirs:
        top = Path(top)
        if not top.is_dir():
            raise MergeError(f"{top}: no such folder (pass run folders, results/<run-id>, or folders above them)")
        candidates = sorted({p.parent for p in top.rglob("*.json")} | {top})
        for path in candidates:
            if path.resolve() in runs:
                continue
            folder = RunFolder(path)
            try:
                records = folder.points()
            except RecordError as exc:
                raise MergeError(str(exc)) from None
            if records:
                runs[path.resolve()] = Run(folder, records, folder.failures())
    if not runs:
        raise MergeError(f"no point records under {', '.join(map(str, dirs))}: pass the folders that pytest "
                         "wrote (results/<run-id>) or a downloaded artifact holding them")
    return list(runs.values())


def _baseline_identity(rec: PointRecord) -> tuple[Any, ...]:
    """Which baseline a record was compared with: the stage's file and key, and the group it wrote."""
    return rec.ours.baseline, rec.ours.baseline_key, rec.comparison.group if rec.comparison else None


def check_consistent(runs: Sequence[Run]) -> dict[tuple[str, str], Any]:
    """The verdict rule of each (suite, stage); raises :class:`MergeError` on any mix-up."""
    seen_points: dict[str, Path] = {}
    rules: dict[tuple[str, str], tuple[Any, Path]] = {}
    baselines: dict[tuple[str, str], tuple[Any, Path]] = {}
    for run in runs:
        for rec in run.records:
            point, key = rec.point_id, (rec.ours.suite, rec.ours.stage)
            if point in seen_points:
                raise MergeError(f"point {point} is in both {seen_points[point]} and {run.path}: keep one "
                                 "(drop the other folder from the command) so that each point counts once")
            seen_points[point] = run.path
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
    runs = find_runs(dirs)
    rules = check_consistent(runs)
    out = Path(out)
    if out.resolve() in {r.path.resolve() for r in runs}:
        raise MergeError(f"--out {out} is one of the runs being merged: choose a new folder")
    merged = RunFolder(out)
    records: list[PointRecord] = []
    failures: list[tuple[str, str]] = []
    sources = []
    for n, run in enumerate(runs):
        for rec in run.records:
            merged.write_point(rec)
            records.append(rec)
            if rec.ours.telemetry and rec.ours.telemetry.series and (run.path / rec.ours.telemetry.series).is_file():
                merged.write_text(rec.ours.telemetry.series, (run.path / rec.ours.telemetry.series).read_text())
        for manifest, data in run.folder.manifests():
            merged.write_json(f"manifest-{n}-{run.path.name}-{manifest.stem}.json", data)
        failures += [f for f in run.failures if f not in failures]
        sources.append({"run": str(run.path), "points": [r.point_id for r in run.records],
                        "failures": [p for p, _ in run.failures]})
    merged.write_json(SOURCES_FILE, {"runs": sources})
    records.sort(key=PointRecord.sort_key)
    finished = finish_run(out, records, rules, baselines_dir or Path("baselines"), submit, echo=echo)
    write_summary(records, failures, out, finished.lines())
    return finished, failures


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.merge",
                                description="Merge run folders into one summary, curve, verdict and report.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run folders, or folders above them")
    p.add_argument("--out", type=Path, required=True, help="the merged run folder to write")
    p.add_argument("--baselines", type=Path, default=Path("baselines"),
                   help="folder of baseline tables for AMD checks (default: %(default)s)")
    p.add_argument("--submit-team", metavar="TEAM", help="submit qualifying configurations as this team")
    p.add_argument("--submit-dry-run", action="store_true", help="with --submit-team: save payloads, send nothing")
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
              if args.submit_team else None)
    try:
        finished, failures = merge(args.dirs, args.out, baselines_dir=args.baselines, submit=submit,
                                     echo=(lambda _l: None) if args.quiet else print)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records = RunFolder(args.out).points()
    lines = finished.lines() if args.quiet else summary_lines(records, failures, args.out) + finished.lines()
    for line in lines:
        print(line)
    not_sent = [s for s in finished.submissions if s.status not in ("submitted", "dry-run")]
    return 1 if failures or finished.problems or not_sent else 0


if __name__ == "__main__":
    sys.exit(main())
