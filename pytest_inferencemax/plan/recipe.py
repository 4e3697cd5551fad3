"""Server recipes: the suite's launch command and environment, rendered for a point.

Placeholders use ``${name}`` (``string.Template``), as the bounty's shell scripts do, so
JSON in config files needs no escaping. Points whose rendered recipe is the same share one
server; ``key`` identifies that recipe independent of the port.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite, SuiteError
from pytest_inferencemax.plan.variants import Variant

_PORT = "${port}"


@dataclass(frozen=True)
class RecipeContext:
    """Values that come from the session rather than the point."""

    model: str
    served_model_name: str
    tokenizer: str
    files_dir: Path
    models_dir: Path
    host: str
    python: str = sys.executable


@dataclass(frozen=True)
class Recipe:
    """A rendered launch recipe; ``${port}`` stays open until a port is chosen."""

    suite: str
    engine: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]
    files_dir: Path
    health_path: str
    host: str
    variant: str | None = None  # the variant it was rendered for (its changes are in argv and env)

    @property
    def key(self) -> str:
        blob = json.dumps([self.suite, self.argv, self.env, self.files], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def command(self, port: int) -> list[str]:
        return [a.replace(_PORT, str(port)) for a in self.argv]

    def environment(self, port: int) -> dict[str, str]:
        return {k: v.replace(_PORT, str(port)) for k, v in self.env}

    def write_files(self) -> None:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        for name, content in self.files:
            (self.files_dir / name).write_text(content, encoding="utf-8")


def variables(suite: Suite, point: Point, ctx: RecipeContext, variant: Variant | None = None) -> dict[str, str]:
    """Every placeholder a recipe may use for this point (a variant's vars and model included)."""
    _, stage = suite.stage(point.stage)
    spec = suite.server.merged(stage.server)
    values: dict[str, str] = {k: str(v) for k, v in spec.vars.items()}
    for rule in spec.when:
        if rule.match.matches(point.isl, point.osl, point.conc):
            values.update({k: str(v) for k, v in rule.vars.items()})
    if variant is not None:
        values.update(dict(variant.vars))
    values.update(
        model=variant.model if variant is not None and variant.model else ctx.model, served_model_name=ctx.served_model_name, tokenizer=ctx.tokenizer,
        tp=str(point.tp), isl=str(point.isl), osl=str(point.osl), conc=str(point.conc),
        host=ctx.host, port=_PORT, python=ctx.python, files_dir=str(ctx.files_dir),
        models_dir=str(ctx.models_dir), suite_dir=str(suite.directory),
    )
    return values


def fill(template: str, values: dict[str, str], where: str) -> str:
    try:
        return Template(template).substitute(values)
    except KeyError as exc:
        raise SuiteError(f"{where}: unknown placeholder ${{{exc.args[0]}}}; known: "
                         f"{', '.join(sorted(values))}") from None
    except ValueError as exc:
        raise SuiteError(f"{where}: bad placeholder ({exc}); write $$ for a literal $") from None


def render_recipe(suite: Suite, point: Point, ctx: RecipeContext, variant: Variant | None = None) -> Recipe:
    """The point's launch recipe; with ``variant``, the suite's argv and env changed as it says."""
    _, stage = suite.stage(point.stage)
    spec = suite.server.merged(stage.server)
    if not spec.argv:
        raise SuiteError(f"{suite.path}: [server] argv is empty; give the launch command, "
                         "or use --server-url to benchmark a server you run yourself")
    values = variables(suite, point, ctx, variant)
    where = f"{suite.path} [server]"
    argv = tuple(fill(a, values, where) for a in spec.argv)
    env = {k: fill(v, values, where) for k, v in spec.env.items()}
    if variant is not None:
        argv, env = variant.apply_argv(argv), variant.apply_env(env)
    return Recipe(suite=suite.name, engine=suite.suite.engine, argv=argv, env=tuple(sorted(env.items())),
                  files=tuple(sorted(spec.files.items())), files_dir=ctx.files_dir,
                  health_path=spec.health_path, host=ctx.host, variant=variant.name if variant else None)


def resolve_model(suite: Suite, models_dir: Path, override: str | None, stage: str | None = None) -> str:
    """The model: ``--model`` if given, else the stage's, else the suite's, with ``${models_dir}`` filled."""
    raw = override or suite.stage(stage)[1].model or suite.suite.model
    return fill(raw, {"models_dir": str(models_dir), "suite_dir": str(suite.directory)},
                f"{suite.path} [suite].model")
