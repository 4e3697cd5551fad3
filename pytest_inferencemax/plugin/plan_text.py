"""The plan that ``pytest --collect-only`` shows: each point's requests, warmups, server and GPUs, and each
server configuration's rendered command."""
from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

import pytest

from pytest_inferencemax.gate.accuracy import task_label
from pytest_inferencemax.plan.devices import default_visibility_vars, device_slice
from pytest_inferencemax.errors import ConfigError
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.recipe import Recipe
from pytest_inferencemax.plugin.variant_runs import estimate_line
from pytest_inferencemax.results.redact import redact_argv, redact_env

if TYPE_CHECKING:
    from pytest_inferencemax.plugin.session import BenchSession

POINT_ARG = "inferencemax_point"
GATE_ARG = "inferencemax_gate"  # one accuracy test per server configuration, before its points


def point_of(item: pytest.Item) -> Point | None:
    """The point (or the gate's first point) a collected test runs; None for other tests."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get(POINT_ARG) or callspec.params.get(GATE_ARG)


def variant_lines(bench: BenchSession, items: list[pytest.Item]) -> list[str]:
    """Per suite with variants: their number, grid sizes, points, servers and estimated time."""
    by_suite: dict[str, tuple[Any, list[Point]]] = {}
    try:
        for item in items:
            point = point_of(item)
            if isinstance(point, Point) and POINT_ARG in item.callspec.params:
                if (suite := bench.catalog.suite_of(item.path)) is not None:
                    by_suite.setdefault(str(suite.path), (suite, []))[1].append(point)
        return [line for suite, points in by_suite.values() if (line := estimate_line(bench, suite, points))]
    except ConfigError:  # the collection's own check reports it, as a usage error
        return []


def command_line(recipe: Recipe) -> str:
    """A server's command as its recipe hash covers it, on one line: the environment it sets (``K=V``), then the
    argv, shell-quoted, secrets redacted, the port and run- or machine-specific paths as ``${placeholders}``."""
    ident = recipe.identity()
    env = [f"{k}={shlex.quote(v)}" for k, v in redact_env(ident.env).items()]
    return " ".join([*env, shlex.join(redact_argv(ident.argv))])


def recipe_lines(bench: BenchSession, recipes: dict[str, Recipe]) -> list[str]:
    """Each server configuration's command and files, then what its placeholders stand for here."""
    lines: list[str] = []
    meanings: dict[str, dict[str, None]] = {}
    for key, recipe in recipes.items():
        command = command_line(recipe)
        lines.append(f"  recipe {key} runs: {command}")
        lines += [f"    writes ${{files_dir}}/{name} ({len(content.encode())} bytes, its content in the hash)"
                  for name, content in recipe.files]
        used = set(re.findall(r"\$\{(\w+)\}", command)) | ({"files_dir"} if recipe.files else set())
        for name, value in recipe.symbols:
            if name in used:
                meanings.setdefault(name, {})[value] = None
    port = bench.settings.port
    where = [f"${{port}} = {f'{port} (--port)' if port else 'a free port chosen when the server starts'}"]
    where += [f"${{{name}}} = {', '.join(values)}" for name, values in meanings.items()]
    return [*lines, "  where " + "; ".join(where) + " (run- and machine-specific: not in the hash)"] if lines else []


def _at_load(bench: BenchSession, suite: Any, point: Point) -> str:
    """--accuracy-at: ", then the accuracy task at CONC n (max)" for a point it chooses."""
    chosen = bench.gates.at_load_selection(suite, point)
    return f", then the accuracy task at num_concurrent {point.conc} ({chosen}, --accuracy-at)" if chosen else ""


def plan_lines(bench: BenchSession, items: list[pytest.Item], workers: int | None) -> list[str]:
    """One line per gate and point, then the server configurations and each worker's GPUs."""
    lines: list[str] = []
    recipes: dict[str, Recipe] = {}
    for item in items:
        point = point_of(item)
        suite = bench.catalog.suite_of(item.path) if point else None
        if point is None or suite is None:
            continue
        server = bench.settings.server_url
        if not server:
            recipe = bench.catalog.recipe(suite, point)
            recipes.setdefault(key := recipe.key, recipe)
            server = f"recipe {key}"
        if GATE_ARG in item.callspec.params:
            spec = bench.catalog.gate_spec(suite, point.stage)
            what = (f"accuracy gate {task_label(spec)} ({spec.rule.value})" if spec else "no accuracy gate in this stage")
            if bench.settings.skip_accuracy:
                what += ", skipped (--skip-accuracy)"
            lines.append(f"  {item.callspec.id}: {what}, before the points of server {server}")
            continue
        lines.append(f"  {point.id}: stage {point.stage}, {point.num_prompts} requests after "
                     f"{point.client.before_timed(point.conc)}, client {point.client.source}, {point.client.prompts}, "
                     f"range ratio {point.range_ratio}, TP {point.tp}, tput/GPU divisor {point.tput_per_gpu_divisor}, "
                     f"server {server}" + _at_load(bench, suite, point))
    if recipes:
        lines.append(f"  {len(recipes)} server configuration(s); points of one configuration share a server")
        lines += recipe_lines(bench, recipes)
    lines += variant_lines(bench, items)
    if lines and not bench.rounds.single:
        lines.append(f"  rounds: {bench.rounds.describe()} (--repeat); each round's record under rounds/")
    s = bench.settings
    if recipes and s.gpus_per_server:
        env_vars = ",".join(s.gpu_env or default_visibility_vars())
        shares = [device_slice(w, s.gpus_per_server, s.gpus, ()).devices for w in range(workers or 1)]
        lines.append(f"  GPUs per server ({env_vars}): " + "; ".join(
            f"{'gw' + str(w) if workers else 'server'} {','.join(d)}" for w, d in enumerate(shares)))
    return ["inferencemax plan:", *lines] if lines else []


