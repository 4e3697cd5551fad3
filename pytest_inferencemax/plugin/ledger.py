"""The points of a session: which were planned, which finished (their records), failed, were pruned or
skipped, which runs now, and what an interruption left. A part of
:class:`~pytest_inferencemax.plugin.session.BenchSession`; on the xdist controller it gathers every worker's."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import RunFolder
from pytest_inferencemax.results.summary import Interruption


@dataclass
class PointLedger:
    folder: RunFolder
    record_paths: list[Path] = field(default_factory=list)  # every finished point's JSON (all workers), in order
    failures: list[tuple[str, str]] = field(default_factory=list)  # (point id, reason), all workers
    pruned: list[tuple[str, str]] = field(default_factory=list)  # (point id, why): skipped by --prune
    planned: list[str] = field(default_factory=list)  # the points this process was to run, in order
    deselected: int = 0  # points collected but left out (-k, -m): not part of the run
    current_point: str | None = None  # the point running now (kept when an interruption stops it)
    interrupted_by: str | None = None  # "Ctrl-C", "SIGTERM" or "SIGHUP" once the run was interrupted
    not_saved: list[str] = field(default_factory=list)  # files the disk refused (each names the file and why)

    def note_interruption(self, by: str) -> bool:
        """A signal ended the run: noted when it is the first (True), so that what follows says what stopped it."""
        if self.interrupted_by is not None:
            return False
        self.interrupted_by = by
        return True

    def interruption(self) -> Interruption:
        """What an interruption left: the point it stopped and the points that never ran."""
        done = {p.stem for p in self.record_paths} | {point for point, _ in self.failures + self.pruned}
        return Interruption(by=self.interrupted_by or "Ctrl-C", point=self.current_point,
                            not_run=tuple(p for p in self.planned if p not in done and p != self.current_point),
                            deselected=self.deselected)

    def records(self) -> list[PointRecord]:
        """The finished points' records (of every worker), in the order they finished."""
        return [self.folder.read_point(p) for p in self.record_paths if p.is_file()]
