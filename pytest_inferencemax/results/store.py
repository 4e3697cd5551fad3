"""A run's folder on disk: one class reads and writes every file of a run, atomically.

``results/<run-id>/`` holds ``<point>.json`` per finished point (a :class:`PointRecord`),
``summary.json``, ``manifest.json`` (``manifest-<worker>.json`` under xdist), ``report.md``,
``plots/``, ``<point>.parity.{json,md}`` and ``submissions/``; a merged run adds ``sources.json``;
``--repeat`` adds ``rounds/<point>.r<k>.json``, every round's record.
docs/results.md describes each file. Every write goes to a temporary file in the same folder,
is fsynced and renamed over the target, so a crash or Ctrl-C leaves the old file or the whole new
one, never a part, and a finished point is on disk before the next one starts.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.rounds import ROUNDS_DIR

if TYPE_CHECKING:  # imported where used: reading a run folder must not load the load generator
    from pytest_inferencemax.measure.parity import ParityReport

SUMMARY_FILE = "summary.json"
SOURCES_FILE = "sources.json"  # a merged run: which runs it came from
NOT_POINTS = (SUMMARY_FILE, SOURCES_FILE)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data: Any) -> Path:
    """``data`` as indented JSON (NaN refused), atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


class RunFolder:
    """The folder of one run (or of a merged run)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- points ------------------------------------------------------------------------------
    def point_file(self, point_id: str) -> Path:
        return self.path / f"{point_id}.json"

    def round_file(self, point_id: str, round_no: int) -> Path:
        """Round ``round_no`` (from 1) of a point run with --repeat: ``rounds/<point>.r<k>.json``."""
        return self.path / ROUNDS_DIR / f"{point_id}.r{round_no}.json"

    def write_point(self, record: PointRecord) -> Path:
        return write_text_atomic(self.point_file(record.point_id), record.to_json())

    def point_files(self) -> list[Path]:
        """The files that may hold point records, by name (not summaries, manifests, parity reports)."""
        if not self.path.is_dir():
            return []
        return [p for p in sorted(self.path.glob("*.json"))
                if p.name not in NOT_POINTS and not p.name.startswith((".", "manifest"))
                and not p.name.endswith(".parity.json")]

    def points(self) -> list[PointRecord]:
        """Every point record of the run, by file name. A damaged or invalid record is an error that
        names the file (never skipped: a missing point would change a verdict); a JSON file that is not
        a record at all (no ``inferencemax`` object) is not ours and is left alone."""
        records = []
        for path in self.point_files():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RecordError(f"{path}: cannot be read as JSON ({exc}); the file is damaged: re-run the point "
                                  "or move the file out of the run folder") from None
            if isinstance(data, dict) and "inferencemax" in data:
                records.append(PointRecord.from_dict(data, str(path)))
        return records

    def read_point(self, path: Path) -> PointRecord:
        return PointRecord.from_json(Path(path).read_text(encoding="utf-8"), str(path))

    # -- other files -------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> Path:
        return write_json_atomic(self.path / name, data)

    def write_text(self, name: str, text: str) -> Path:
        return write_text_atomic(self.path / name, text)

    def read_json(self, name: str) -> Any:
        """A JSON file of the run, or None when it does not exist; damaged: :class:`ResultsError`."""
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: cannot be read as JSON ({exc})") from None

    def failures(self) -> list[tuple[str, str]]:
        """The failed points the run's ``summary.json`` lists (a failed point may have no record)."""
        try:
            data = self.read_json(SUMMARY_FILE) or {}
        except ResultsError:
            return []
        return [(str(f.get("point")), str(f.get("reason"))) for f in data.get("failures") or [] if isinstance(f, dict)]

    def manifests(self) -> list[tuple[Path, Any]]:
        """The run's manifest files (one per pytest-xdist worker) with their contents."""
        return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(self.path.glob("manifest*.json"))]

    # -- parity reports (--parity, cli.parity) -----------------------------------------------
    def write_parity(self, report: ParityReport, stem: str = "parity") -> tuple[Path, Path]:
        """``<stem>.json`` and ``<stem>.md`` (the table), atomically."""
        from pytest_inferencemax.measure.parity import render
        return self.write_json(f"{stem}.json", report.to_dict()), self.write_text(f"{stem}.md", render(report) + "\n")

