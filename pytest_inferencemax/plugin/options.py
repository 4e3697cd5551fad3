"""Command-line options and ini settings, validated before anything starts.

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
from typing import Any, Callable

import pytest

from pytest_inferencemax.plan.values import (
    at_least_two, boolean, repeat_count, rounds_max, non_negative_float, client_kind, conc_list, http_url, id_list, json_object, name_list, non_negative_int,
    percentage, port_number, positive_float, positive_int, run_name,
)


@dataclass(frozen=True)
class Option:
    name: str  # without the leading dashes
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    ini: bool = False  # also settable as inferencemax_<name> in the ini file
    flag: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return "inferencemax_" + self.name.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("server-url", "benchmark a server that is already running at this URL; launch nothing", http_url,
           ini=True, metavar="URL"),
    Option("served-model-name", "model name to put in requests (default: the suite's served_model_name)",
           metavar="NAME"),
    Option("model", "model path or id to launch and tokenize with (default: the suite's)", metavar="PATH"),
    Option("tokenizer", "tokenizer path or id for the workload (default: the model)", metavar="PATH"),
    Option("stage", "which stage of the suite to run, e.g. s1 or s2 (default: the suite's default_stage)",
           ini=True, metavar="NAME"),
    Option("conc", "replace every workload's concurrency list, e.g. 4,8,16", conc_list, metavar="LIST"),
    Option("num-prompts", "requests per point instead of the stage's CONC x N rule (marked in results)",
           positive_int, metavar="N"),
    Option("num-gpus", "GPUs the server uses (its TP); default: the suite's tp", positive_int, ini=True,
           metavar="N"),
    Option("gpus-per-server", "give each server (one per xdist worker) its own K GPUs, exported as the "
           "visible-devices variable: worker gwN gets GPUs N*K..N*K+K-1; also its TP unless --num-gpus",
           positive_int, ini=True, metavar="K"),
    Option("gpus", "the GPU ids --gpus-per-server hands out (default: 0, 1, 2, ...), e.g. 0-7", id_list,
           ini=True, metavar="LIST"),
    Option("gpu-env", "variables that carry a server's GPU ids (default: HIP_VISIBLE_DEVICES where /dev/kfd "
           "exists, else CUDA_VISIBLE_DEVICES)", name_list, ini=True, metavar="VARS"),
    Option("seed", "seed of the random workload", non_negative_int, default=0, ini=True, metavar="N"),
    Option("results-dir", "where each run's folder of results goes (relative: to the working directory; in the ini "
           "file, to its folder; the default, to the rootdir)", str, default="results", ini=True, metavar="DIR"),
    Option("run-id", "name of this run's folder under --results-dir (default: the start time)", run_name,
           metavar="NAME"),
    Option("models-dir", "where suites find and build local models (${models_dir}; relative: to the working "
           "directory; in the ini file, to its folder; the default, to the rootdir)", str,
           default=".cache/models", ini=True, metavar="DIR"),
    Option("port", "port for a launched server; 0 picks a free one", port_number, default=0, metavar="N"),
    Option("server-start-timeout", "seconds to wait for a launched server to serve", positive_float,
           default=1800.0, ini=True, metavar="S"),
    Option("server-ready-timeout", "seconds to wait for a --server-url server to be ready (checked once per "
           "session: a server that is not ready fails every point at once with the cause)", positive_float,
           default=60.0, ini=True, metavar="S"),
    Option("telemetry-interval", "seconds between samples of the server's /metrics and the GPUs through each "
           "point (0: none); the series goes to <point>.telemetry.jsonl, its summary and a diagnosis to the record",
           non_negative_float, default=1.0, ini=True, metavar="S"),
    Option("request-timeout", "seconds one request may take (default: 300 + 0.5 x OSL)", positive_float,
           ini=True, metavar="S"),
    Option("stall-timeout", "fail a point when no request receives a byte for this many seconds",
           positive_float, default=300.0, ini=True, metavar="S"),
    Option("client-procs", "client processes to spread each point's concurrency over (one core reads about "
           "50,000 events/s; see benchmarks/README.md)", positive_int, default=1, ini=True, metavar="N"),
    Option("client", "load generator: 'precise' (ours: kernel receive stamps, pooled connections) or "
           "'reference' (the bounty client's semantics on aiohttp, for numbers comparable with its runner)",
           client_kind, default="precise", ini=True, metavar="NAME"),
    Option("repeat", "rounds per point on the same server: N, or 'auto' (2 rounds, then more only while the "
           "rounds' interval (widened for the repeated looks: 99% for 6 rounds) still holds the baseline figure, "
           "up to --repeat-max and --repeat-budget); every round's record goes to rounds/, the point's record carries their statistics",
           repeat_count, default=1, ini=True, metavar="N|auto"),
    Option("repeat-max", "with --repeat auto: the most rounds a point gets", rounds_max, default=6, ini=True,
           metavar="N"),
    Option("repeat-budget", "with --repeat auto: minutes this session may spend on rounds beyond each point's "
           "first two (default: no limit)", positive_float, ini=True, metavar="MIN"),
    Option("variants", "a variants file: every point once per recipe variant, ranked at the end (default: "
           "variants.toml beside a suite.toml, when there is one; docs/variants.md)", str, ini=True, metavar="FILE"),
    Option("max-variants", "refuse a variants file that expands to more variants (each starts a server)",
           positive_int, default=16, ini=True, metavar="N"),
    Option("prune", "stop a variant's curve once its finished points show it cannot qualify under the stage's "
           "rule; its remaining points are skipped with the reason", boolean, flag=True, ini=True),
    Option("prune-margin", "with --prune and one round per point: a point counts as lost when below its baseline "
           "by more than this, e.g. 5 or 5%", percentage, default=5.0, ini=True, metavar="PCT"),
    Option("rerun", "with variants: run points again even when a run in --results-dir measured them with the "
           "same recipe hash and workload (by default such points reuse that record)", flag=True),
    Option("parity", "after each point, run it again with both clients alternating (--parity-rounds each) and "
           "fail the point when their token totals differ or their throughputs/TPOT differ beyond run-to-run "
           "spread; writes <point>.parity.md/.json", flag=True),
    Option("parity-rounds", "runs per client for --parity (at least 2)", at_least_two, default=3, ini=True,
           metavar="N"),
    Option("client-lag-limit-ms", "event-loop lag (p99) above which a point is client-bound (default: 5% of "
           "the point's median gap between events, at least 1 ms)", positive_float, ini=True, metavar="MS"),
    Option("fail-client-bound", "fail points whose client was the bottleneck (default: a warning)", flag=True),
    Option("fail-on-stream-errors", "also fail points whose server sent error events in its streams (default: "
           "ignored as the bounty client ignores them, counted and warned about; lines it cannot read fail their "
           "requests in any case)", boolean, flag=True, ini=True),
    Option("extra-body", "JSON object merged into every request body", json_object, metavar="JSON"),
    Option("api-key-env", "environment variable holding the server's API key (never logged)", str,
           default="OPENAI_API_KEY", ini=True, metavar="VAR"),
    Option("progress-interval", "seconds between progress lines when the output is not a terminal",
           positive_float, default=10.0, ini=True, metavar="S"),
    Option("skip-accuracy", "run points without the accuracy gate (development only: every result says so, "
           "and such results cannot be submitted)", flag=True),
    Option("accuracy-dataset", "local .jsonl ({\"page\": text} per line) for a wikitext gate, for machines "
           "without the Hugging Face dataset cache", str, ini=True, metavar="PATH"),
    Option("accuracy-wikitext", "local copy of wikitext-2-raw-v1's test split for the stage-1 gate task "
           "wikitext_tokens (a .parquet, .jsonl or .txt file, or a folder; or builtin), instead of the Hugging Face "
           "hub's", str, ini=True, metavar="PATH"),
    Option("accuracy-chunk-tokenizer", "local copy (a folder) or hub id of the tokenizer that cuts and counts the "
           "stage-1 gate task's documents, instead of meta-llama/Llama-2-7b-hf (gated on the hub)", str, ini=True,
           metavar="PATH"),
    Option("compare-to", "a saved run folder (results/<run-id>, or a run id under --results-dir), checked before "
           "anything starts: compare each point's tput/GPU, median E2E and interactivity (with rounds: their means) with "
           "it, knowing which direction is better", str, metavar="RUN"),
    Option("compare-tolerance", "relative change that counts as a regression or improvement (with rounds, only when "
           "their 95% interval also excludes no change), e.g. 5 or 5%", percentage, default=5.0, ini=True, metavar="PCT"),
    Option("compare-fail", "fail points that regressed against --compare-to (default: a warning)", flag=True),
    Option("compare-any", "let --compare-to compare points measured with another workload or server (recipe, model, "
           "prompts, warmups, range ratio, seed, divisor, client); each comparison then says what differs (default: "
           "refused before anything starts)", boolean, flag=True, ini=True),
    Option("submit-team", "after the session, submit each qualifying configuration's points to its "
           "leaderboard as this team", str, metavar="TEAM"),
    Option("submit-dry-run", "save and print the payloads, send nothing (without --submit-team the payloads' "
           "team is 'DRY RUN: no team given')", flag=True),
    Option("submit-unqualified", "with --submit-team: also send configurations that did not qualify", flag=True),
    Option("submit-force", "with --submit-team: also send points whose accuracy gate was skipped or whose "
           "requests failed", flag=True),
    Option("leaderboard-url", "leaderboard to submit to instead of the stage's (also $LB_URL_OVERRIDE)",
           http_url, metavar="URL"),
    Option("save-detailed", "keep per-request arrays (ttfts, itls, lengths, errors) in each JSON", flag=True),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("inferencemax", "InferenceMAX-style serving benchmarks")
    for opt in OPTIONS:
        help_text = opt.help
        if opt.default is not None and not opt.flag:
            help_text += f" (default: {opt.default})"
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


def _option(name: str) -> Option:
    return next(o for o in OPTIONS if o.name == name)


def get(config: pytest.Config, name: str) -> Any:
    """The option's value: command line, else ini file (validated the same way), else default."""
    opt = _option(name)
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
    opt = _option(name)
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
    opt = _option(name)
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
    extra_body: dict[str, Any]
    api_key_env: str
    progress_interval: float
    save_detailed: bool
    skip_accuracy: bool
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
        paths = {name: resolve_path(config, name) for name in PATH_OPTIONS}
        api_key_env = get(config, "api-key-env")
        return cls(
            server_url=get(config, "server-url"), served_model_name=get(config, "served-model-name"),
            model=get(config, "model"), tokenizer=get(config, "tokenizer"), stage=get(config, "stage"),
            conc=get(config, "conc"), num_prompts=get(config, "num-prompts"), num_gpus=get(config, "num-gpus"),
            gpus_per_server=get(config, "gpus-per-server"), gpus=get(config, "gpus"), gpu_env=get(config, "gpu-env"),
            seed=get(config, "seed"), results_dir=paths["results-dir"][0],
            run_id=(get(config, "run-id") or getattr(config, "workerinput", {}).get("inferencemax_run_id")
                    or datetime.now().strftime("%Y%m%d-%H%M%S")),
            models_dir=paths["models-dir"][0], port=get(config, "port"),
            server_start_timeout=get(config, "server-start-timeout"),
            server_ready_timeout=get(config, "server-ready-timeout"),
            telemetry_interval=get(config, "telemetry-interval"),
            request_timeout=get(config, "request-timeout"), stall_timeout=get(config, "stall-timeout"),
            client_procs=get(config, "client-procs"), client=get(config, "client"),
            repeat=get(config, "repeat"), repeat_max=get(config, "repeat-max"),
            repeat_budget=get(config, "repeat-budget"), variants=_ini_local(config, "variants"),
            max_variants=get(config, "max-variants"), prune=get(config, "prune"),
            prune_margin=get(config, "prune-margin"), rerun=get(config, "rerun"), parity=get(config, "parity"), parity_rounds=get(config, "parity-rounds"), client_lag_limit_ms=get(config, "client-lag-limit-ms"),
            fail_client_bound=get(config, "fail-client-bound"),
            fail_on_stream_errors=get(config, "fail-on-stream-errors"), extra_body=get(config, "extra-body") or {},
            api_key_env=api_key_env, progress_interval=get(config, "progress-interval"),
            save_detailed=get(config, "save-detailed"), skip_accuracy=get(config, "skip-accuracy"),
            accuracy_dataset=_ini_local(config, "accuracy-dataset"),
            accuracy_wikitext=_ini_local(config, "accuracy-wikitext"),
            accuracy_chunk_tokenizer=_ini_local(config, "accuracy-chunk-tokenizer"), compare_to=get(config, "compare-to"),
            compare_tolerance=get(config, "compare-tolerance"), compare_fail=get(config, "compare-fail"),
            compare_any=get(config, "compare-any"),
            submit_team=get(config, "submit-team"), submit_dry_run=get(config, "submit-dry-run"),
            submit_unqualified=get(config, "submit-unqualified"), submit_force=get(config, "submit-force"),
            leaderboard_url=get(config, "leaderboard-url"), api_key=os.environ.get(api_key_env) or None,
            path_origins={name: how for name, (_, how) in paths.items()},
        )
