"""Recipe variants: named changes to a stage's server recipe, each a test axis (docs/variants.md).

A variants file (``variants.toml`` beside ``suite.toml``, or ``--variants FILE``) lists variants::

    [[variant]]
    name = "base"                                   # the recipe as the suite gives it

    [[variant]]
    name = "mns${max_num_seqs}-mbt${max_num_batched_tokens}"
    grid = { max_num_seqs = [64, 128], max_num_batched_tokens = [512, 1024] }
    args_set = { "--max-num-seqs" = "${max_num_seqs}", "--max-num-batched-tokens" = "${max_num_batched_tokens}" }

A variant changes the rendered argv (``args_set`` replaces a flag's value, ``--flag value`` or
``--flag=value``, adding the flag when the recipe lacks it; ``args_add`` appends; ``args_remove``
drops flags, with ``--flag=value`` forms, but not a separate value: use ``args_set`` for those),
the environment (``env`` sets, ``env_remove`` unsets), the recipe's ``${vars}`` (e.g. an image tag
the argv names) and the ``model``. A ``grid`` is expanded into one variant per combination of its
lists, its values filled into the name and every change (``${name}``), so each name must differ.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_inferencemax.errors import ConfigError, validation_problems
from pytest_inferencemax.plan.suite import read_toml

VARIANTS_FILE = "variants.toml"
NAME = re.compile(r"^[A-Za-z0-9_.]+$")  # no "-": it separates a test id's parts
Scalar = Union[str, int, float, bool]


class VariantsError(ConfigError):
    """A variants file that cannot be used; the message names the file, the variant and the fix."""


class VariantSpec(BaseModel):
    """One ``[[variant]]`` table, before its grid is expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    args_set: dict[str, Scalar] = Field(default_factory=dict)
    args_add: tuple[str, ...] = ()
    args_remove: tuple[str, ...] = ()
    env: dict[str, Scalar] = Field(default_factory=dict)
    env_remove: tuple[str, ...] = ()
    vars: dict[str, Scalar] = Field(default_factory=dict)
    model: str | None = None
    grid: dict[str, tuple[Scalar, ...]] = Field(default_factory=dict)
    note: str | None = None


class VariantsFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: tuple[VariantSpec, ...] = Field(min_length=1)


@dataclass(frozen=True)
class Variant:
    """An expanded variant: concrete changes, and the grid values it was made from."""

    name: str
    args_set: tuple[tuple[str, str], ...] = ()
    args_add: tuple[str, ...] = ()
    args_remove: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_remove: tuple[str, ...] = ()
    vars: tuple[tuple[str, str], ...] = ()
    model: str | None = None
    grid: tuple[tuple[str, str], ...] = ()  # (grid key, value) this variant was made from
    source: str = ""  # the spec's name template and file, for messages

    def changes(self) -> dict[str, Any]:
        """What the variant changes, for the record (empty parts left out)."""
        out: dict[str, Any] = {"args_set": dict(self.args_set), "args_add": list(self.args_add),
                               "args_remove": list(self.args_remove), "env": dict(self.env),
                               "env_remove": list(self.env_remove), "vars": dict(self.vars), "model": self.model,
                               "grid": dict(self.grid)}
        return {k: v for k, v in out.items() if v}

    def apply_argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        out = [a for a in argv if a not in self.args_remove and a.split("=", 1)[0] not in self.args_remove]
        for flag, value in self.args_set:
            out = _set_flag(out, flag, value)
        return tuple(out) + self.args_add

    def apply_env(self, env: dict[str, str]) -> dict[str, str]:
        merged = {**{k: v for k, v in env.items() if k not in self.env_remove}, **dict(self.env)}
        return merged


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``flag``'s value replaced (``--flag value`` or ``--flag=value``), or the pair appended."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[:i + 1] + [value] + argv[i + 2:]
        if arg.startswith(flag + "="):
            return argv[:i] + [f"{flag}={value}"] + argv[i + 1:]
    return argv + [flag, value]


