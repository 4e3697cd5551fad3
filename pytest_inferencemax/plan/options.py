"""The one table of options: each option's name, help, parser, default and ini twin, stated once.

pytest's options and ini keys (``plugin/options.py``) and every command's shared arguments (``cli/``) are made
from it, as pytest-benchmark makes its options from one ``add_*_options`` function; a test compares
``cli.bench --help`` with ``pytest --help``. Help texts are true for both: where a command runs without a
suite, the help says what a suite's default becomes there.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

from pytest_inferencemax.plan.accuracy_at import accuracy_at
from pytest_inferencemax.plan.values import (
    at_least_two, boolean, cache_reset_mode, goodput_slos, repeat_count, rounds_max, non_negative_float, client_kind, conc_list, http_url, id_list, json_object, name_list, non_negative_int,
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
        """pytest's destination, and the ini key of an ``ini`` option."""
        return "inferencemax_" + self.field

    @property
    def field(self) -> str:
        """The attribute that holds the value: a field of ``Settings`` and of a command's arguments."""
        return self.name.replace("-", "_")

    def help_text(self) -> str:
        """The help as every command line shows it: the text, then the default (flags and unset ones: none)."""
        if self.default is None or self.flag:
            return self.help
        return f"{self.help} (default: {self.default})"


OPTIONS: tuple[Option, ...] = (
    Option("server-url", "benchmark a server that is already running at this URL; launch nothing", http_url,
           ini=True, metavar="URL"),
    Option("served-model-name", "model name to put in requests (default: the suite's served_model_name; without a "
           "suite, --model)", metavar="NAME"),
    Option("model", "model path or id: what a suite's server launches (default: the suite's) and, unless "
           "--tokenizer, what the workload is tokenized with", metavar="PATH"),
    Option("tokenizer", "tokenizer path or id for the workload (default: the model)", metavar="PATH"),
    Option("stage", "which stage of the suite to run, e.g. s1 or s2 (default: the suite's default_stage)",
           ini=True, metavar="NAME"),
    Option("conc", "concurrencies, one point each, e.g. 4,8,16 (in a suite: instead of every workload's list)",
           conc_list, metavar="LIST"),
    Option("num-prompts", "requests per point (default: the stage's CONC x N rule, marked in results when "
           "replaced; without a suite, 10 x CONC)", positive_int, metavar="N"),
    Option("num-gpus", "GPUs the server uses: its TP, and tput_per_gpu's divisor unless the stage fixes one "
           "(default: the suite's tp; without a suite, 1)", positive_int, ini=True, metavar="N"),
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
    Option("reset-prefix-cache", "empty the server's prefix cache before each point (vLLM's POST /reset_prefix_cache, "
           "served with VLLM_SERVER_DEV_MODE=1, which a launched vLLM recipe then gets; SGLang's /flush_cache): 'auto' "
           "when a launched recipe caches prefixes (no --no-enable-prefix-caching / --disable-radix-cache), 'on', "
           "or 'off'", cache_reset_mode, default="auto", ini=True, metavar="auto|on|off"),
    Option("goodput", "service level objectives in milliseconds, e.g. 'ttft:500 tpot:50 e2el:10000' (the reference "
           "client's --goodput): request_goodput: counts the requests within every one, per second; the record keeps "
           "the SLOs and the share met (docs/metrics.md)", goodput_slos, ini=True, metavar="SLOS"),
    Option("extra-body", "JSON object merged into every request body", json_object, metavar="JSON"),
    Option("api-key-env", "environment variable holding the server's API key (never logged)", str,
           default="OPENAI_API_KEY", ini=True, metavar="VAR"),
    Option("progress-interval", "seconds between progress lines when the output is not a terminal",
           positive_float, default=10.0, ini=True, metavar="S"),
    Option("skip-accuracy", "run points without the accuracy gate (development only: every result says so, "
           "and such results cannot be submitted)", flag=True),
    Option("accuracy-at", "also run the stage's accuracy task after these points' timed runs, on the same server at "
           "each point's own CONC, its limits as assertions: max, median, all, inferencex (InferenceX's: median and "
           "highest CONC >= 16 of 8192/1024 curves) or CONCs, comma-separated (default: off, the gate alone; "
           "docs/accuracy.md)", accuracy_at, ini=True, metavar="WHICH"),
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
    Option("submit-team", "once every point is judged (pytest: after the session), submit each qualifying "
           "configuration's points to its leaderboard as this team", str, metavar="TEAM"),
    Option("submit-dry-run", "save and print the payloads, send nothing (without --submit-team the payloads' "
           "team is 'DRY RUN: no team given')", flag=True),
    Option("submit-unqualified", "with --submit-team: also send configurations that did not qualify", flag=True),
    Option("submit-force", "with --submit-team: also send points whose accuracy gate was skipped or whose "
           "requests failed", flag=True),
    Option("leaderboard-url", "leaderboard to submit to instead of the stage's (also $LB_URL_OVERRIDE)",
           http_url, metavar="URL"),
    Option("shards-out", "write the selected tests as shards, one per server configuration (its points, its gate, "
           "pytest's node ids), to this JSON file; with --collect-only it plans a launcher's work "
           "(cli.slurm: one Slurm array task a shard)", str, metavar="FILE"),
    Option("save-detailed", "keep per-request arrays (ttfts, itls, lengths, errors) in each JSON", flag=True),
)


def option(name: str) -> Option:
    """The table's option called ``name`` (without dashes)."""
    return next(o for o in OPTIONS if o.name == name)


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...], required: tuple[str, ...] = (),
                  aliases: dict[str, str] | None = None) -> None:
    """Add the table's options ``names`` to a command's parser, with their help, parser and default; those in
    ``required`` must be given (one with an alias: checked by :func:`require` after parsing). ``aliases`` maps an
    old spelling (``--base-url``) to its option's name: it is accepted, not shown."""
    aliased = set((aliases or {}).values())
    for name in names:
        opt = option(name)
        common: dict[str, Any] = {"dest": opt.field, "help": opt.help_text().replace("%", "%%")}
        if opt.flag:
            parser.add_argument(f"--{name}", action="store_true", default=False, **common)
        else:
            parser.add_argument(f"--{name}", type=opt.type, default=opt.default, metavar=opt.metavar,
                                required=name in required and name not in aliased, **common)
    for old, name in (aliases or {}).items():
        opt = option(name)
        parser.add_argument(f"--{old}", dest=opt.field, type=opt.type, help=argparse.SUPPRESS)


def require(parser: argparse.ArgumentParser, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Exit through ``parser.error`` naming the options of ``names`` that were not given (for required options
    that also have an alias, which argparse cannot require)."""
    missing = [f"--{name}" for name in names if getattr(args, option(name).field) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
