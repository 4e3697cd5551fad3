"""The run's Markdown report (``report.md`` in the results folder).

First what failed (a "Failed" section: each failed group, its cause and its tests; there even when no
point finished). Per curve: the table of points with the three baseline ratios and a mark per point, the
verdict and the rule that decided it, the accuracy verdict, links to the two plots; then how to
reproduce the run (from ``manifest.json``). It writes what it is given: the judging is done
before (``judge/``), and ``publish/finish.py`` calls both.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Mapping, Sequence

from pytest_inferencemax.judge.curve import Curve, CurveKey, CurvePoint, build_curves, curve_key
from pytest_inferencemax.judge.diagnosis import reading
from pytest_inferencemax.judge.verdict import CHECK, CROSS, DASH, QUESTION, Verdict
from pytest_inferencemax.publish.comparison_report import comparison_lines
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.stats import percent
from pytest_inferencemax.results.store import write_text_atomic
from pytest_inferencemax.results.summary import FailedGroup, Interruption

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"


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


def _ci(p: CurvePoint, key: str, value: float, fmt: str, scale: float = 1.0, ratio: bool = False) -> str:
    """``value`` alone for one round; the rounds' mean with its interval otherwise."""
    stats = (p.rounds.ratio(key) if ratio else p.stats(key)) if p.rounds and p.rounds.n > 1 else None
    if stats is None:
        return (_x(value) if ratio else format(value * scale, fmt))
    mean, low, high = (float(v) * scale for v in (stats.mean, stats.low, stats.high))
    unit = "x" if ratio else ""
    return f"{mean:{fmt}}{unit} [{low:{fmt}}, {high:{fmt}}]"


