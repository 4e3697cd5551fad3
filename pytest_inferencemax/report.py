"""The run's Markdown report (``report.md`` in the results folder).

Per curve: the table of points with the three baseline ratios and a mark per point, the verdict
and the rule that decided it, the accuracy verdict, links to the two plots; then how to
reproduce the run (from ``manifest.json``). :func:`report_run` does all of it from the point
records; :func:`write_report` only writes what it is given.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .baseline import BaselineError, BaselineTable, load_baseline
from .curve import Curve, CurveKey, attach_amd, build_curves, curve_point
from .verdict import CHECK, CROSS, DASH, BeatBaselineShare, Verdict, VerdictError, judge, parse_rule

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"


def write_text_atomic(path: Path, text: str) -> Path:
    """Write text so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _x(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}x"


def _mark(curve: Curve, verdict: Verdict | None, conc: int, tput_ratio: float | None, base: bool) -> str:
    if verdict is not None and verdict.applicable:
        row = next((r for r in verdict.per_point if r.conc == conc), None)
        if row is not None:
            return row.mark
    if not base or tput_ratio is None:
        return DASH
    return CHECK if tput_ratio > 1 else CROSS


def curve_table(curve: Curve, verdict: Verdict | None) -> list[str]:
    lines = [("| CONC | tok/s/GPU | median E2E (s) | interactivity (tok/s/user) | tput ratio | E2E ratio "
             "| intvty ratio | vs baseline |"),
             "|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for p in curve.points:
        lines.append(f"| {p.conc} | {p.tput_per_gpu:.1f} | {p.median_e2e_s:.3f} | {p.interactivity:.1f} "
                     f"| {_x(p.tput_ratio)} | {_x(p.e2e_ratio)} | {_x(p.intvty_ratio)} "
                     f"| {_mark(curve, verdict, p.conc, p.tput_ratio, p.baseline is not None)} |")
    return lines


def _accuracy_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per distinct gate result, with the CONC it applies to."""
    by_text: dict[str, list[str]] = {}
    for rec in records:
        val = rec.get("accuracy_validation") or {}
        status = val.get("status", "unknown")
        if status in ("PASSED", "FAILED"):
            values = ", ".join(f"{k} {v:.4g}" for k, v in (rec.get("accuracy") or {}).items()
                               if isinstance(v, float))
            text = f"gate {val.get('task', '?')} {status}" + (f": {values}" if values else "")
        else:
            text = f"{status}" + (f" ({val['reason']})" if val.get("reason") else "")
        by_text.setdefault(text, []).append(str(rec.get("inferencemax", {}).get("conc", "?")))
    return [f"- CONC {', '.join(sorted(concs, key=lambda c: (len(c), c)))}: {text}" for text, concs in by_text.items()]


def _verdict_lines(verdict: Verdict | None) -> list[str]:
    if verdict is None:
        return ["**Verdict: not judged** (no verdict was computed for this curve)"]
    lines = [f"**Verdict: {verdict.label}** (rule `{verdict.rule}`)", "",
             f"Decided by: {verdict.decided_by}", ""]
    if verdict.points_above_baseline is not None:
        ratio_sum = DASH if verdict.tput_ratio_sum is None else f"{verdict.tput_ratio_sum:.3f}"
        lines += [(f"Tie-break figures: points above the baseline tput/GPU {verdict.points_above_baseline}; "
                  f"sum of tput/GPU ratios {ratio_sum}."), ""]
    if verdict.amd_check is not None:
        lines += [f"AMD check: {verdict.amd_check}.", ""]
    if verdict.applicable:
        for row in verdict.per_point:
            details = "; ".join(f"{name}: {result}" for name, result in row.checks)
            lines.append(f"- CONC {row.conc} {row.mark} {row.status}" + (f" ({details})" if details else ""))
        lines.append("")
    lines += [f"- note: {n}" for n in verdict.notes]
    if lines[-1] == "":
        lines.pop()
    return lines


def _manifest_lines(run_dir: Path) -> list[str]:
    path = run_dir / "manifest.json"
    others = sorted(p.name for p in run_dir.glob("manifest-*.json"))
    if not path.is_file() and others:
        path = run_dir / others.pop(0)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [(f"No readable manifest in {run_dir} ({type(exc).__name__}): the run cannot be reproduced "
                "from this folder alone.")]
    project = data.get("project") or {}
    commit = project.get("commit") or "unknown"
    if project.get("dirty"):
        commit += " (with uncommitted changes)"
    lines = [f"From `{path.name}`" + (f" (workers also wrote {', '.join(others)})" if others else "") + ".", "",
             f"- pytest-inferencemax {project.get('version', '?')}, git commit {commit}",
             f"- command: `{' '.join(map(str, data.get('command') or [])) or '?'}`",
             f"- Python {data.get('python', '?')} on {data.get('platform', '?')}",
             f"- GPUs: {json.dumps(data.get('gpus'), default=str)}",
             f"- started {data.get('started_at', '?')}, finished {data.get('finished_at') or 'not recorded'}"]
    for n, server in enumerate(data.get("servers") or [], 1):
        version = server.get("engine_version")
        shown = json.dumps(version, default=str) if version is not None else "unknown"
        lines.append(f"- server {n}: engine {server.get('engine', 'external')} version {shown}, "
                     f"{server.get('base_url')}")
        if server.get("argv"):
            lines += ["", "  ```", "  " + " ".join(map(str, server["argv"])), "  ```"]
    packages = {k: v for k, v in (data.get("packages") or {}).items() if v}
    lines.append("- packages: " + (", ".join(f"{k}=={v}" for k, v in sorted(packages.items())) or "none recorded"))
    return lines


def render_report(run_dir: Path, records: Sequence[Mapping[str, Any]], verdicts: Mapping[CurveKey, Verdict],
                  plots: Mapping[CurveKey, Sequence[Path]], curves: Sequence[Curve] | None = None) -> str:
    run_dir = Path(run_dir)
    curves = list(curves) if curves is not None else build_curves(records)
    by_key: dict[CurveKey, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_key.setdefault(curve_point(rec)[0], []).append(rec)
    lines = [f"# InferenceMAX run report: {run_dir.name}", ""]
    if not curves:
        lines += ["No point finished in this run.", ""]
    lines += [f"- {c.key.title}: **{verdicts[c.key].label if c.key in verdicts else 'not judged'}**"
              for c in curves]
    for curve in curves:
        verdict = verdicts.get(curve.key)
        lines += ["", f"## {curve.key.title}", ""]
        divisors = ", ".join(f"{d:g}" for d in curve.divisors)
        lines += [f"tok/s/GPU = total token throughput / {divisors} (the stage's divisor). "
                  f"Baseline: {curve.baseline_note or 'none'}."
                  + (f" AMD points: {curve.amd_source}." if curve.amd_source else ""), ""]
        lines += curve_table(curve, verdict)
        lines += ["", (f"{CHECK} beats the baseline (stage 2: meets all targets), {CROSS} does not, "
                      f"{DASH} no baseline point. Ratios: tput and interactivity > 1 and E2E < 1 are better."), ""]
        lines += ["### Verdict", ""] + _verdict_lines(verdict)
        lines += ["", "### Accuracy", ""] + _accuracy_lines(by_key.get(curve.key, []))
        pngs = plots.get(curve.key, ())
        if pngs:
            lines += ["", "### Plots", ""]
            for png in pngs:
                rel = os.path.relpath(Path(png), run_dir)
                lines.append(f"![{Path(png).stem}]({rel})")
    lines += ["", "## Reproduction", ""] + _manifest_lines(run_dir)
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, records: Sequence[Mapping[str, Any]], verdicts: Mapping[CurveKey, Verdict],
                 plots: Mapping[CurveKey, Sequence[Path]], curves: Sequence[Curve] | None = None) -> Path:
    """Write ``<run_dir>/report.md`` atomically; returns its path."""
    run_dir = Path(run_dir)
    return write_text_atomic(run_dir / REPORT_FILE, render_report(run_dir, records, verdicts, plots, curves))


def judge_curves(curves: Sequence[Curve], rules: Mapping[tuple[str, str], Any],
                 baselines_dir: Path | None = None) -> tuple[list[Curve], dict[CurveKey, Verdict]]:
    """Each curve judged by its stage's rule (``rules[(suite, stage)]``: a verdict table or rule).

    A ``beat_baseline_share`` rule naming an ``amd_baseline`` gets AMD's points from
    ``<baselines_dir>/<amd_baseline>.toml``; a table that cannot be read leaves the AMD check
    "not checked" and says why in the notes. A rule that cannot be parsed gives "not applicable"
    with the error as its reason (the report must still be written).
    """
    tables: dict[str, BaselineTable | str] = {}
    out_curves, verdicts = [], {}
    for curve in curves:
        raw = rules.get((curve.key.suite, curve.key.stage))
        try:
            rule = raw if not (raw is None or isinstance(raw, Mapping)) else parse_rule(
                raw, where=f"[stages.{curve.key.stage}.verdict] of suite {curve.key.suite}")
        except VerdictError as exc:
            rule = parse_rule({"rule": "none", "reason": f"the verdict rule cannot be used: {exc}"})
        if isinstance(rule, BeatBaselineShare) and rule.amd_baseline:
            if rule.amd_baseline not in tables:
                try:
                    if baselines_dir is None:
                        raise BaselineError("no baselines folder was given")
                    tables[rule.amd_baseline] = load_baseline(Path(baselines_dir) / f"{rule.amd_baseline}.toml")
                except BaselineError as exc:
                    tables[rule.amd_baseline] = str(exc)
            table = tables[rule.amd_baseline]
            if isinstance(table, BaselineTable):
                curve = attach_amd(curve, table, rule.amd_baseline_key or curve.key.suite)
            else:
                curve = replace(curve, notes=curve.notes + (
                    f"AMD table {rule.amd_baseline!r} not read: {table}; AMD check not checked",))
        out_curves.append(curve)
        verdicts[curve.key] = judge(curve, rule)
    return out_curves, verdicts


def report_run(run_dir: Path, records: Sequence[Mapping[str, Any]], rules: Mapping[tuple[str, str], Any],
               baselines_dir: Path | None = None, with_plots: bool = True) -> Path:
    """Curves, verdicts, plots (``<run_dir>/plots/``) and ``report.md`` for one run's records."""
    run_dir = Path(run_dir)
    curves, verdicts = judge_curves(build_curves(records), rules, baselines_dir)
    plots: dict[CurveKey, Sequence[Path]] = {}
    if with_plots:
        from .plots import plot_curves

        plots = dict(plot_curves(curves, run_dir / PLOTS_DIR))
    return write_report(run_dir, records, verdicts, plots, curves)
