"""What the session does for variants beyond planning them: prune a curve that cannot qualify any more
(``--prune``), reuse a point an earlier run measured with the same recipe hash and workload (unless
``--rerun``), and estimate a variants plan's time for ``--collect-only``."""
from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Iterator

from pytest_inferencemax.judge.curve import curve_point
from pytest_inferencemax.judge.prune import prune_reason
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.results.point_pipeline import PointOutcome
from pytest_inferencemax.results.identity import configuration, current_key
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.store import RunFolder

if TYPE_CHECKING:
    from pytest_inferencemax.plugin.session import BenchSession


def _same_curve(a: Point, b: Point) -> bool:
    return (a.suite, a.stage, a.isl, a.osl, a.variant) == (b.suite, b.stage, b.isl, b.osl, b.variant)


def prune_check(session: BenchSession, suite: Suite, point: Point) -> str | None:
    """Why ``point`` is not worth running (``--prune``): its variant's curve can no longer qualify."""
    planned = [p for p in session.catalog.plan(suite) if _same_curve(p, point)]
    finished = [curve_point(r)[1] for r in session.points.records()
                if r.ours.suite == point.suite and r.ours.stage == point.stage and (r.ours.isl, r.ours.osl)
                == (point.isl, point.osl) and (r.ours.variant or None) == point.variant]
    why = prune_reason(session.catalog.verdict_rule(suite, point), len(planned), finished,
                       session.settings.prune_margin / 100.0)
    return f"variant {point.variant or '(base)'} cannot qualify on ISL {point.isl} / OSL {point.osl}: {why}" if why \
        else None


def expected_configuration(session: BenchSession, suite: Suite, point: Point) -> dict:
    return {"recipe": session.catalog.recipe(suite, point).key, "model": session.catalog.served_model_name(suite),
            "isl": point.isl, "osl": point.osl, "conc": point.conc, "num_prompts": point.num_prompts,
            "num_warmups": point.num_warmups, "range_ratio": float(point.range_ratio), "seed": session.settings.seed,
            "tput_per_gpu_divisor": point.tput_per_gpu_divisor, "client": point.client.model_dump()}


def _earlier_records(session: BenchSession, point: Point) -> Iterator[tuple[PointRecord, Path]]:
    """The clean records of ``point`` (status ok, gate passed or skipped) in other runs under --results-dir,
    newest first, read as they are asked for."""
    runs = [d for d in session.settings.results_dir.glob("*") if d.is_dir() and d.resolve() != session.run_dir.resolve()]
    for path in sorted((d / f"{point.id}.json" for d in runs), key=lambda p: p.stat().st_mtime if p.is_file() else 0,
                       reverse=True):
        if not path.is_file():
            continue
        try:
            rec = PointRecord.from_json(path.read_text(encoding="utf-8"), str(path))
        except (OSError, RecordError):
            continue
        if rec.status == "ok" and rec.accuracy_status in ("PASSED", "SKIPPED"):
            yield rec, path


def _reuse_off(session: BenchSession, point: Point) -> bool:
    """--rerun, a point of no variant, or --server-url (nothing launched, so no recipe to compare)."""
    return bool(session.settings.rerun or point.variant is None or session.settings.server_url)


def find_reusable(session: BenchSession, suite: Suite, point: Point) -> tuple[PointRecord, Path] | None:
    """The newest clean record of ``point`` in another run under --results-dir with the same recipe hash and
    workload; None when there is none (or with --rerun, or without variants)."""
    if _reuse_off(session, point):
        return None
    want = expected_configuration(session, suite, point)
    return next(((rec, path) for rec, path in _earlier_records(session, point) if configuration(rec) == want), None)


def older_version_match(session: BenchSession, suite: Suite, point: Point) -> Path | None:
    """A record of ``point`` that an older version wrote (its recipe hash of the scheme before ``r2-``, which
    counted the run folder) and that matches in everything else: it cannot be reused, as its hash says nothing
    of what its server ran; None when there is none."""
    if _reuse_off(session, point):
        return None
    want = {k: v for k, v in expected_configuration(session, suite, point).items() if k != "recipe"}
    for rec, path in _earlier_records(session, point):
        key = rec.ours.server.recipe_key if rec.ours.server and rec.ours.server.launched else None
        have = configuration(rec)
        if key and not current_key(key) and {k: v for k, v in have.items() if k != "recipe"} == want:
            return path
    return None


