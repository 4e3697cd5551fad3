"""The submission log: ``<run>/submissions/log.jsonl``, one JSON line per point per attempt, appended, never
rewritten, so a dry run or a refused retry cannot wipe the record of an earlier real send.

Each line: ``time`` (UTC, ISO 8601), ``team``, ``point``, ``status`` (``submitted``, ``failed``, ``refused``,
``dry-run`` or ``held back``), ``dry_run``, ``url``, ``message``, and where known ``payload``, ``event_id``,
``attempts``, ``space_check``. ``$HF_TOKEN`` never enters it: it is scrubbed from every value, and a payload
that holds it is not logged.

``submissions/<point>.json`` stays as it was (the payload, written before it is sent, then the outcome:
``result``, ``space_signature``) and holds the point's latest attempt, except that a dry run never replaces a
real attempt's (sent, failed or refused, or cut short): after one, a dry run writes ``<point>.dry-run.json``.
So ``<point>.json`` says ``dry-run`` only for a point never really sent; the log has every attempt.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_inferencemax.errors import ResultsError, ResultsWriteError, os_reason
from pytest_inferencemax.plan.values import Word
from pytest_inferencemax.results.redact import scrub

SUBMISSIONS_DIR = "submissions"
LOG_NAME = "log.jsonl"


class SubmitStatus(Word):
    """What became of a point's submission (a log line's ``status``)."""

    SUBMITTED = "submitted"
    FAILED = "failed"
    REFUSED = "refused"
    DRY_RUN = "dry-run"
    HELD_BACK = "held back"


STATUSES = tuple(s.value for s in SubmitStatus)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LogEntry:
    team: str
    point: str
    status: SubmitStatus
    url: str | None = None
    message: str = ""
    payload: list | None = None
    event_id: str | None = None
    attempts: int | None = None
    space_check: str = ""  # what the Space's signature check found ("fits the s2 payload", "mismatch", ...)
    dry_run: bool = False  # a dry run's entry: nothing was sent, whatever the status
    time: str = ""  # filled in when appended

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ResultsError(f"log status {str(self.status)!r} is not one of {', '.join(STATUSES)}")
        object.__setattr__(self, "status", SubmitStatus(self.status))


def log_path(run_dir: Path) -> Path:
    return Path(run_dir) / SUBMISSIONS_DIR / LOG_NAME


def payload_file(run_dir: Path, point: str, dry_run: bool) -> Path:
    """Where a point's payload and outcome go (module docstring)."""
    path = Path(run_dir) / SUBMISSIONS_DIR / f"{point}.json"
    return path.with_name(f"{point}.dry-run.json") if dry_run and _real_attempt(path) else path


def _real_attempt(path: Path) -> bool:
    """``path`` holds a real attempt's payload: one without an outcome (cut short) or with a real outcome."""
    try:
        result = json.loads(path.read_text(encoding="utf-8")).get("result")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError):
        return True  # unreadable, or not ours: left alone
    dry = isinstance(result, dict) and (result.get("dry_run") is True or result.get("status") == "dry-run")
    return not dry


def append_entry(run_dir: Path, entry: LogEntry) -> Path:
    """Append ``entry`` (timed now, the token scrubbed) as one line to the run's log, fsynced; a disk that
    refuses is a :class:`ResultsWriteError` naming the file."""
    token = os.environ.get("HF_TOKEN") or None
    data = {k: v for k, v in asdict(entry).items() if v not in (None, "")} | {"time": entry.time or now()}
    if token and token in json.dumps(data.get("payload")):
        data["payload"] = None  # the team name holds the token: never written (the send was refused for it)
    line = scrub(json.dumps(data, allow_nan=False, default=str, ensure_ascii=False), token) + "\n"
    path = log_path(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:  # O_APPEND: one write per line, never over earlier ones
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise ResultsWriteError(path, os_reason(exc)) from None
    return path


def read_log(run_dir: Path) -> list[LogEntry]:
    """Every entry of the run's log, oldest first ([] without one). A last line cut short by a crash is
    left out; a damaged line before it is a :class:`ResultsError` naming the line."""
    path = log_path(run_dir)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({os_reason(exc)})") from None
    known = {f.name for f in fields(LogEntry)}
    out = []
    for n, line in enumerate(lines, 1):
        try:
            data: Any = json.loads(line)
            out.append(LogEntry(**{k: v for k, v in data.items() if k in known}))
        except (ValueError, TypeError, AttributeError) as exc:
            if n == len(lines) and not line.endswith("}"):
                break  # torn by a crash mid-write: the entries before it stand
            raise ResultsError(f"{path}, line {n}: not a log entry ({exc}); move the line out of the log "
                               "(the rest of it stays readable)") from None
    return out
