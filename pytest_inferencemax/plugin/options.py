"""pytest's options and ini settings, made from the one option table (``plan/options.py``), validated before
anything starts, and read into :class:`Settings`.

Each option has an ini twin (``inferencemax_<name>`` in pyproject.toml / pytest.ini) where a
team would want a lasting default; the command line wins over the ini file.

Relative paths resolve where their writer stood (:func:`resolve_path`): a command-line value against the
working directory, an ini value against the ini file's folder (as pytest's own ``paths`` ini settings, and
``-o`` overrides with them), a built-in default against pytest's rootdir. Settings hold absolute paths.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_inferencemax.plan.options import OPTIONS, option


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("inferencemax", "InferenceMAX-style serving benchmarks")
    for opt in OPTIONS:
        help_text = opt.help_text()
        if opt.ini:
            help_text += f" [ini: {opt.dest}]"
        help_text = help_text.replace("%", "%%")  # argparse %-formats help texts
        if opt.flag:
            group.addoption(f"--{opt.name}", action="store_true", default=False, dest=opt.dest, help=help_text)
        else:
            group.addoption(f"--{opt.name}", type=opt.type, default=None, dest=opt.dest,
                            metavar=opt.metavar, help=help_text)
        if opt.ini:
            parser.addini(opt.dest, help=opt.help, default=None)


def get(config: pytest.Config, name: str) -> Any:
    """The option's value: command line, else ini file (validated the same way), else default."""
    opt = option(name)
    value = config.getoption(opt.dest)
    if value is not None and value is not False:
        return value
    if opt.ini:
        raw = config.getini(opt.dest)
        if raw not in (None, "", []):
            try:
                return opt.type(str(raw)) if opt.type else raw
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"ini setting {opt.dest} = {raw!r}: {exc}") from None
    return opt.default


PATH_OPTIONS = ("results-dir", "models-dir")  # folders: absolute Paths in Settings (resolve_path)
# ini settings naming a file or folder, or else a hub id, `builtin` or a name in the suite's folder: a relative
# ini value becomes the path beside the ini file where that exists (then it is that, not a name)
INI_LOCAL_PATHS = ("variants", "accuracy-dataset", "accuracy-wikitext", "accuracy-chunk-tokenizer")


def _ini_folder(config: pytest.Config) -> Path:
    """What pytest resolves ``paths`` ini values against: the ini file's folder (the working directory
    for an ``-o`` override without an ini file)."""
    return Path(config.inipath.parent if config.inipath is not None else config.invocation_params.dir)


def resolve_path(config: pytest.Config, name: str) -> tuple[Path, str]:
    """A folder option as an absolute path, and how it came about (for messages): a command-line value
    relative to the working directory, an ini value (or ``-o``) relative to the ini file's folder, the
    default relative to pytest's rootdir; ``~`` expanded, ``..`` folded."""
    opt = option(name)
    cli = config.getoption(opt.dest)
    ini = config.getini(opt.dest) if opt.ini and cli is None else None
    if cli is not None:
        raw, base = str(cli), Path(config.invocation_params.dir)
        how = f"--{name} {raw} on the command line" + ("" if _absolute(raw) else f", under the working directory {base}")
    elif ini not in (None, "", []):
        raw, base = str(ini), _ini_folder(config)
        overridden = any(o.split("=", 1)[0].strip() == opt.dest for o in getattr(config.option, "override_ini", None) or ())
        where = f"-o {opt.dest}={raw}" if overridden else f"{opt.dest} = {raw} in {config.inipath}"
        how = where + ("" if _absolute(raw) else f", under {base}")
    else:
        raw, base = str(opt.default), Path(config.rootpath)
        how = f"the default {raw} under pytest's rootdir {base} (no --{name}, no {opt.dest} in an ini file)"
    path = Path(raw).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else base / path)), how


def _absolute(raw: str) -> bool:
    return Path(raw).expanduser().is_absolute()


