"""What a merge takes in (``cli/merge.py``): the run folders at or below the folders given, each measurement once.

A run folder is any folder holding point records (``<point>.json`` with an ``inferencemax`` key) or a
``summary.json`` that lists failures (a run whose points all failed still says so). Each record stands for its
rounds (``--repeat``: ``rounds/<point>.r<k>.json``; a point run once is one round), and a round is known by
what it measured: :func:`measurement_key`, the SHA-256 of its record less what copying it changes (the rounds
summary, the telemetry series' file name, ``reused_from``, ``compare_to``). A round met a second time (a run
folder copied, a download holding a run twice, a point a later run reused from an earlier one) is one
measurement: it is counted once and the merge says which file it skipped as a copy of which. Pooled twice, a
round and its copy would give ``n: 2``, the same value twice, ``stdev 0``: a zero-width interval, confidence
no measurement gave.

The output of an earlier merge (a folder holding ``sources.json``, which only a merge writes) is never an
input, given or found below a given folder: its records and rounds are copies of the runs it was made from.
So ``--out`` may lie inside an input tree (``--out results/merged`` with ``results``): a merge run again
counts nothing twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pytest_inferencemax.errors import ResultsError, os_reason
from pytest_inferencemax.results.manifest import manifest_run_id
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.rounds import ROUNDS_DIR
from pytest_inferencemax.results.store import SOURCES_FILE, RunFolder

# what copying a record changes in it, left out of what it measured (the ``inferencemax`` section's keys)
COPY_FIELDS = ("rounds", "reused_from", "compare_to")


class MergeError(ResultsError):
    """The runs cannot be merged into one; the message says why and what to do."""


def measurement_key(record: PointRecord) -> str:
    """What a round measured, as a SHA-256 of its record: the same for a record and its copies (a copied run
    folder, merge's ``rounds/``, a point reused by a later run), different for any other measurement (its
    start time, figures and per-request values differ)."""
    data = record.to_dict()
    ours = {k: v for k, v in data["inferencemax"].items() if k not in COPY_FIELDS}
    if isinstance(ours.get("telemetry"), dict):  # the series is copied under another name
        ours["telemetry"] = {k: v for k, v in ours["telemetry"].items() if k != "series"}
    data["inferencemax"] = ours
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Round:
    """One round of a point in a run: the files it came from, how long it ran, what it measured."""

    file: Path  # the round's record: rounds/<point>.r<k>.json, or <point>.json for a point run once
    point_file: Path  # the point's <point>.json in its run
    run: Path  # the run folder
    seconds: float
    key: str  # measurement_key of its record
    held: PointRecord | None = None  # its record when held anyway (a point run once); else read again from file

    @property
    def src_dir(self) -> Path:
        """The folder its telemetry series is named from."""
        return self.file.parent

    def record(self) -> PointRecord:
        """Its record (a round's file is read when needed: a run's rounds, with --save-detailed, are large)."""
        return self.held if self.held is not None else _read_round(self.file, self.point_file)


def _read_round(path: Path, point_file: Path) -> PointRecord:
    try:
        return PointRecord.from_json(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise MergeError(f"{point_file} lists its round {os.path.relpath(path, point_file.parent)}, but {path} is "
                         f"missing: copy the run's {ROUNDS_DIR}/ folder with its records, or move "
                         f"{point_file.name} out of {point_file.parent}") from None
    except OSError as exc:
        raise MergeError(f"{path}: cannot be read ({os_reason(exc)}): make it readable, or move "
                         f"{point_file.name} out of {point_file.parent}") from None
    except RecordError as exc:
        raise MergeError(str(exc)) from None


def read_rounds(folder: RunFolder, record: PointRecord) -> list[Round]:
    """The rounds ``record`` of ``folder`` stands for, in round order: the record itself for a point run once.
    A round file it lists that is missing or damaged is a :class:`MergeError` naming it."""
    point_file = folder.point_file(record.point_id)
    r = record.ours.rounds
    if r is None or not r.files:
        return [Round(point_file, point_file, folder.path, float(record.duration), measurement_key(record), record)]
    times = list(r.durations_s) if len(r.durations_s) == len(r.files) else [float(record.duration)] * len(r.files)
    return [Round(folder.path / name, point_file, folder.path, float(seconds),
                  measurement_key(_read_round(folder.path / name, point_file)))
            for name, seconds in zip(r.files, times)]


@dataclass
class Run:
    """A run folder to merge: its point records and failed points, and each point's rounds to pool (those not
    already counted from an earlier run folder)."""

    folder: RunFolder
    records: list[PointRecord]
    failures: list[tuple[str, str]] = field(default_factory=list)
    rounds: dict[str, list[Round]] = field(default_factory=dict)  # by point; find_runs fills it

    @property
    def path(self) -> Path:
        return self.folder.path

    def rounds_of(self, record: PointRecord) -> list[Round]:
        """The rounds of ``record`` to pool: those :func:`find_runs` kept, else every round it lists."""
        kept = self.rounds.get(record.point_id)
        return kept if kept is not None else read_rounds(self.folder, record)

    def run_id(self) -> str | None:
        """The run id its manifest names (``--run-id``), or None without a readable manifest."""
        for path in sorted(self.path.glob("manifest*.json")):
            try:
                found = manifest_run_id(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
            if found:
                return found
        return None


def merge_output(path: Path) -> str | None:
    """Why the folder ``path`` is the output of an earlier merge, or None when it is not."""
    if (Path(path) / SOURCES_FILE).is_file():
        return f"it holds {SOURCES_FILE}, which only a merge writes"
    return None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def find_runs(dirs: Sequence[Path], echo: Callable[[str], Any] | None = None, *, out: Path | None = None) -> list[Run]:
    """Every run folder at or below ``dirs``, in a stable order, each measurement in the first run folder that
    holds it; the outputs of earlier merges left out. ``echo`` (default: stderr) gets a line for each thing
    skipped, naming it and what it duplicates. ``out``, the merge's --out, must not be one of the run folders
    (a copy skipped as such included): the merge would write over it."""
    say = echo or _stderr
    runs: dict[Path, Run] = {}
    outputs: dict[Path, Path] = {}
    for top in dirs:
        top = Path(top)
        if not top.is_dir():
            raise MergeError(f"{top}: no such folder (pass run folders, results/<run-id>, or folders above them)")
        for path in sorted({p.parent for p in top.rglob("*.json")} | {top}):
            real = path.resolve()
            if real in runs or real in outputs or (path.name == ROUNDS_DIR and RunFolder(path.parent).point_files()):
                continue  # a run's rounds/ belong to the run above them
            if why := merge_output(path):
                outputs[real] = path
                say(f"merge: skipped {path}: the output of an earlier merge ({why}); its records are copies of "
                    f"the runs its {SOURCES_FILE} lists: to merge them, pass those runs")
                continue
            folder = RunFolder(path)
            try:
                records = folder.points()
            except RecordError as exc:
                raise MergeError(str(exc)) from None
            failures = folder.failures()
            if records or failures or any(path.glob("manifest*.json")):  # a run whose points all failed, or that
                runs[real] = Run(folder, records, failures)  # was killed before its end, has no record: still a run
    if out is not None and Path(out).resolve() in runs:
        raise MergeError(f"--out {out} is one of the runs being merged: choose a new folder")
    kept = _count_once(list(runs.values()), say)
    if not kept:
        skipped = "".join(f"; {p} was skipped: the output of an earlier merge" for p in outputs.values())
        raise MergeError(f"no point records under {', '.join(map(str, dirs))}{skipped}: pass the folders that "
                         "pytest wrote (results/<run-id>) or a downloaded artifact holding them")
    return kept


def _count_once(runs: list[Run], say: Callable[[str], Any]) -> list[Run]:
    """``runs`` with each round kept in the first run that holds it; a run left with nothing of its own is
    dropped. Says what was skipped as a copy of what."""
    first: dict[str, Round] = {}
    failures_seen: set[tuple[str, str]] = set()
    kept: list[Run] = []
    for run in runs:
        records: list[PointRecord] = []
        lines: list[str] = []
        sources: set[Path] = set()
        for rec in run.records:
            fresh, pairs = [], []
            for rnd in read_rounds(run.folder, rec):
                if (orig := first.get(rnd.key)) is None:
                    first[rnd.key] = rnd
                    fresh.append(rnd)
                else:
                    pairs.append((rnd, orig))
            if fresh:
                records.append(rec)
                run.rounds[rec.point_id] = fresh
            if pairs:
                lines.append(_copy_line(pairs, whole=not fresh))
                sources |= {orig.run for _, orig in pairs}
        whole_copy = bool(lines) and not records and set(run.failures) <= failures_seen
        failures_seen |= set(run.failures)
        if whole_copy:
            ids = f" (run id {run_id})" if (run_id := run.run_id()) else ""
            say(f"merge: skipped {run.path}{ids}: a copy of {' and '.join(map(str, sorted(sources)))} (its "
                f"{len(lines)} point record(s) hold the same measurements); each counted once")
            continue
        for line in lines:
            say(line)
        if records or run.failures or not run.records:  # no record at all (killed): kept, merge says so
            run.records = records
            kept.append(run)
    return kept


def _copy_line(pairs: list[tuple[Round, Round]], whole: bool) -> str:
    """The line for a record's rounds skipped as copies of earlier ones (``whole``: all of its rounds): the
    record's file and the one it copies when that says it all, else each round's file and its original's."""
    copy = pairs[0][0]
    originals = {orig.point_file for _, orig in pairs}
    if whole and len(originals) == 1:
        n = f" (its {len(pairs)} rounds)" if len(pairs) > 1 else ""
        return f"merge: skipped {copy.point_file}: the same measurement{n} as {originals.pop()}; counted once"
    each = "; ".join(f"{c.file} is {o.file}" for c, o in pairs)
    return f"merge: skipped {len(pairs)} round(s) of {copy.point_file} counted already ({each}); counted once"
