"""Parity: one point run with both load generators, alternating, against the same server.

    python -m pytest_inferencemax.cli.parity --base-url http://127.0.0.1:8000 --model NAME --tokenizer PATH \\
        --isl 128 --osl 64 --conc 4 --rounds 3 --out parity/

Runs precise, reference, precise, reference, … (``--rounds`` of each), every run with its own
``cache_salt`` (so no run reuses KV blocks another left in the prefix cache) and the same prompts, and
reads the server's ``/metrics`` around each run. The table lists every reference key: both clients'
means over their rounds, the difference, each client's run-to-run spread, and under it the server's own
view of each run. Judged (exit 1 when one fails): token totals identical in every run; for throughputs
and TPOT, the difference of the means within the larger of the two clients' run-to-run spreads (max -
min): a CPU server alone moves several percent between runs, so single runs prove nothing. TTFT, ITL
and E2E differences are shown and explained, not judged (docs/metrics.md, "Two clients").
"""
from __future__ import annotations

import statistics
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from pytest_inferencemax.plan.values import CLIENTS

from pytest_inferencemax.measure.loadtypes import ClientConfig
from pytest_inferencemax.measure.multiclient import run_client_load
from pytest_inferencemax.measure.metrics import PERCENTILE_METRICS, compute_metrics
from pytest_inferencemax.serve.server_metrics import read_totals, server_view
from pytest_inferencemax.measure.workload import RequestSpec

COUNT_KEYS = ("completed", "total_input_tokens", "total_output_tokens")
RATE_KEYS = ("duration", "request_throughput", "output_throughput", "total_token_throughput")
# The latency keys compute_metrics writes (the reference's ttft/tpot/itl/e2el, and our token_itl)
LATENCY_KEYS = tuple(f"{stat}_{m}_ms" for m in PERCENTILE_METRICS for stat in ("mean", "median", "std", "p99"))
REFERENCE_KEYS = COUNT_KEYS + RATE_KEYS + LATENCY_KEYS
JUDGED_WITHIN_SPREAD = ("request_throughput", "output_throughput", "total_token_throughput",
                        "mean_tpot_ms", "median_tpot_ms")
EXPLAINED = {
    "ttft": "the reference opens a new connection per request, inside its TTFT, and stamps each chunk after "
            "decoding and parsing it; ours writes on pooled connections and stamps reads on arrival",
    "itl": "both stamp every event; the reference's stamps wait for its event loop and JSON parsing, so its gaps "
           "carry the client's own jitter",
    "token_itl": "ours, not a reference key: each event's gap shared by the tokens it brought (equal to ITL where "
                 "every event carries one token, as on vLLM)",
    "e2el": "TTFT's connect difference plus the last event's stamping delay",
}


class ParityAborted(RuntimeError):
    """A parity run was cut short (the server died or stalled); the message says which run and why."""


@dataclass
class ParityRun:
    """One run of one client: its reference-key figures and the server's view of it."""

    client: str
    round: int
    figures: dict[str, float]
    server: dict[str, Any]
    failed: int = 0


@dataclass
class ParityRow:
    key: str
    means: dict[str, float]  # client -> mean over its rounds
    spreads: dict[str, float]  # client -> max - min over its rounds
    stdevs: dict[str, float]
    diff: float  # reference mean - precise mean
    diff_pct: float | None
    judged: str  # "identical", "within spread", "shown"
    ok: bool = True
    why: str = ""


@dataclass
class ParityReport:
    point: str
    rounds: int
    runs: list[ParityRun]
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "rounds": self.rounds, "passed": self.passed,
                "rows": [asdict(r) for r in self.rows], "runs": [asdict(r) for r in self.runs]}


def judge(point: str, runs: Sequence[ParityRun]) -> ParityReport:
    """The side-by-side rows and their verdicts from the runs of both clients."""
    rounds = max((r.round for r in runs), default=0)
    report = ParityReport(point, rounds, list(runs))
    by_client = {c: [r for r in runs if r.client == c] for c in CLIENTS}
    for key in REFERENCE_KEYS:
        values = {c: [r.figures[key] for r in rs] for c, rs in by_client.items() if rs}
        means = {c: statistics.fmean(v) for c, v in values.items()}
        spreads = {c: max(v) - min(v) for c, v in values.items()}
        stdevs = {c: statistics.stdev(v) if len(v) > 1 else 0.0 for c, v in values.items()}
        a, b = means.get("precise", 0.0), means.get("reference", 0.0)
        row = ParityRow(key, means, spreads, stdevs, b - a, 100.0 * (b - a) / a if a else None, "shown")
        if key in COUNT_KEYS:
            row.judged = "identical"
            every = sorted({x for v in values.values() for x in v})
            row.ok = len(every) == 1
            row.why = "" if row.ok else _count_why(values, every)
        elif key in JUDGED_WITHIN_SPREAD:
            row.judged = "within spread"
            noise = max(spreads.values(), default=0.0)
            row.ok = abs(row.diff) <= noise
            pct = f" ({row.diff_pct:+.1f}%)" if row.diff_pct is not None else ""
            row.why = "" if row.ok else (f"reference {b:.4g} vs precise {a:.4g}: {row.diff:+.4g}{pct}, beyond the "
                                         f"larger run-to-run spread {noise:.4g}")
        report.rows.append(row)
    return report


