"""Server recipes: the suite's launch command and environment, rendered for a point.

Placeholders use ``${name}`` (``string.Template``), as the bounty's shell scripts do, so
JSON in config files needs no escaping. Points whose rendered recipe is the same share one
server; ``key`` identifies what that server runs, stable across runs and machines: it hashes
the rendered argv, environment and generated files' content with the run- and machine-specific
values (the port, ``${files_dir}`` in the run folder, ``${models_dir}``, ``${suite_dir}``,
``${python}``) put back as their placeholders, and without the worker's GPU ids (``placed``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from string import Template

from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite, SuiteError
from pytest_inferencemax.plan.variants import Variant

_PORT = "${port}"
KEY_SCHEME = "r2"
"""The prefix of every key: a key without it (12 hex digits) was written by a version that hashed the run
folder and machine paths too, so it never equals one of these (results/identity.py says so)."""
SYMBOLIC = ("files_dir", "suite_dir", "models_dir", "python")
"""Placeholders whose values depend on the run or the machine, not on what the server runs; the port stays
``${port}`` until a server starts."""


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
class RecipeIdentity:
    """A recipe as its key sees it: what the server runs, with ``${port}``, ``${files_dir}``, ``${models_dir}``,
    ``${suite_dir}`` and ``${python}`` where this run and machine have their values (``Recipe.identity``)."""

    suite: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # sorted; a worker's GPU ids left out
    files: tuple[tuple[str, str], ...]  # (name in ${files_dir}, content), sorted


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
    symbols: tuple[tuple[str, str], ...] = ()  # (placeholder, its value here) of SYMBOLIC: put back for the key
    placement: tuple[str, ...] = ()  # env variables that say where it runs (a worker's GPU ids): not in the key

    def symbolic(self, text: str) -> str:
        """``text`` with this run's and machine's values of ``symbols`` replaced by their placeholders (a whole
        path or a leading part of one, never part of a longer name: ``/m`` in ``/m/x`` but not in ``/m2``)."""
        values: dict[str, str] = {}
        for name, value in self.symbols:
            if value:
                values.setdefault(value, name)  # two placeholders with one value: the first of SYMBOLIC
        if not values:
            return text
        pattern = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))  # longest first
        return re.sub(rf"(?<![\w.~/-])(?:{pattern})(?![\w.~-])", lambda m: "${" + values[m.group(0)] + "}", text)

    def identity(self) -> RecipeIdentity:
        """What the key hashes: the suite, argv, environment (less ``placement``) and files, run- and
        machine-specific values as placeholders; the port is ``${port}`` throughout."""
        return RecipeIdentity(suite=self.suite, argv=tuple(self.symbolic(a) for a in self.argv),
                              env=tuple((k, self.symbolic(v)) for k, v in self.env if k not in self.placement),
                              files=self.files)

    @cached_property
    def key(self) -> str:
        """``r2-`` and 12 hex digits of the identity's hash: equal for the same server configuration in any run
        folder, on any port and machine; different when an argument, a variable or a file's content differs."""
        blob = json.dumps(dataclasses.asdict(self.identity()), sort_keys=True)
        return f"{KEY_SCHEME}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def placed(self, env: dict[str, str]) -> "Recipe":
        """This recipe on a worker's GPUs: ``env`` (e.g. ``CUDA_VISIBLE_DEVICES``) set for the server and left
        out of the key, since where a server runs is not what it runs."""
        merged = {**dict(self.env), **env}
        return dataclasses.replace(self, env=tuple(sorted(merged.items())),
                                   placement=tuple(sorted({*self.placement, *env})))

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
                  health_path=spec.health_path, host=ctx.host, variant=variant.name if variant else None,
                  symbols=tuple((name, values[name]) for name in SYMBOLIC))


def resolve_model(suite: Suite, models_dir: Path, override: str | None, stage: str | None = None) -> str:
    """The model: ``--model`` if given, else the stage's, else the suite's, with ``${models_dir}`` filled."""
    raw = override or suite.stage(stage)[1].model or suite.suite.model
    return fill(raw, {"models_dir": str(models_dir), "suite_dir": str(suite.directory)},
                f"{suite.path} [suite].model")
