"""The servers of a session: launched from recipes through a pool (one at a time per worker), or the one
--server-url names, checked once; each noted in the run's manifest. A part of
:class:`~pytest_inferencemax.plugin.session.BenchSession`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_inferencemax.plan.devices import DeviceSlice
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.plugin.catalog import SuiteCatalog
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.results.manifest import Manifest
from pytest_inferencemax.results.redact import redact_argv, redact_env
from pytest_inferencemax.serve.api import engine_version
from pytest_inferencemax.serve.server import Server, ServerError, ServerPool, check_external


@dataclass
class Servers:
    settings: Settings
    progress: Progress
    catalog: SuiteCatalog
    run_dir: Path  # the servers' logs go here
    worker: int = 0  # xdist worker index: a fixed --port is offset by it
    devices: DeviceSlice | None = None
    manifest: Manifest | None = None
    pool: ServerPool | None = None
    _external: Server | None = None
    _external_error: str | None = None  # why --server-url's server was not ready (then no point runs)

    def server(self, suite: Suite, point: Point) -> Server:
        if self.settings.server_url:
            if self._external is None:
                if self._external_error is not None:  # checked once: every later point fails at once
                    raise ServerError(f"not retried: {self._external_error}")
                self.progress.line(f"inferencemax: checking the server at {self.settings.server_url} "
                                   f"(up to {self.settings.server_ready_timeout:g} s)")
                try:
                    self._external = check_external(self.settings.server_url, self.catalog.served_model_name(suite),
                                                    api_key=self.settings.api_key,
                                                    ready_timeout=self.settings.server_ready_timeout)
                except ServerError as exc:
                    self._external_error = str(exc)
                    raise
                self._note_server(self._external)
            return self._external
        if self.pool is None:
            self.pool = ServerPool(log_dir=self.run_dir, progress=self.progress,
                                   start_timeout=self.settings.server_start_timeout,
                                   port=(self.settings.port + self.worker) if self.settings.port else None,
                                   api_key=self.settings.api_key, on_launch=self._note_server)
        self.catalog.prepare_model(suite)
        return self.pool.acquire(self.catalog.recipe(suite, point), self.catalog.served_model_name(suite))

    def _note_server(self, server: Server) -> None:
        """Record a server in the manifest: what it is, how it was started, what it says it runs."""
        if self.manifest is None:
            return
        entry: dict[str, Any] = {"base_url": server.base_url, "model": server.model,
                                 "engine_version": engine_version(server.base_url, api_key=self.settings.api_key)}
        if server.recipe is not None:
            launch = launch_fields(server)
            entry.update({k: launch[k] for k in ("engine", "argv", "env", "log", "pid")},
                         started_in_s=round(server.started_in, 1), recipe_key=launch["recipe_key"],
                         worker=self.worker, devices=list(self.devices.devices) if self.devices else None)
        self.manifest.add_server(entry)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.release()


def launch_fields(server: Server) -> dict[str, Any]:
    """How a launched server was started, secrets redacted: for the point records and the manifest."""
    assert server.recipe is not None
    return {"engine": server.recipe.engine, "argv": redact_argv(server.command_for_record()),
            "env": redact_env(server.recipe.env), "log": str(server.log_path), "pid": server.pid,
            "recipe_key": server.recipe.key}