def _fill(text: str, values: dict[str, str], where: str) -> str:
    try:
        return Template(text).substitute(values)
    except KeyError as exc:
        raise VariantsError(f"{where}: ${{{exc.args[0]}}} is not a grid key here (grid keys: "
                            f"{', '.join(sorted(values)) or 'none'}); recipe placeholders such as ${{model}} "
                            "belong in the suite's argv, not in a variant") from None
    except ValueError as exc:
        raise VariantsError(f"{where}: bad placeholder ({exc}); write $$ for a literal $") from None


def _expand(spec: VariantSpec, where: str) -> list[Variant]:
    keys = list(spec.grid)  # in the file's order: the first key varies slowest
    for key in keys:
        if not spec.grid[key]:
            raise VariantsError(f"{where}: grid key {key!r} has no values; give a list such as [64, 128]")
    combos = itertools.product(*(spec.grid[k] for k in keys)) if keys else [()]
    out = []
    for combo in combos:
        values = {k: _text(v) for k, v in zip(keys, combo)}

        def f(text: Scalar) -> str:
            return _fill(_text(text), values, where)

        name = f(spec.name)
        if not NAME.match(name):
            raise VariantsError(f"{where}: variant name {name!r} must be letters, digits, '_' or '.' (it ends "
                                "each test id, where '-' separates the parts)")
        out.append(Variant(
            name=name, args_set=tuple((f(k), f(v)) for k, v in spec.args_set.items()),
            args_add=tuple(f(a) for a in spec.args_add), args_remove=tuple(f(a) for a in spec.args_remove),
            env=tuple(sorted((k, f(v)) for k, v in spec.env.items())), env_remove=tuple(spec.env_remove),
            vars=tuple(sorted((k, f(v)) for k, v in spec.vars.items())),
            model=f(spec.model) if spec.model else None, grid=tuple(values.items()), source=where))
    if keys and len({v.name for v in out}) < len(out):
        example = spec.name + "".join(f"_{k}${{{k}}}" for k in keys)
        raise VariantsError(f"{where}: the grid's variants get the same name; put every grid key in the name, "
                            f"e.g. {example!r}")
    return out


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class VariantSet:
    """A variants file, expanded: the variants in file order and each grid's size."""

    path: Path
    variants: tuple[Variant, ...]
    grids: tuple[tuple[str, tuple[int, ...]], ...]  # (name template, size of each grid key)

    def get(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def describe(self) -> str:
        grids = "; ".join(f"{t}: grid {' x '.join(map(str, sizes))}" for t, sizes in self.grids)
        return f"{len(self.variants)} variant(s) from {self.path}" + (f" ({grids})" if grids else "")


def load_variants(path: Path, limit: int | None = None) -> VariantSet:
    """The variants of ``path``, expanded; :class:`VariantsError` names what is wrong and the fix.
    ``limit``: the most variants allowed (``--max-variants``)."""
    path = Path(path)
    raw = read_toml(path, VariantsError, "variants file not found: give --variants an existing file")
    try:
        parsed = VariantsFileModel.model_validate(raw)
    except ValidationError as exc:
        raise VariantsError(f"{path}: {validation_problems(exc, 5)}. Each [[variant]] takes name, args_set, args_add, args_remove, "
                            "env, env_remove, vars, model, grid, note (docs/variants.md)") from None
    variants: list[Variant] = []
    grids = []
    for n, spec in enumerate(parsed.variant, 1):
        where = f"{path} [[variant]] #{n} ({spec.name})"
        expanded = _expand(spec, where)
        if spec.grid:
            grids.append((spec.name, tuple(len(values) for values in spec.grid.values())))
        for v in expanded:
            if any(v.name == seen.name for seen in variants):
                raise VariantsError(f"{where}: variant name {v.name!r} is used twice; names must differ")
            variants.append(v)
    if limit is not None and len(variants) > limit:
        raise VariantsError(f"{path}: {len(variants)} variants exceed --max-variants {limit} (each starts its own "
                            f"server); shrink the grid, or ask for them all with --max-variants {len(variants)}")
    return VariantSet(path=path, variants=tuple(variants), grids=tuple(grids))
