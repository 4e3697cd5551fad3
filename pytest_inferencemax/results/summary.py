"""The run's table: one row per point and suite on the terminal, and ``summary.json`` on disk."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pytest_inferencemax.measure.figures import SUMMARY
from pytest_inferencemax.results.record import PointRecord
from pytest_inferencemax.results.stats import percent
from pytest_inferencemax.results.store import SUMMARY_FILE, RunFolder


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _beats(rec: PointRecord) -> str:
    """yes / NO on tput/GPU against the baseline at the same CONC; - without a baseline point."""
    ratio = rec.comparison.tput_ratio if rec.comparison else None
    return "-" if ratio is None else ("yes" if ratio > 1.0 else "NO")


def _status(rec: PointRecord) -> str:
    """ok, or why the figures must not be read as a result (they are still shown)."""
    status = rec.status
    if not rec.completed and status in ("partial", "ok"):
        return f"FAILED (0 of {rec.num_prompts} ok)"
    if status == "partial":
        return f"PARTIAL ({rec.num_prompts - rec.completed} of {rec.num_prompts} not ok)"
    return status if status == "ok" else status.upper()


COLUMNS: tuple[tuple[str, str, Callable[[PointRecord], Any]], ...] = (
    ("point", "{}", lambda r: r.point_id),
    ("ok/total", "{}", lambda r: f"{r.completed}/{r.num_prompts}"),
    ("req/s", "{:.2f}", lambda r: r.request_throughput),
    ("out tok/s", "{:.1f}", lambda r: r.output_throughput),
    ("tok/s/GPU", "{:.1f}", lambda r: r.tput_per_gpu),
    ("TTFT p50 ms", "{:.0f}", lambda r: r.median_ttft_ms),
    ("TPOT p50 ms", "{:.1f}", lambda r: r.median_tpot_ms),
    ("E2E p50 ms", "{:.0f}", lambda r: r.median_e2el_ms),
    ("intvty tok/s/user", "{:.1f}", lambda r: r.interactivity),
    ("tput vs base", "{}", lambda r: _ratio(r.comparison.tput_ratio if r.comparison else None)),
    ("E2E vs base", "{}", lambda r: _ratio(r.comparison.e2e_ratio if r.comparison else None)),
    ("intvty vs base", "{}", lambda r: _ratio(r.comparison.intvty_ratio if r.comparison else None)),
    ("beats base", "{}", _beats),
    ("status", "{}", _status),
)


def rounds_line(rec: PointRecord) -> str | None:
    """A point run in rounds: how many, the judged figures' means and 95% intervals, why it stopped."""
    r = rec.ours.rounds
    if r is None:
        return None
    figures = ", ".join(f"{name} {float(st.mean):.4g} [{float(st.low):.4g}, {float(st.high):.4g}]"
                        for name, st in r.figures.items() if name != "output_throughput")
    tput = r.ratio("tput_per_gpu")
    vs = f"; tput ratio {float(tput.mean):.3f}x [{float(tput.low):.3f}, {float(tput.high):.3f}]" if tput else ""
    return (f"  rounds {rec.point_id}: {r.n}, representative r{r.representative}, {percent(float(r.confidence))} "
            f"intervals; {figures}{vs}"
            + (f"; {r.stopped}" if r.stopped else ""))


def _accuracy_line(rec: PointRecord) -> str:
    val = rec.accuracy_validation
    at_load = f"; at load: {rec.ours.accuracy_at_load.words()}" if rec.ours.accuracy_at_load else ""
    if val is None or val.status != "PASSED":
        return f"{rec.accuracy_status} ({val.reason if val and val.reason else ''}){at_load}"
    values = ", ".join(f"{k} {v:.4g}" for k, v in (rec.accuracy or {}).items() if isinstance(v, float))
    return f"gate {val.task} PASSED: {values}{at_load}"


# columns that are figures of successful requests: "n/a" for a point without one (its record keeps the
# reference's 0 for an empty list)
MEASURED = frozenset(name for name, fmt, _ in COLUMNS if fmt != "{}") | {"tput vs base", "E2E vs base",
                                                                        "intvty vs base"}


def cell(rec: PointRecord, name: str, fmt: str, get: Callable[[PointRecord], Any]) -> str:
    if name in MEASURED and not rec.completed:
        return "n/a"
    return fmt.format(get(rec))


# --goodput: beside req/s, the requests within every SLO per second and the share of the requests sent
GOODPUT_COLUMNS: tuple[tuple[str, str, Callable[[PointRecord], Any]], ...] = (
    ("goodput req/s", "{}", lambda r: "-" if r.request_goodput is None else f"{r.request_goodput:.2f}"),
    ("SLO met", "{}", lambda r: "-" if r.ours.goodput is None or r.ours.goodput.attainment is None
     else f"{r.ours.goodput.attainment:.0%}"),
)


