"""Parity, rendered: the Markdown table of a judged parity report, and its two files."""
from __future__ import annotations

from pathlib import Path

from pytest_inferencemax.judge.parity import ParityReport, outcome_line
from pytest_inferencemax.measure.figures import PARITY_IDENTICAL
from pytest_inferencemax.results.store import RunFolder

EXPLAINED = {
    "ttft": "the reference opens a new connection per request, inside its TTFT, and stamps each chunk after "
            "decoding and parsing it; ours writes on pooled connections and stamps reads on arrival",
    "itl": "both stamp every event; the reference's stamps wait for its event loop and JSON parsing, so its gaps "
           "carry the client's own jitter",
    "token_itl": "ours, not a reference key: each event's gap shared by the tokens it brought (equal to ITL where "
                 "every event carries one token, as on vLLM)",
    "e2el": "TTFT's connect difference plus the last event's stamping delay",
}


def render(report: ParityReport) -> str:
    """Markdown: the table, the server's view of every run, the explanations and the verdict."""
    head = ("| key | precise (mean) | reference (mean) | difference | precise spread (min-max / stdev) "
            "| reference spread | judged |")
    lines = [f"### Parity: {report.point}, {report.rounds} rounds per client, alternating", "", head,
             "|" + "---|" * 7]
    for r in report.rows:
        pct = f" ({r.diff_pct:+.1f}%)" if r.diff_pct is not None else ""
        num = "{:.0f}".format if r.key in PARITY_IDENTICAL else "{:.4g}".format
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


def write_parity(folder: RunFolder, report: ParityReport, stem: str = "parity") -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` (the table) in ``folder``, atomically."""
    return (folder.write_json(f"{stem}.json", report.to_dict()),
            folder.write_text(f"{stem}.md", render(report) + "\n"))
