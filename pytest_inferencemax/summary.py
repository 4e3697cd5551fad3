"""The end-of-session summary: a table per suite on the terminal and ``summary.json`` on disk."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .record import record_warnings, write_json_atomic

COLUMNS = (
    ("point", "{}", lambda r: r["inferencemax"]["point"]),
    ("ok/total", "{}", lambda r: f"{r['completed']}/{r['num_prompts']}"),
    ("req/s", "{:.2f}", lambda r: r["request_throughput"]),
    ("out tok/s", "{:.1f}", lambda r: r["output_throughput"]),
    ("tok/s/GPU", "{:.1f}", lambda r: r["tput_per_gpu"]),
    ("TTFT p50 ms", "{:.0f}", lambda r: r["median_ttft_ms"]),
    ("TPOT p50 ms", "{:.1f}", lambda r: r["median_tpot_ms"]),
    ("E2E p50 ms", "{:.0f}", lambda r: r["median_e2el_ms"]),
    ("intvty tok/s/user", "{:.1f}", lambda r: r["interactivity"]),
    ("tput vs base", "{}", lambda r: _ratio(r, "tput_per_gpu_ratio_vs_")),
    ("E2E vs base", "{}", lambda r: _ratio(r, "median_e2e_ratio_vs_")),
    ("intvty vs base", "{}", lambda r: _ratio(r, "interactivity_ratio_vs_")),
    ("beats base", "{}", lambda r: _mark(r)),
)


def _mark(rec: dict[str, Any]) -> str:
    """yes / no on tput/GPU against the baseline at the same CONC; - without a baseline point."""
    for key, value in rec.items():
        if key.startswith("tput_per_gpu_ratio_vs_"):
            return "-" if value is None else ("yes" if value > 1.0 else "NO")
    return "-"


def _ratio(rec: dict[str, Any], prefix: str) -> str:
    for key, value in rec.items():
        if key.startswith(prefix):
            return "n/a" if value is None else f"{value:.2f}x"
    return "n/a"


def _accuracy_line(rec: dict[str, Any]) -> str:
    val = rec.get("accuracy_validation") or {}
    if val.get("status") != "PASSED":
        return f"{val.get('status', 'unknown')} ({val.get('reason', '')})"
    values = ", ".join(f"{k} {v:.4g}" for k, v in (rec.get("accuracy") or {}).items() if isinstance(v, float))
    return f"gate {val['task']} PASSED: {values}"


def table_rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = [[c[0] for c in COLUMNS]]
    for rec in records:
        rows.append([fmt.format(get(rec)) for _, fmt, get in COLUMNS])
    return rows


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The point records on disk, in the order the points finished."""
    return [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths if Path(p).is_file()]


def summary_lines(records: Sequence[dict[str, Any]], failures: Sequence[tuple[str, str]], run_dir: Path) -> list[str]:
    lines: list[str] = []
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        info = rec["inferencemax"]
        by_suite.setdefault(f"{info['suite']} (stage {info['stage']})", []).append(rec)
    for name, records in by_suite.items():
        lines.append(f"suite {name}: tok/s/GPU divides total token throughput by "
                     f"{records[0]['inferencemax']['tput_per_gpu_divisor']}")
        lines.extend(render_table(table_rows(records)).splitlines())
        notes = {r.get("baseline_note") for r in records if r.get("baseline_note")}
        lines.extend(f"  baseline: {n}" for n in sorted(notes))
        lines.extend(f"  accuracy: {a}" for a in sorted({_accuracy_line(r) for r in records}))
        lines.append("")
    for rec in records:
        lines.extend(f"WARNING {rec['inferencemax']['point']}: {w}" for w in record_warnings(rec))
    for point_id, reason in failures:
        lines.append(f"FAILED {point_id}: {reason.splitlines()[0] if reason else 'see above'}")
    lines.append(f"results: {run_dir}")
    return lines


def write_summary(records: Sequence[dict[str, Any]], failures: Sequence[tuple[str, str]], run_dir: Path,
                  conclusion: Sequence[str] = ()) -> Path:
    data = {
        "conclusion": list(conclusion),  # verdicts, report, submissions
        "points": [{"point": rec["inferencemax"]["point"], "file": f"{rec['inferencemax']['point']}.json",
                    **{k: rec.get(k) for k in ("completed", "num_prompts", "request_throughput",
                                                    "output_throughput", "total_token_throughput", "tput_per_gpu",
                                                    "median_ttft_ms", "median_tpot_ms", "median_e2el_ms",
                                                    "interactivity")}}
                   for rec in records],
        "failures": [{"point": p, "reason": r} for p, r in failures],
        "warnings": [{"point": rec["inferencemax"]["point"], "warning": w} for rec in records
                     for w in record_warnings(rec)],
    }
    return write_json_atomic(run_dir / "summary.json", data)