def columns(records: Sequence[PointRecord]) -> tuple[tuple[str, str, Callable[[PointRecord], Any]], ...]:
    """The table's columns: the goodput ones after req/s when a point was held to --goodput SLOs."""
    if not any(rec.ours.goodput for rec in records):
        return COLUMNS
    at = [c[0] for c in COLUMNS].index("req/s") + 1
    return COLUMNS[:at] + GOODPUT_COLUMNS + COLUMNS[at:]


def table_rows(records: Sequence[PointRecord]) -> list[list[str]]:
    chosen = columns(records)
    rows = [[c[0] for c in chosen]]
    for rec in records:
        rows.append([cell(rec, name, fmt, get) for name, fmt, get in chosen])
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


# a test id: a point's (``<suite>-<isl>-<osl>-c<conc>[-<variant>]``) or a server's gate
# (``<suite>-accuracy[-<variant> | -<isl>-<osl>-c<conc>]``), as plugin/hooks.py names them
_TEST_ID = re.compile(r"^(?P<suite>.+?)-(?:(?P<isl>\d+)-(?P<osl>\d+)-c\d+|(?P<gate>accuracy))(?:-(?P<tail>.+))?$")
_SERVER_TAIL = re.compile(r"^\d+-\d+-c\d+$")  # a gate's tail naming its server's first point, not a variant
NOT_RETRIED = "not retried: "  # how serve/ words the points of a server that failed to start, after the first


@dataclass(frozen=True)
class FailedGroup:
    """Tests that failed for one cause in one group: a suite's server (its gate and the points it kept from
    running), a curve's points, or a whole run that left nothing (``cli.merge``). Nothing failed vanishes:
    each group is a ``failed`` line of the conclusion, a section of ``report.md`` and of ``summary.json``."""

    group: str  # "mini, stage cpu, ISL 16 / OSL 4" (a curve), "mini, stage cpu" (a server), "run <folder>"
    cause: str  # one line
    points: tuple[str, ...] = ()  # the test ids it covers (points, and a gate's ``<suite>-accuracy``)
    run: str | None = None  # cli.merge: the run folder it failed in

    def line(self) -> str:
        where = f" (run {self.run})" if self.run else ""
        covers = f" [{len(self.points)} test(s): {', '.join(self.points)}]" if self.points else ""
        return f"{self.group}{where}: {self.cause}{covers}"

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "cause": self.cause, "points": list(self.points), "run": self.run}


def failed_groups(failures: Sequence[tuple[str, str]], records: Sequence[PointRecord] = (),
                  run: str | None = None, stage: str | None = None) -> list[FailedGroup]:
    """The failures (test id, reason) grouped by suite (and variant) and cause, in the order they came.

    A group is named after its curve when its tests are points of one ISL / OSL, else after its suite (a
    gate that could not run and the points of its server share the cause: one group); the stage is named
    when the run's ``records`` show the suite in one stage, else when the run named one (``stage``: its
    ``--stage``). A point ``not retried`` after its server failed to start joins the group of that failure.
    A test id of another form is a group of its own."""
    stages: dict[str, set[str]] = {}
    for rec in records:
        stages.setdefault(rec.ours.suite, set()).add(rec.ours.stage)
    tests: dict[tuple[str, str, str], dict[str, re.Match[str] | None]] = {}  # group key -> test id -> its parts
    for point, reason in failures:
        cause = next((line for line in (reason or "").splitlines() if line.strip()), "no cause recorded").strip()
        m = _TEST_ID.match(point)
        tail = (m["tail"] or "") if m else ""
        variant = "" if not m or (m["gate"] and _SERVER_TAIL.match(tail)) else tail
        key = (m["suite"] if m else point, variant, cause)
        if cause.startswith(NOT_RETRIED):  # a server that failed to start, met again: the group of that failure
            key = next((k for k in tests if k[:2] == key[:2] and cause.endswith(f": {k[2]}")), key)
        tests.setdefault(key, {}).setdefault(point, m)
    groups = []
    for (suite, variant, cause), parts in tests.items():
        seen = stages.get(suite, set())
        known = next(iter(seen)) if len(seen) == 1 else (stage if not seen else None)
        name = suite + (f", stage {known}" if known else "")
        curves = {(m["isl"], m["osl"]) if m and not m["gate"] else None for m in parts.values()}
        if len(curves) == 1 and (curve := next(iter(curves))) is not None:
            name += f", ISL {curve[0]} / OSL {curve[1]}"
        groups.append(FailedGroup(name + (f", variant {variant}" if variant else ""), cause, tuple(parts), run))
    return groups