def all_reusable(session: BenchSession, suite: Suite, point: Point) -> bool:
    """Every point on ``point``'s server was measured before: its server need not start (nor its gate run)."""
    key = session.catalog.recipe(suite, point).key
    group = [p for p in session.catalog.plan(suite) if session.catalog.recipe(suite, p).key == key]
    return bool(group) and all(find_reusable(session, suite, p) is not None for p in group)


def reuse(session: BenchSession, point: Point, found: tuple[PointRecord, Path]) -> PointOutcome:
    """Copy an earlier run's record of ``point`` (and its rounds and telemetry files) into this run."""
    rec, path = found
    rec = rec.model_copy(deep=True)
    rec.ours.reused_from = rec.ours.reused_from or str(path)
    folder = session.folder
    extra = list(rec.ours.rounds.files) if rec.ours.rounds else []
    extra += [rec.ours.telemetry.series] if rec.ours.telemetry and rec.ours.telemetry.series else []
    for name in extra:
        src = path.parent / name
        if src.is_file():
            folder.write_text(name, src.read_text(encoding="utf-8"))
    out = folder.write_point(rec)
    session.progress.line(f"inferencemax: {point.id}: reused from {path} (same recipe hash and workload; "
                          "--rerun measures it again)")
    return PointOutcome(point, rec, out, None, None)


def estimate_line(session: BenchSession, suite: Suite, points: list[Point]) -> str | None:
    """The variants plan's size and, from the newest earlier run of this suite under --results-dir, its
    expected time (server starts + points); None without variants."""
    found = session.catalog.variant_set(suite)
    if found is None:
        return None
    recipes = {session.catalog.recipe(suite, p).key for p in points}
    fresh = [p for p in points if find_reusable(session, suite, p) is None]
    reused = len(points) - len(fresh)
    starts_needed = len({session.catalog.recipe(suite, p).key for p in fresh})  # a server whose points are all reused never starts
    older = sum(1 for p in fresh if older_version_match(session, suite, p) is not None)
    head = (f"  variants: {found.describe()}; {len(points)} points on {len(recipes)} server(s), one variant after "
            "another"
            + (f"; {reused} point(s) reused from earlier runs (--rerun measures them again)" if reused else "")
            + (f"; {older} point(s) measured by an older version, whose recipe hash changed with the run folder, "
               "are measured again" if older else ""))
    starts, durations = _history(session, suite)
    if not starts or not durations:
        return head + f"; no time estimate (no earlier run of suite {suite.name} under {session.settings.results_dir})"
    minutes = (starts_needed * fmean(starts) + len(fresh) * fmean(durations)) / 60
    return (head + f"; estimated {minutes:.0f} min (server start {fmean(starts):.0f} s, point {fmean(durations):.0f} s,"
            " from earlier runs; accuracy gates not included)")


def _history(session: BenchSession, suite: Suite) -> tuple[list[float], list[float]]:
    """Server start times and point times (warmups included, roughly) of earlier runs of ``suite``."""
    starts: list[float] = []
    durations: list[float] = []
    results_dir = session.settings.results_dir
    for folder in (RunFolder(d) for d in sorted(results_dir.iterdir() if results_dir.is_dir() else ()) if d.is_dir()):
        try:
            starts += [float(s["started_in_s"]) for _, data in folder.manifests() for s in data.get("servers") or []
                       if s.get("started_in_s")]
        except (OSError, ValueError, AttributeError):
            pass
        for path in folder.point_files():
            if not path.name.startswith(f"{suite.name}-"):
                continue
            try:
                rec = folder.read_point(path)
            except (OSError, RecordError):
                continue
            warm = rec.benchmark_args.num_warmups / max(rec.num_prompts, 1)
            durations.append(float(rec.duration) * (1 + warm))
    return starts, durations
