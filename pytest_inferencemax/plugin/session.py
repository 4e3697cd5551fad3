"""The benchmark session of one pytest process, kept in ``config.stash``: the plugin's hooks stay thin and hand
their work to its parts: the suites (``catalog.py``), the servers (``servers.py``), the accuracy gates
(``gates.py``) and the points (``ledger.py``). It runs a point on them (measure -> build -> write,
``results/point_pipeline.py``) and pools a point's rounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_inferencemax.gate.at_load import AccuracyAtLoad
from pytest_inferencemax.judge.baseline import comparison
from pytest_inferencemax.measure.runner import InitialRequestFailed, PointAborted, RunSettings
from pytest_inferencemax.plan.devices import DeviceSlice, default_visibility_vars, device_slice, worker_index
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.plugin.catalog import SuiteCatalog
from pytest_inferencemax.plugin.gates import Gates
from pytest_inferencemax.plugin.ledger import PointLedger
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.plugin.rounds import RoundsPlan
from pytest_inferencemax.plugin.servers import Servers, launch_fields
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.results.manifest import Manifest
from pytest_inferencemax.serve.engines import VLLM_IGNORE_EOS, traits
from pytest_inferencemax.results.point_pipeline import PointOutcome, ServerTarget, run_point
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.store import RecordNotSaved, RunFolder


@dataclass
class BenchSession:
    settings: Settings
    progress: Progress
    rootdir: Path
    catalog: SuiteCatalog
    servers: Servers
    gates: Gates
    points: PointLedger
    manifest: Manifest
    rounds: RoundsPlan  # --repeat
    worker: int = 0  # xdist worker index (0 without xdist)
    devices: DeviceSlice | None = None  # this worker's GPUs, with --gpus-per-server

    @classmethod
    def create(cls, settings: Settings, progress: Progress, rootdir: Path, *, workerid: str | None = None,
               workers: int | None = None) -> "BenchSession":
        """The session of one pytest process (an xdist worker, the controller, or a plain run).

        Raises ValueError when --gpus-per-server cannot give every worker its share.
        """
        worker, devices = worker_index(workerid), None
        if settings.gpus_per_server:
            env_vars = settings.gpu_env or default_visibility_vars()
            if workerid is None and workers:  # the controller checks every worker's share up front
                for w in range(workers):
                    device_slice(w, settings.gpus_per_server, settings.gpus, env_vars)
            devices = device_slice(worker, settings.gpus_per_server, settings.gpus, env_vars)
        run_dir = settings.results_dir / settings.run_id
        manifest = Manifest(rootdir=rootdir, path=run_dir / (f"manifest-{workerid}.json" if workerid else "manifest.json"),
                            settings={k: (str(v) if isinstance(v, Path) else v)
                                      for k, v in vars(settings).items() if k != "api_key"})
        catalog = SuiteCatalog(settings, progress, rootdir, run_dir, devices)
        servers = Servers(settings, progress, catalog, run_dir, worker, devices, manifest)
        return cls(settings=settings, progress=progress, rootdir=rootdir, catalog=catalog, servers=servers,
                   gates=Gates(settings, progress, catalog, servers, manifest), points=PointLedger(RunFolder(run_dir)),
                   manifest=manifest, worker=worker, devices=devices,
                   rounds=RoundsPlan(settings.repeat, settings.repeat_max,
                                     settings.repeat_budget * 60 if settings.repeat_budget else None))

    @property
    def run_dir(self) -> Path:
        return self.settings.results_dir / self.settings.run_id

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def close(self) -> None:
        self.servers.close()

    # -- run ----------------------------------------------------------------------------------
    def run(self, suite: Suite, point: Point, record_hook: Callable[[Point, PointRecord], PointRecord] | None = None,
            round_no: int | None = None) -> PointOutcome:
        """Measure ``point`` on its server and write its record (with the stage's comparison, accuracy
        and the hooks' fields) before returning; with ``round_no`` (--repeat), as that round's record."""
        server = self.servers.server(suite, point)
        tokenizer = self.catalog.tokenizer(suite)
        table, model_key = self.catalog.baseline(suite, point)
        _, stage = suite.stage(point.stage)
        stage_fields: dict[str, Any] = {
            "server": {"base_url": server.base_url, "launched": server.recipe is not None},
            "leaderboard_url": stage.leaderboard_url, "payload_layout": stage.payload_layout,
            # so that results merged from several runs or nodes are judged alike
            "baseline": stage.baseline, "baseline_key": stage.baseline_key, "verdict_rule": stage.verdict_table,
            "failure_rule": stage.failure_rule}
        engine = traits(suite.suite.engine)
        if engine.ignore_eos_fields != VLLM_IGNORE_EOS:  # how this engine is asked for exact lengths, or {}: it cannot
            stage_fields["ignore_eos_fields"] = dict(engine.ignore_eos_fields)
        if variant := self.catalog.variant_of(suite, point):
            stage_fields.update(variant=variant.name, variant_changes=variant.changes())
        if server.recipe is not None:
            stage_fields["server"].update(launch_fields(server))

        def complete(record: PointRecord) -> PointRecord:
            comparison(table, model_key, record)
            self.gates.add_accuracy(suite, point, record)
            return record_hook(point, record) if record_hook is not None else record

        try:
            return run_point(
                point, ServerTarget(server.base_url, server.model, tokenizer, self.catalog.tokenizer_id(suite)),
                folder=self.folder, file=self.folder.round_file(point.id, round_no) if round_no else None,
                settings=RunSettings.from_options(
                    self.settings, gpu_ids=tuple(self.devices.devices) if self.devices else None,
                    cache_reset_engine=self.catalog.cache_reset(suite, server.recipe),
                    ignore_eos_fields=engine.ignore_eos_fields),
                progress=self.progress, stage_fields=stage_fields, complete=complete,
                abort_check=server.death_reason, server_log=server.log_path)
        except PointAborted as exc:  # a failed initial test request says nothing of a stall: the server stays
            if server.recipe is not None and server.death_reason() is None and not isinstance(exc, InitialRequestFailed):
                server.broken = f"it stalled during {point.id}"  # restart it for the next point
            raise


    def keep_at_load(self, outcome: PointOutcome, at_load: AccuracyAtLoad) -> PointOutcome:
        """The point's record with its accuracy at load (--accuracy-at), written again in place (atomically)."""
        outcome.record.ours.accuracy_at_load = at_load
        saved = self.folder.keep(outcome.path, outcome.record.to_json())
        if saved.refused:
            raise RecordNotSaved(f"measured, but its record with the accuracy at load could not be saved: "
                                 f"{saved.refused}; {saved.where()}", saved.path)
        return outcome

    def pool_rounds(self, records: list[PointRecord], paths: list[Path], durations: list[float],
                    stopped: str | None = None) -> tuple[PointRecord, Path]:
        """A point's record from its rounds so far, written to ``<point>.json`` (after every round, so a
        run cut short keeps what it measured)."""
        from pytest_inferencemax.results.pool import pool_rounds
        files = [str(Path(p).relative_to(self.run_dir)) for p in paths]
        record = pool_rounds(records, files, durations=durations, stopped=stopped, confidence=self.rounds.confidence)
        saved = self.folder.keep(self.folder.point_file(record.point_id), record.to_json())
        if saved.refused:
            raise RecordNotSaved(f"measured, but its pooled record could not be saved: "
                                 f"{saved.refused}; {saved.where()}", saved.path)
        return record, saved.path


SESSION = pytest.StashKey[BenchSession]()  # the session of a pytest run, in config.stash