def summary_lines(records: Sequence[PointRecord], failures: Sequence[tuple[str, str]], run_dir: Path,
                  interruption: Interruption | None = None, pruned: Sequence[tuple[str, str]] = (),
                  failed: Sequence[FailedGroup] = ()) -> list[str]:
    """The terminal summary: per suite its table, then every warning, failure (``FAILED <point>: <cause>``;
    ``failed``: the groups without a point, such as a merged run that left nothing), pruned and reused point."""
    lines: list[str] = [f"INCOMPLETE: {interruption.line()}", ""] if interruption else []
    by_suite: dict[str, list[PointRecord]] = {}
    for rec in records:
        by_suite.setdefault(f"{rec.ours.suite} (stage {rec.ours.stage})", []).append(rec)
    for name, records in by_suite.items():
        lines.append(f"suite {name}: tok/s/GPU divides total token throughput by "
                     f"{records[0].ours.tput_per_gpu_divisor}")
        lines.extend(render_table(table_rows(records)).splitlines())
        lines.extend(line for r in records if (line := rounds_line(r)))
        notes = {r.baseline_note for r in records if r.baseline_note}
        lines.extend(f"  baseline: {n}" for n in sorted(notes))
        lines.extend(f"  accuracy: {a}" for a in sorted({_accuracy_line(r) for r in records}))
        lines.append("")
    for rec in records:
        lines.extend(f"WARNING {rec.point_id}: {w}" for w in rec.warnings())
    for point_id, reason in failures:
        lines.append(f"FAILED {point_id}: {reason.splitlines()[0] if reason else 'see above'}")
    lines += [f"FAILED {g.line()}" for g in failed if not g.points]
    lines += [f"PRUNED {point_id}: {why}" for point_id, why in pruned]
    lines += [f"REUSED {r.point_id}: from {r.ours.reused_from}" for r in records if r.ours.reused_from]
    lines.append(f"results: {run_dir}")
    return lines


@dataclass(frozen=True)
class Interruption:
    """A run cut short by Ctrl-C, SIGTERM or SIGHUP: which point was running and which never ran."""

    by: str  # "Ctrl-C", "SIGTERM" or "SIGHUP"
    point: str | None  # the point that was running, if one was
    not_run: tuple[str, ...] = ()
    deselected: int = 0  # points of the suites left out of this run (-k, -m, --stage, ...): not "not run"

    def line(self) -> str:
        during = f"during {self.point}" if self.point else "between points"
        rest = (f"; {len(self.not_run)} point(s) not run: {', '.join(self.not_run)}" if self.not_run
                else "; every other selected point had run")
        left_out = f" ({self.deselected} deselected point(s) were not part of this run)" if self.deselected else ""
        return f"interrupted by {self.by} {during}{rest}{left_out}"

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "point": self.point, "not_run": list(self.not_run), "deselected": self.deselected}


def write_summary(records: Sequence[PointRecord], failures: Sequence[tuple[str, str]], run_dir: Path,
                  conclusion: Sequence[str] = (), interruption: Interruption | None = None,
                  pruned: Sequence[tuple[str, str]] = (), failed: Sequence[FailedGroup] | None = None) -> Path:
    """``summary.json``; ``failed``: the failures' groups (default: :func:`failed_groups` of ``failures``)."""
    groups = failed_groups(failures, records) if failed is None else failed
    data = {
        "interrupted": interruption.to_dict() if interruption else None,  # the run is incomplete when set
        "conclusion": list(conclusion),  # verdicts, report, submissions
        "points": [{"point": rec.point_id, "file": f"{rec.point_id}.json",
                    **{k: getattr(rec, k) for k in SUMMARY},
                    **({"request_goodput": rec.request_goodput, "goodput": rec.ours.goodput.model_dump()}
                       if rec.ours.goodput else {}),
                    **({"accuracy_at_load": rec.ours.accuracy_at_load.model_dump(mode="json")}
                       if rec.ours.accuracy_at_load else {}),
                    **({"rounds": rec.ours.rounds.model_dump(include={"n", "representative", "figures", "ratios",
                                                                      "stopped"})} if rec.ours.rounds else {})}
                   for rec in records],
        "failures": [{"point": p, "reason": r} for p, r in failures],
        "failed": [g.to_dict() for g in groups],  # the failures by group and cause (and a merged run's empty runs)
        "pruned": [{"point": p, "reason": r} for p, r in pruned],  # --prune: not run, and why
        "warnings": [{"point": rec.point_id, "warning": w} for rec in records for w in rec.warnings()],
    }
    return RunFolder(run_dir).write_json(SUMMARY_FILE, data)