def _ini_local(config: pytest.Config, name: str) -> str | None:
    """``get`` for an option of INI_LOCAL_PATHS: a relative ini value naming something beside the ini file
    becomes its absolute path (a command-line value stays as written: relative to the working directory)."""
    value = get(config, name)
    opt = option(name)
    if value is None or config.getoption(opt.dest) is not None or _absolute(value):
        return value
    beside = _ini_folder(config) / value
    return os.path.abspath(beside) if beside.exists() else value


@dataclass(frozen=True)
class Settings:
    """Every option's value for this session."""

    server_url: str | None
    served_model_name: str | None
    model: str | None
    tokenizer: str | None
    stage: str | None
    conc: tuple[int, ...] | None
    num_prompts: int | None
    num_gpus: int | None
    gpus_per_server: int | None
    gpus: tuple[str, ...] | None
    gpu_env: tuple[str, ...] | None
    seed: int
    results_dir: Path
    run_id: str
    models_dir: Path
    port: int
    server_start_timeout: float
    server_ready_timeout: float
    telemetry_interval: float
    request_timeout: float | None
    stall_timeout: float
    client_procs: int
    client: str
    repeat: int | str
    repeat_max: int
    repeat_budget: float | None  # minutes
    variants: str | None
    max_variants: int
    prune: bool
    prune_margin: float  # percent
    rerun: bool
    parity: bool
    parity_rounds: int
    client_lag_limit_ms: float | None
    fail_client_bound: bool
    fail_on_stream_errors: bool
    goodput: dict[str, float] | None
    reset_prefix_cache: str
    extra_body: dict[str, Any]
    api_key_env: str
    progress_interval: float
    shards_out: str | None
    save_detailed: bool
    skip_accuracy: bool
    accuracy_at: tuple[str | int, ...] | None  # --accuracy-at (plan/accuracy_at.py); None: the gate alone
    compare_to: str | None
    compare_tolerance: float  # percent
    compare_fail: bool
    compare_any: bool
    submit_team: str | None
    submit_dry_run: bool
    submit_unqualified: bool
    submit_force: bool
    leaderboard_url: str | None
    accuracy_dataset: str | None
    accuracy_wikitext: str | None
    accuracy_chunk_tokenizer: str | None
    api_key: str | None = field(default=None, repr=False)
    # how each of PATH_OPTIONS came about, e.g. "the default .cache/models under pytest's rootdir /x (...)"
    path_origins: dict[str, str] = field(default_factory=dict, compare=False)

    def models_dir_note(self, path: str | Path) -> str:
        """For a message about a missing folder: where ``${models_dir}`` came from and the fix, when ``path``
        lies in it; else ''."""
        if not Path(os.path.abspath(Path(path).expanduser())).is_relative_to(self.models_dir):
            return ""
        how = self.path_origins.get("models-dir", "--models-dir")
        return (f"${{models_dir}} is {self.models_dir}: {how}. Pass --models-dir DIR where the model is "
                "(scripts/setup.sh builds the embedded suite's in the repository's .cache/models)")

    def explain(self, message: str) -> str:
        """``message`` with :meth:`models_dir_note` added when it names ``${models_dir}`` or a path in it."""
        if "${models_dir} is" in message or not re.search(re.escape(str(self.models_dir)) + r"(?![^\s/.,;:)'\"])",
                                                          message):
            return message
        return f"{message.rstrip().rstrip('.')}. {self.models_dir_note(self.models_dir)}"

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Settings":
        """Every option of the table under its field name, then what needs more than its value: folders made
        absolute, paths beside the ini file, the run id, the API key read from its variable."""
        values: dict[str, Any] = {opt.field: get(config, opt.name) for opt in OPTIONS}
        paths = {name: resolve_path(config, name) for name in PATH_OPTIONS}
        values.update({option(name).field: path for name, (path, _) in paths.items()})
        values.update({option(name).field: _ini_local(config, name) for name in INI_LOCAL_PATHS})
        values["run_id"] = (values["run_id"] or getattr(config, "workerinput", {}).get("inferencemax_run_id")
                            or datetime.now().strftime("%Y%m%d-%H%M%S"))
        values["extra_body"] = values["extra_body"] or {}
        return cls(**values, api_key=os.environ.get(values["api_key_env"]) or None,
                   path_origins={name: how for name, (_, how) in paths.items()})
