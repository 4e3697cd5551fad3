"""A run's folder on disk: one class reads and writes every file of a run, atomically.

``results/<run-id>/`` holds ``<point>.json`` per finished point (a :class:`PointRecord`),
``summary.json``, ``manifest.json`` (``manifest-<worker>.json`` under xdist), ``report.md``,
``plots/``, ``<point>.parity.{json,md}`` and ``submissions/``; a merged run adds ``sources.json``;
``--repeat`` adds ``rounds/<point>.r<k>.json``, every round's record.
docs/results.md describes each file. Every write goes to a temporary file in the same folder,
is fsynced and renamed over the target, so a crash or Ctrl-C leaves the old file or the whole new
one, never a part, and a finished point is on disk before the next one starts.

A write the disk refuses (read-only, full, a file where a folder should be) raises
:class:`~pytest_inferencemax.errors.ResultsWriteError` naming the file and the OS's reason. A
measured record is never dropped for it: :func:`save_or_keep` writes it to
``$TMPDIR/inferencemax-unsaved/<run-id>/`` instead (``KEEP_DIR``) and says where.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pytest_inferencemax.errors import PointError, ResultsError, ResultsWriteError, os_reason
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.rounds import ROUNDS_DIR


SUMMARY_FILE = "summary.json"
SOURCES_FILE = "sources.json"  # a merged run: which runs it came from
NOT_POINTS = (SUMMARY_FILE, SOURCES_FILE)


KEEP_DIR = "inferencemax-unsaved"  # under the temporary folder: where records go that the run folder refused


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` so that readers see the old file or the whole new one, never a part; a write the
    disk refuses is a :class:`ResultsWriteError` that names the file and the reason."""
    def fill(fd: int) -> None:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return write_atomic(path, fill)


def write_atomic(path: Path, fill: Callable[[int], None]) -> Path:
    """Write ``path`` through ``fill`` (given an open descriptor of a temporary file beside it, which it closes),
    then rename it into place: readers see the old file or the whole new one. Refused writes are
    :class:`ResultsWriteError` naming the file and the reason. Text (``write_text_atomic``) and plots use it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be: say which
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        raise ResultsWriteError(path, f"{blocker} is a file, not a folder" if blocker else os_reason(exc)) from None
    except OSError as exc:
        raise ResultsWriteError(path, os_reason(exc)) from None
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        fill(fd)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ResultsWriteError(path, os_reason(exc)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created if missing), or None when they can: a probe
    file is written, fsynced and removed, as a result will be."""
    try:
        probe = write_text_atomic(Path(folder) / ".inferencemax-write-probe", "probe\n")
        probe.unlink()
    except ResultsWriteError as exc:
        return exc.reason
    except OSError as exc:
        return os_reason(exc)
    return None


class RecordNotSaved(PointError):
    """A point was measured but its record could not be written to the run folder; ``record_path`` is
    where it was kept instead (None: nowhere on disk, then it was printed)."""

    def __init__(self, message: str, record_path: Path | None) -> None:
        super().__init__(message)
        self.record_path = record_path


@dataclass(frozen=True)
class Saved:
    """Where a file went: its place, or (``refused`` says why) the keep folder."""

    path: Path | None  # None: no folder took it; its text went to stderr
    refused: str | None = None  # why the intended place refused it

    def where(self) -> str:
        """Where a refused file went, for the point's failure."""
        return f"kept in {self.path}" if self.path else "printed above (no folder took it)"


def keep_path(target: Path, run_dir: Path | None = None) -> Path:
    """Where a file the run folder refused is kept: ``$TMPDIR/inferencemax-unsaved/<run-id>/<its path in the run>``."""
    target = Path(target)
    if run_dir is not None and target.is_relative_to(run_dir):
        return Path(tempfile.gettempdir()) / KEEP_DIR / Path(run_dir).name / target.relative_to(run_dir)
    return Path(tempfile.gettempdir()) / KEEP_DIR / target.parent.name / target.name


def save_or_keep(target: Path, text: str, run_dir: Path | None = None) -> Saved:
    """Write ``text`` to ``target``; when the disk refuses, to :func:`keep_path` instead; when that is
    refused too, to stderr (a measured record is never dropped)."""
    try:
        return Saved(write_text_atomic(target, text))
    except ResultsWriteError as exc:
        refused = str(exc)
    try:
        return Saved(write_text_atomic(keep_path(target, run_dir), text), refused)
    except ResultsWriteError as exc:
        sys.stderr.write(f"inferencemax: {refused}; {exc}; its content follows\n{text}\n")
        return Saved(None, f"{refused}; {exc} (its content was printed)")


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

    def keep(self, path: Path, text: str) -> Saved:
        """Write ``text`` to ``path`` (in this folder) atomically; when the disk refuses, keep it in the keep
        folder under this run's name (:func:`save_or_keep`): a measured record is never dropped."""
        return save_or_keep(path, text, self.path)

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


