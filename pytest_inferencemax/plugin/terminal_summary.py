"""What ``pytest -q`` says about a run: the run in one line, its verdicts, an interruption and what the disk
refused (pytest-benchmark's table is left out: ``hooks.pytest_cmdline_main``)."""
from __future__ import annotations

from collections import Counter

from pytest_inferencemax.plugin.session import BenchSession
from pytest_inferencemax.publish.finish import FinishedRun
from pytest_inferencemax.results.summary import Interruption

# what ``-q`` keeps of the finished run's lines (publish/finish.py): verdicts, the best variant, submissions,
# problems (those of files not saved are said once, in the NOT SAVED line)
QUIET_KEEPS = ("verdict ", "failed ", "variants: best overall", "submission ", "problem: ")


def run_line(bench: BenchSession) -> str:
    """The run in one line: its points by status, the failed ones, the comparison with ``--compare-to``,
    pruned and reused points, and the results folder."""
    records = bench.points.records()
    by_status = Counter("ok" if r.status == "ok" else r.status.upper() for r in records)
    parts = [f"{len(records)} point(s) measured" + (": " if records else "")
             + ", ".join(f"{n} {status}" for status, n in by_status.most_common())]
    if failed := list(dict.fromkeys(point for point, _ in bench.points.failures)):
        parts.append(f"{len(failed)} failed ({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''})")
    compared = [(r.point_id, c) for r in records if (c := getattr(r.ours, "compare_to", None)) is not None]
    if compared:
        regressed = [point for point, c in compared if c.regressed]
        parts.append(f"vs {compared[0][1].run}: {len(regressed)} of {len(compared)} regressed"
                     + (f" ({', '.join(regressed)})" if regressed else ""))
    if bench.points.pruned:
        parts.append(f"{len(bench.points.pruned)} pruned")
    if reused := sum(1 for r in records if r.ours.reused_from):
        parts.append(f"{reused} reused")
    return "; ".join(parts + [f"results: {bench.run_dir}"])


def quiet_lines(bench: BenchSession, finished: FinishedRun | None, interruption: Interruption | None) -> list[str]:
    """``-q``'s lines, each starting ``inferencemax:``."""
    lines = [f"INCOMPLETE: {interruption.line()} (results: {bench.run_dir})"] if interruption is not None else []
    if bench.points.record_paths or bench.points.failures or bench.points.pruned:
        lines.append(run_line(bench))
        lines += [line for line in (finished.lines() if finished else [])
                  if line.startswith(QUIET_KEEPS) and not line.startswith("problem: not saved: ")]
    if bench.points.not_saved:
        more = len(bench.points.not_saved) - 1
        lines.append(f"NOT SAVED: {bench.points.not_saved[0]}" + (f" (and {more} more)" if more else ""))
    return [f"inferencemax: {line}" for line in lines]
