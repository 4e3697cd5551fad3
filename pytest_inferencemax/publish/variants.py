"""The variants' ranking in the run folder: ``variants.md``, ``variants.json`` and, per curve, the
variants' curves overlaid with the baseline (``plots/<curve>-variants-tput-vs-{e2e,intvty}.png``)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.judge.curve import Curve, CurveKey
from pytest_inferencemax.judge.ranking import Ranking
from pytest_inferencemax.publish.plots import FILE_SUFFIX, XLABELS, YLABEL, draw, plot_series
from pytest_inferencemax.results.store import RunFolder

VARIANTS_MD, VARIANTS_JSON = "variants.md", "variants.json"
# one colour per variant (matplotlib's tab10 without the baseline's green and AMD's blue)
COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
           "black", "gold")


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render_variants(ranking: Ranking) -> str:
    lines = ["# Variants", ""]
    best = ranking.overall[0] if ranking.overall else None
    if best is not None:
        lines += [f"**Best overall: {best.variant}** (qualified on {best.curves_qualified} of {best.curves} "
                  f"curve(s), mean share {_fmt(best.mean_share, '.0%')}, tput/GPU ratio geometric mean "
                  f"{_fmt(best.tput_geomean, '.3f')}).", ""]
    lines += ["| rank | variant | curves qualified | mean share above baseline | tput/GPU ratio (geo. mean) "
              "| tput/GPU (geo. mean) |", "|---:|---|---:|---:|---:|---:|"]
    for n, o in enumerate(ranking.overall, 1):
        lines.append(f"| {n} | {o.variant} | {o.curves_qualified} of {o.curves} | {_fmt(o.mean_share, '.0%')} "
                     f"| {_fmt(o.tput_geomean, '.3f')} | {_fmt(o.tput_per_gpu_geomean, '.1f')} |")
    for key, winner in ranking.best_per_curve:
        lines += ["", f"## {key.title}", "", f"Best: **{winner}**", "",
                  "| variant | verdict | points | beat baseline | inconclusive | share | tput/GPU ratio (geo. mean) "
                  "| tput/GPU (geo. mean) | accuracy |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in (r for r in ranking.rows if r.curve == key):
            lines.append(f"| {r.variant} | {r.label} | {r.points} | {r.beats} | {r.inconclusive} "
                         f"| {_fmt(r.share, '.0%')} | {_fmt(r.tput_geomean, '.3f')} "
                         f"| {_fmt(r.tput_per_gpu_geomean, '.1f')} | {r.accuracy} |")
    lines += ["", "Ranking: on a curve, qualified first, then the share of points beating the baseline, then the "
              "geometric mean of the tput/GPU ratios, then that of tput/GPU itself; overall, the curves qualified "
              "on, the mean share, the geometric means (docs/variants.md)."]
    return "\n".join(lines) + "\n"


def ranking_data(ranking: Ranking) -> dict[str, Any]:
    return {
        "best": ranking.best,
        "overall": [{"variant": o.variant, "curves_qualified": o.curves_qualified, "curves": o.curves,
                     "mean_share": o.mean_share, "tput_ratio_geomean": o.tput_geomean,
                     "tput_per_gpu_geomean": o.tput_per_gpu_geomean} for o in ranking.overall],
        "curves": [{"curve": key.title, "suite": key.suite, "stage": key.stage, "isl": key.isl, "osl": key.osl,
                    "best": winner,
                    "variants": [{"variant": r.variant, "verdict": r.label, "qualified": r.qualified,
                                  "points": r.points, "beats": r.beats, "inconclusive": r.inconclusive,
                                  "share": r.share, "tput_ratio_geomean": r.tput_geomean,
                                  "tput_per_gpu_geomean": r.tput_per_gpu_geomean, "accuracy": r.accuracy}
                                 for r in ranking.rows if r.curve == key]}
                   for key, winner in ranking.best_per_curve],
    }


def overlay_plots(curves: Sequence[Curve], out_dir: Path) -> dict[CurveKey, tuple[Path, ...]]:
    """Per curve, every variant's points (one colour each) with the baseline's, on both InferenceMAX axes."""
    by_base: dict[CurveKey, list[Curve]] = {}
    for c in curves:
        if c.key.variant:
            by_base.setdefault(c.key.base, []).append(c)
    out = {}
    for base, group in sorted(by_base.items()):
        paths = []
        for x in ("e2e", "intvty"):
            series = []
            for n, c in enumerate(sorted(group, key=lambda c: c.key.variant)):
                ours = plot_series(c, x)
                series.append(replace(ours[0], name=c.key.variant, color=COLOURS[n % len(COLOURS)]))
                if n == 0:
                    series += ours[1:]  # the baseline (and AMD's points) once
            paths.append(draw(series, Path(out_dir) / f"{base.slug}-variants-{FILE_SUFFIX[x]}.png",
                              f"{base.title}: variants", XLABELS[x], YLABEL))
        out[base] = tuple(paths)
    return out


def write_variants(run_dir: Path, ranking: Ranking, curves: Sequence[Curve], plots_dir: Path | None) -> list[Path]:
    """``variants.md``, ``variants.json`` and the overlay plots; returns the files written."""
    folder = RunFolder(run_dir)
    written = [folder.write_text(VARIANTS_MD, render_variants(ranking)),
               folder.write_json(VARIANTS_JSON, ranking_data(ranking))]
    if plots_dir is not None:
        written += [p for paths in overlay_plots(curves, plots_dir).values() for p in paths]
    return written