def curve_table(curve: Curve, verdict: Verdict | None) -> list[str]:
    if any(p.n_rounds > 1 for p in curve.points):  # the rounds' means with their 95% intervals
        lines = [("| CONC | rounds | tok/s/GPU | median E2E (s) | interactivity (tok/s/user) | tput ratio "
                  "| E2E ratio | intvty ratio | vs baseline |"), "|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"]
        for p in curve.points:
            lines.append(
                f"| {p.conc} | {p.n_rounds} | {_ci(p, 'tput_per_gpu', p.tput_per_gpu, '.1f')} "
                f"| {_ci(p, 'median_e2el_ms', p.median_e2e_ms, '.3f', 1e-3)} "
                f"| {_ci(p, 'interactivity', p.interactivity, '.1f')} "
                f"| {_ci(p, 'tput_per_gpu', p.tput_ratio, '.3f', ratio=True)} "
                f"| {_ci(p, 'median_e2el_ms', p.e2e_ratio, '.3f', ratio=True)} "
                f"| {_ci(p, 'interactivity', p.intvty_ratio, '.3f', ratio=True)} "
                f"| {_mark(curve, verdict, p.conc, p.tput_ratio, p.baseline is not None)} |")
        conf = ", ".join(sorted({percent(p.confidence) for p in curve.points if p.n_rounds > 1}))
        return lines + ["", f"With rounds: the mean over the rounds [{conf} confidence interval] (docs/verdict.md)."]
    lines = [("| CONC | tok/s/GPU | median E2E (s) | interactivity (tok/s/user) | tput ratio | E2E ratio "
             "| intvty ratio | vs baseline |"),
             "|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for p in curve.points:
        figures = (f"{p.tput_per_gpu:.1f} | {p.median_e2e_s:.3f} | {p.interactivity:.1f} | {_x(p.tput_ratio)} "
                   f"| {_x(p.e2e_ratio)} | {_x(p.intvty_ratio)}" if p.measured
                   else "n/a | n/a | n/a | n/a | n/a | n/a")  # no request succeeded: the record's zeros are no figures
        lines.append(f"| {p.conc} | {figures} "
                     f"| {_mark(curve, verdict, p.conc, p.tput_ratio, p.baseline is not None)} |")
    return lines


def _accuracy_lines(records: Sequence[PointRecord]) -> list[str]:
    """One line per distinct gate result, with the CONC it applies to."""
    by_text: dict[str, list[str]] = {}
    for rec in records:
        val = rec.accuracy_validation
        status = rec.accuracy_status
        if status in ("PASSED", "FAILED"):
            values = ", ".join(f"{k} {v:.4g}" for k, v in (rec.accuracy or {}).items() if isinstance(v, float))
            text = f"gate {val.task or '?'} {status}" + (f": {values}" if values else "")
            if val.task_bytes_per_word is not None and val.baseline_bytes_per_word is not None:
                text += (f"; task identity: {val.task_bytes_per_word:.4f} bytes per word "
                         f"(baseline's {val.baseline_bytes_per_word:.4f})")
        else:
            text = f"{status}" + (f" ({val.reason})" if val and val.reason else "")
        by_text.setdefault(text, []).append(str(rec.ours.conc))
    lines = [f"- CONC {', '.join(sorted(concs, key=lambda c: (len(c), c)))}: {text}" for text, concs in by_text.items()]
    for rec in sorted((r for r in records if r.ours.accuracy_at_load), key=lambda r: r.ours.conc):
        at = rec.ours.accuracy_at_load  # --accuracy-at: the task again at the point's own CONC
        mark = " — **not counted**: the point's accuracy fails at its own load" if at.failed else ""
        vs = (f"; vs the gate: " + ", ".join(f"{m} {d:+.2e}" for m, d in at.vs_gate.items())) if at.vs_gate else ""
        lines.append(f"- CONC {rec.ours.conc}, accuracy at load ({at.selected_by}): {at.words()}{vs}{mark}")
    return lines


def _goodput_lines(records: Sequence[PointRecord]) -> list[str]:
    """--goodput: per point, the requests within every SLO per second (the reference's ``request_goodput:``) beside
    all completed ones, and the share of the requests sent; nothing when no point was held to SLOs."""
    held = sorted((r for r in records if r.ours.goodput), key=lambda r: r.ours.conc)
    if not held:
        return []
    slos = ", ".join(f"{k} <= {v:g} ms" for k, v in held[0].ours.goodput.slo_ms.items())
    lines = ["### Goodput", "", f"SLOs: {slos} (a request counts when it meets every one).", ""]
    for r in held:
        g = r.ours.goodput
        met = f"{g.attainment:.0%}" if g.attainment is not None else "n/a"
        lines.append(f"- CONC {r.ours.conc}: {r.request_goodput:.2f} req/s within the SLOs of {r.request_throughput:.2f} "
                     f"completed ({g.good_requests} of {g.requests} requests sent, {met})")
    return lines + [""]


def _uncounted_lines(records: Sequence[PointRecord]) -> list[str]:
    """Points whose output tokens the reference keys miss (a server whose usage only comes inside a chunk with
    choices, as transformers serve's: the bounty client counts 0): the table's output figures are the reference's,
    ours beside them."""
    short = sorted((r for r in records if r.counted_output_throughput is not None), key=lambda r: r.ours.conc)
    if not short:
        return []
    ours = "; ".join(f"CONC {r.ours.conc}: {r.total_output_tokens} of {r.ours.total_output_tokens_counted} tokens, "
                     f"{r.counted_output_throughput:,.1f} out tok/s" for r in short)
    return [f"Output tokens: the reference keys (output throughput, TPOT, interactivity) count fewer than the server "
            f"reported (no usage in a chunk without choices, which is where the bounty client reads it); ours "
            f"(`inferencemax.total_output_tokens_counted`): {ours}.", ""]


def _diagnosis_lines(records: Sequence[PointRecord], run_dir: Path, point_plots: Mapping[str, Path]) -> list[str]:
    """Per point, by CONC: the server's view (batch, queue, KV cache, server vs client TTFT, power,
    energy) and the reading of judge/diagnosis.py, with the point's telemetry plot."""
    lines = []
    for rec in sorted(records, key=lambda r: r.ours.conc):
        t = rec.ours.telemetry
        head = f"- CONC {rec.ours.conc} ({rec.status}): {reading(rec)}"
        if t is not None and (t.server_metrics or t.server_metrics_absent):
            facts = [f"running {_x1(t.mean_running)} avg / {_x1(t.max_running)} max",
                     f"waiting {_x1(t.mean_waiting)} avg", f"KV cache peak {_pct(t.peak_kv_usage)}",
                     f"preemptions {_x1(t.preemptions)}", f"server TTFT {_ms(t.server_mean_ttft_ms)} vs client "
                     f"{_ms(rec.mean_ttft_ms)} (means)", f"queue {_ms(t.server_mean_queue_ms)}"
                     ] if t.server_metrics else [f"no server metrics ({t.server_metrics_absent})"]
            if t.gpu.mean_power_w is not None:
                facts.append(f"GPU power {t.gpu.mean_power_w:,.0f} W, {t.gpu.joules_per_output_token:.3g} J per "
                             f"output token ({t.gpu.output_tokens_per_joule:.3g} tokens/J)")
            else:
                facts.append(f"GPU telemetry: {t.gpu.absent or 'none'}")
            head += " — " + "; ".join(facts)
        lines.append(head)
        if png := point_plots.get(rec.point_id):
            lines.append(f"  ![{rec.point_id} telemetry]({os.path.relpath(png, run_dir)})")
    return lines or ["No point finished."]


def _x1(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.1f}"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} ms"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _verdict_lines(verdict: Verdict | None) -> list[str]:
    if verdict is None:
        return ["**Verdict: not judged** (no verdict was computed for this curve)"]
    lines = [f"**Verdict: {verdict.label}** (rule `{verdict.rule}`)", ""]
    if verdict.incomplete:
        lines += [f"The run was {verdict.incomplete}. On the points that ran: {verdict.decided_by}", ""]
    else:
        lines += [f"Decided by: {verdict.decided_by}", ""]
    lines += [f"Noise: {verdict.noise}." + (f" {verdict.inconclusive_points} point(s) inconclusive."
                                            if verdict.inconclusive_points else ""), ""]
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


def shell_command(argv: Sequence[str]) -> str:
    """The manifest's command as one line to paste into a shell: pytest's own entry (``.../pytest/__main__.py``
    of ``python -m pytest``, or the ``pytest`` script) as ``python -m pytest``, each argument quoted where a shell
    needs it (a ``-k`` expression, a JSON ``--extra-body``)."""
    if not argv:
        return "?"
    head = Path(str(argv[0]))
    entry = (head.name == "__main__.py" and head.parent.name == "pytest") or head.name in ("pytest", "py.test")
    return shlex.join((["python", "-m", "pytest"] if entry else [str(argv[0])]) + [str(a) for a in argv[1:]])


def _in_folder(cwd: str | None, command: str) -> str:
    """``command`` run from ``cwd`` (its relative paths are relative to it), as one line to paste."""
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def _code(text: str) -> str:
    """``text`` as Markdown inline code, whatever backticks it holds."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


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
             f"- command: {_code(_in_folder(data.get('cwd'), shell_command(data.get('command') or [])))}",
             f"- Python {data.get('python', '?')} on {data.get('platform', '?')}",
             f"- GPUs: {json.dumps(data.get('gpus'), default=str)}",
             f"- started {data.get('started_at', '?')}, finished {data.get('finished_at') or 'not recorded'}"]
    for n, server in enumerate(data.get("servers") or [], 1):
        version = server.get("engine_version")
        shown = json.dumps(version, default=str) if version is not None else "unknown"
        lines.append(f"- server {n}: engine {server.get('engine', 'external')} version {shown}, "
                     f"{server.get('base_url')}")
        if server.get("argv"):
            lines += ["", "  ```", "  " + shlex.join(map(str, server["argv"])), "  ```"]
    packages = {k: v for k, v in (data.get("packages") or {}).items() if v}
    lines.append("- packages: " + (", ".join(f"{k}=={v}" for k, v in sorted(packages.items())) or "none recorded"))
    return lines


def _failed_lines(failed: Sequence[FailedGroup]) -> list[str]:
    """The "Failed" section: each group that failed, its cause and the tests it covers."""
    lines = ["## Failed", "", "What failed in this run, by group and cause: these tests left no figures in the curves "
             "below, and a curve that lost points to them is incomplete: it qualifies for nothing and is not submitted.", ""]
    for g in failed:
        where = f" (run `{g.run}`)" if g.run else ""
        lines.append(f"- **{g.group}**{where}: {g.cause}")
        if g.points:
            lines.append(f"  - {len(g.points)} test(s): {', '.join(g.points)}")
    return lines


def render_report(run_dir: Path, records: Sequence[PointRecord], verdicts: Mapping[CurveKey, Verdict],
                  plots: Mapping[CurveKey, Sequence[Path]], curves: Sequence[Curve] | None = None,
                  interruption: Interruption | None = None, point_plots: Mapping[str, Path] | None = None,
                  failed: Sequence[FailedGroup] = ()) -> str:
    run_dir = Path(run_dir)
    curves = list(curves) if curves is not None else build_curves(records)
    by_key: dict[CurveKey, list[PointRecord]] = {}
    for rec in records:
        by_key.setdefault(curve_key(rec), []).append(rec)
    lines = [f"# InferenceMAX run report: {run_dir.name}", ""]
    if interruption is not None:
        lines += [f"**Incomplete run**: {interruption.line()}. The verdicts below are \"incomplete\": a curve "
                  "with points missing qualifies for nothing, and nothing was submitted.", ""]
    if not curves:
        lines += ["No point finished in this run" + (": every test failed (below)." if failed else "."), ""]
    lines += [f"- {c.key.title}: **{verdicts[c.key].label if c.key in verdicts else 'not judged'}**"
              for c in curves]
    lines += [f"- {g.group}: **FAILED** ({len(g.points) or 'no'} test(s); the cause under Failed)" for g in failed]
    if failed:
        lines += [""] + _failed_lines(failed)
    for curve in curves:
        verdict = verdicts.get(curve.key)
        lines += ["", f"## {curve.key.title}", ""]
        divisors = ", ".join(f"{d:g}" for d in curve.divisors)
        lines += [f"tok/s/GPU = total token throughput / {divisors} (the stage's divisor). "
                  f"Baseline: {curve.baseline_note or 'none'}."
                  + (f" AMD points: {curve.amd_source}." if curve.amd_source else ""), ""]
        lines += curve_table(curve, verdict)
        lines += ["", (f"{CHECK} beats the baseline (stage 2: meets all targets), {CROSS} does not, "
                      f"{QUESTION} inconclusive (within the rounds' noise), {DASH} no baseline point. Ratios: tput and interactivity > 1 and E2E < 1 are better."), ""]
        lines += _uncounted_lines(by_key.get(curve.key, []))
        lines += _goodput_lines(by_key.get(curve.key, []))
        lines += ["### Verdict", ""] + _verdict_lines(verdict)
        lines += ["", "### Accuracy", ""] + _accuracy_lines(by_key.get(curve.key, []))
        lines += ["", "### Diagnosis", ""] + _diagnosis_lines(by_key.get(curve.key, []), run_dir, point_plots or {})
        pngs = plots.get(curve.key, ())
        if pngs:
            lines += ["", "### Plots", ""]
            for png in pngs:
                rel = os.path.relpath(Path(png), run_dir)
                lines.append(f"![{Path(png).stem}]({rel})")
    lines += comparison_lines(records)
    lines += ["", "## Reproduction", ""] + _manifest_lines(run_dir)
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, records: Sequence[PointRecord], verdicts: Mapping[CurveKey, Verdict],
                 plots: Mapping[CurveKey, Sequence[Path]], curves: Sequence[Curve] | None = None,
                 interruption: Interruption | None = None, point_plots: Mapping[str, Path] | None = None,
                 failed: Sequence[FailedGroup] = ()) -> Path:
    """Write ``<run_dir>/report.md`` atomically; returns its path."""
    run_dir = Path(run_dir)
    return write_text_atomic(run_dir / REPORT_FILE, render_report(run_dir, records, verdicts, plots, curves,
                                                                  interruption, point_plots, failed))
