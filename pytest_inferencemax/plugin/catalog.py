"""The suites of a session, read once: each suite, its plan, variants, recipes, models and tokenizers, its
stages' gates as this session fills them, baseline tables and verdict rules, and the run --compare-to names.
A part of :class:`~pytest_inferencemax.plugin.session.BenchSession`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_inferencemax.gate.accuracy import resolve_spec
from pytest_inferencemax.judge.baseline import BaselineTable, find_baseline, load_baseline
from pytest_inferencemax.measure.tokenizer import missing_folder
from pytest_inferencemax.measure.workload import load_tokenizer
from pytest_inferencemax.plan.devices import DeviceSlice
from pytest_inferencemax.plan.points import PlanOptions, Point, plan_points
from pytest_inferencemax.plan.recipe import Recipe, RecipeContext, render_recipe, resolve_model
from pytest_inferencemax.plan.rules import GateSpec, VerdictRule
from pytest_inferencemax.plan.suite import SUITE_FILE, Suite, load_suite
from pytest_inferencemax.plan.variants import Variant, VariantSet
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.plugin.variant_files import find_variants
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.serve.prefix_cache import DEV_MODE_ENV, RESET_PATHS, caching_enabled
from pytest_inferencemax.results.record import PointRecord


@dataclass
class SuiteCatalog:
    settings: Settings
    progress: Progress
    rootdir: Path
    run_dir: Path  # where a recipe's server files go
    devices: DeviceSlice | None = None  # this worker's GPUs: recipes are placed on them
    suites: dict[Path, Suite] = field(default_factory=dict)
    _tokenizers: dict[str, Any] = field(default_factory=dict)
    _compared: dict[str, PointRecord] | None = None
    _baselines: dict[str, BaselineTable] = field(default_factory=dict)
    _recipes: dict[tuple[Path, str], Recipe] = field(default_factory=dict)
    _variants: dict[Path, VariantSet | None] = field(default_factory=dict)

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
        if self.cache_reset(suite, recipe) == "vllm":  # its reset endpoint is a development one: served with this
            recipe = recipe.placed(DEV_MODE_ENV)  # set for the server, out of the recipe's key (as a GPU placement)
        if self.devices is not None:
            recipe = recipe.placed(self.devices.env())  # the GPU ids reach the server, not the recipe's hash
        return recipe

    def cache_reset(self, suite: Suite, recipe: Recipe | None) -> str | None:
        """The engine whose prefix cache is emptied before each point (--reset-prefix-cache), or None: ``on``
        always; ``auto`` when the launched ``recipe`` caches prefixes (never for a --server-url server, whose
        flags are unknown); ``off`` never."""
        mode, engine = self.settings.reset_prefix_cache, suite.suite.engine
        if mode == "off" or engine not in RESET_PATHS:
            return None
        if mode == "on":
            return engine
        return engine if recipe is not None and caching_enabled(engine, recipe.argv) else None

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

    def gate_spec(self, suite: Suite, stage_name: str) -> GateSpec | None:
        """The stage's gate (typed when the suite loaded) as this session runs it: ``${...}`` filled, a relative
        dataset beside the suite."""
        _, stage = suite.stage(stage_name)
        if stage.accuracy is None:
            return None
        return resolve_spec(stage.accuracy, base_dir=suite.directory, variables=self._suite_variables(suite),
                            where=f"{suite.path} [stages.{stage_name}.accuracy]")

    def _suite_variables(self, suite: Suite) -> dict[str, str]:
        """What ``${...}`` may name in a suite's accuracy table (as in its ``model``)."""
        return {"models_dir": str(self.settings.models_dir), "suite_dir": str(suite.directory)}

    def verdict_rule(self, suite: Suite, point: Point) -> VerdictRule:
        return suite.stage(point.stage)[1].verdict_rule