def _count_why(values: dict[str, list[float]], every: list[float]) -> str:
    """How the runs' counts differ: by how much, and each client's runs (``precise 24, 24; reference 24, 23``)."""
    runs = "; ".join(f"{c} " + ", ".join(f"{x:.0f}" for x in v) for c, v in values.items())
    return f"runs differ by up to {every[-1] - every[0]:.0f}: {runs}"


def outcome_line(report: ParityReport) -> str:
    """The verdict and what decided it: the figures that differed and by how much, or what held."""
    if not report.passed:
        return "FAILED: " + "; ".join(f"{r.key} {r.why}" for r in report.rows if not r.ok)
    counts = ", ".join(f"{r.key} {r.means.get('precise', 0):.0f}" for r in report.rows if r.judged == "identical")
    spread = [r for r in report.rows if r.judged == "within spread"]
    widest = max(spread, key=lambda r: abs(r.diff_pct or 0.0), default=None)
    within = (f"; {len(spread)} throughput/TPOT figures within the clients' run-to-run spread (largest difference: "
              f"{widest.key} {widest.diff_pct:+.1f}%)" if widest is not None and widest.diff_pct is not None else "")
    return f"PASSED: identical in every run: {counts}{within}"


def render(report: ParityReport) -> str:
    """Markdown: the table, the server's view of every run, the explanations and the verdict."""
    head = ("| key | precise (mean) | reference (mean) | difference | precise spread (min-max / stdev) "
            "| reference spread | judged |")
    lines = [f"### Parity: {report.point}, {report.rounds} rounds per client, alternating", "", head,
             "|" + "---|" * 7]
    for r in report.rows:
        pct = f" ({r.diff_pct:+.1f}%)" if r.diff_pct is not None else ""
        num = "{:.0f}".format if r.key in COUNT_KEYS else "{:.4g}".format
        verdict = r.judged if r.judged == "shown" else f"{r.judged}: {'ok' if r.ok else 'FAIL ' + r.why}"
        lines.append(f"| {r.key} | {num(r.means.get('precise', 0))} | {num(r.means.get('reference', 0))} | "
                     f"{r.diff:+.4g}{pct} | {r.spreads.get('precise', 0):.3g} / {r.stdevs.get('precise', 0):.3g} | "
                     f"{r.spreads.get('reference', 0):.3g} / {r.stdevs.get('reference', 0):.3g} | {verdict} |")
    lines += ["", "Server's own view of each run (/metrics deltas, warmups included):", ""]
    lines += [f"- round {run.round} {run.client}: {run.server.get('described', 'n/a')}" for run in report.runs]
    lines += ["", "Not judged, explained:"]
    lines += [f"- {m.upper()}: {text}" for m, text in EXPLAINED.items()]
    verdict, _, outcome = outcome_line(report).partition(": ")
    lines += ["", "Judged: token totals identical in every run; throughputs and TPOT within the clients' run-to-run "
              "spread.", "", f"**{verdict}**: {outcome}"]
    return "\n".join(lines)


def run_parity(point: str, base_url: str, model: str, requests: Sequence[RequestSpec], *, concurrency: int,
               num_warmups: int, rounds: int, count_tokens: Callable[[str], int] | None = None,
               api_key: str | None = None, extra_body: dict[str, Any] | None = None, request_timeout: float = 3600.0,
               on_run: Callable[[ParityRun], None] | None = None, abort_check: Callable[[], str | None] | None = None,
               stall_timeout: float | None = 300.0) -> ParityReport:
    """``rounds`` runs of each client, alternating precise and reference, judged together.

    ``abort_check`` and ``stall_timeout`` are ``run_load``'s (a dead or hung server stops the comparison
    with :class:`ParityAborted` instead of leaving the reference client waiting out its 6 h timeout)."""
    if rounds < 2:
        raise ValueError("parity needs at least 2 rounds per client: one run shows no run-to-run spread")
    runs: list[ParityRun] = []
    for rnd in range(1, rounds + 1):
        for kind in CLIENTS:
            client = ClientConfig(base_url=base_url, model=model, request_timeout=request_timeout, api_key=api_key,
                                  client=kind, extra_body={**(extra_body or {}), "cache_salt": uuid.uuid4().hex})
            before, _ = read_totals(base_url, api_key=api_key)
            load = run_client_load(client, requests, concurrency=concurrency, num_warmups=num_warmups,
                                   abort_check=abort_check, stall_timeout=stall_timeout)  # the reference: its process
            if load.aborted:
                raise ParityAborted(f"parity {point}: round {rnd} of the {kind} client stopped: {load.aborted}")
            view = server_view(before, read_totals(base_url, api_key=api_key)[0])
            m = compute_metrics(load.results, load.duration, tput_per_gpu_divisor=1, count_tokens=count_tokens)
            run = ParityRun(kind, rnd, {k: float(m[k]) for k in REFERENCE_KEYS},
                            {**view.as_dict(), "described": view.describe()}, int(m["failed"]))
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return judge(point, runs)
