"""The two InferenceMAX plots of a curve (and, with --goodput, its goodput), as PNG files.

Like InferenceMAX's ``utils/plot_perf.py``: y = throughput per GPU (tok/s/GPU) against x =
median E2E latency (s), and against x = interactivity (tok/s/user). Our points are joined as a
line and labelled by CONC (with ``--repeat``: the rounds' means, with their 95% intervals as error
bars on both axes); the baseline points (stage 1: B200; stage 2: the targets) and AMD's
existing points, when a table gives them, are overlaid with other markers.

The data to draw are built by the pure function :func:`plot_series` (easy to test); :func:`draw`
only renders them. matplotlib is used through its object API with the Agg canvas: no pyplot,
no global backend switch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Literal, Mapping, Sequence

from pytest_inferencemax.judge.curve import Curve, CurveKey, CurvePoint
from pytest_inferencemax.results.stats import percent
from pytest_inferencemax.results.store import write_atomic

XAxis = Literal["e2e", "intvty"]
XLABELS: Mapping[str, str] = MappingProxyType({"e2e": "median end-to-end latency (s)",
                                               "intvty": "interactivity (tok/s/user)"})
YLABEL = "throughput per GPU (tok/s/GPU)"
FILE_SUFFIX: Mapping[str, str] = MappingProxyType({"e2e": "tput-vs-e2e", "intvty": "tput-vs-intvty"})


@dataclass(frozen=True)
class PlotSeries:
    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    labels: tuple[str, ...]  # one per point: its CONC
    kind: Literal["ours", "baseline", "amd"] = "ours"
    # --repeat: each point's 95% interval as (below, above) its mean, on each axis; None: one round each
    xerr: tuple[tuple[float, float], ...] | None = None
    yerr: tuple[tuple[float, float], ...] | None = None
    color: str | None = None  # instead of the kind's colour (the variants' overlay)


def _spread(p: CurvePoint, key: str, scale: float = 1.0) -> tuple[float, float, float]:
    """(mean, below, above) of a point's figure: the rounds' mean and interval, or its one value."""
    stats = p.stats(key) if p.n_rounds > 1 else None
    if stats is None:
        return p.mean(key) * scale, 0.0, 0.0
    mean = float(stats.mean)
    return mean * scale, (mean - float(stats.low)) * scale, (float(stats.high) - mean) * scale


def plot_series(curve: Curve, x: XAxis = "e2e") -> list[PlotSeries]:
    """Our points, then the baseline's and AMD's where there are any; empty series are left out."""
    if x not in XLABELS:
        raise ValueError(f"x must be 'e2e' or 'intvty', not {x!r}")
    xkey, xscale = ("median_e2el_ms", 1e-3) if x == "e2e" else ("interactivity", 1.0)
    ours = [p for p in curve.points if p.measured]  # a point of no successful request has no place on the curve
    xs = [_spread(p, xkey, xscale) for p in ours]
    ys = [_spread(p, "tput_per_gpu") for p in ours]
    rounds = any(p.n_rounds > 1 for p in ours)
    series = [PlotSeries(
        name=f"{curve.key.suite} (ours)" + (f" mean, {percent(max(p.confidence for p in ours))} CI" if rounds else ""),
        xs=tuple(v[0] for v in xs), ys=tuple(v[0] for v in ys), labels=tuple(str(p.conc) for p in ours),
        xerr=tuple(v[1:] for v in xs) if rounds else None, yerr=tuple(v[1:] for v in ys) if rounds else None,
    )]
    base = [p.baseline for p in curve.points if p.baseline is not None]
    if base:
        series.append(PlotSeries(
            name=curve.baseline_name or "baseline",
            xs=tuple(b.median_e2e_ms / 1000.0 if x == "e2e" else b.median_intvty for b in base),
            ys=tuple(b.tput_per_gpu for b in base),
            labels=tuple(str(b.conc) for b in base), kind="baseline"))
    if curve.amd_points:
        series.append(PlotSeries(
            name="AMD existing points",
            xs=tuple(a.median_e2e_ms / 1000.0 if x == "e2e" else a.median_intvty for a in curve.amd_points),
            ys=tuple(a.tput_per_gpu for a in curve.amd_points),
            labels=tuple(str(a.conc) for a in curve.amd_points), kind="amd"))
    return series


_STYLE: Mapping[str, Mapping[str, object]] = MappingProxyType({
    "ours": MappingProxyType({"marker": "o", "linestyle": "-", "color": "tab:red"}),
    "baseline": MappingProxyType({"marker": "s", "linestyle": ":", "color": "tab:green"}),
    "amd": MappingProxyType({"marker": "^", "linestyle": "--", "color": "tab:blue"}),
})


def draw(series_list: Sequence[PlotSeries], path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Render the series to a PNG at ``path`` (written atomically); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for s in series_list:
        style = dict(_STYLE.get(s.kind, _STYLE["ours"]))
        if s.color:
            style["color"] = s.color
        if s.kind == "ours":
            pairs = sorted(zip(s.xs, s.ys, s.labels), key=lambda t: int(t[2]) if t[2].isdigit() else 0)
            xs, ys = [t[0] for t in pairs], [t[1] for t in pairs]
        else:
            xs, ys = list(s.xs), list(s.ys)
        ax.plot(xs, ys, label=s.name, markersize=7, linewidth=1.5 if s.kind == "ours" else 1.0,
                alpha=1.0 if s.kind == "ours" else 0.8, **style)  # type: ignore[arg-type]
        if s.xerr is not None and s.yerr is not None:  # the rounds' 95% intervals
            ax.errorbar(list(s.xs), list(s.ys), xerr=[[e[0] for e in s.xerr], [e[1] for e in s.xerr]],
                        yerr=[[e[0] for e in s.yerr], [e[1] for e in s.yerr]], fmt="none", capsize=3,
                        ecolor=str(style["color"]), elinewidth=1.0)
        for xv, yv, lab in zip(s.xs, s.ys, s.labels):
            ax.annotate(f"c{lab}", (xv, yv), textcoords="offset points", xytext=(5, 5), fontsize=8,
                        color=str(style["color"]))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if series_list:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def save_png(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically (``store.write_atomic``)."""
    def fill(fd: int) -> None:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")

    return write_atomic(path, fill)


def goodput_series(curve: Curve) -> list[PlotSeries]:
    """--goodput: requests per second against CONC, all completed ones and those within every SLO (the reference's
    ``request_goodput:``); empty when no point of the curve was held to SLOs."""
    held = [p for p in curve.points if p.request_goodput is not None]
    if not held:
        return []
    concs, labels = tuple(float(p.conc) for p in held), tuple(str(p.conc) for p in held)
    return [PlotSeries("request throughput (completed)", concs, tuple(p.request_throughput for p in held), labels,
                       kind="baseline"),
            PlotSeries("goodput (within every SLO)", concs, tuple(float(p.request_goodput or 0.0) for p in held),
                       labels)]


def plot_curve(curve: Curve, out_dir: Path) -> tuple[Path, ...]:
    """The plots of one curve: ``<slug>-tput-vs-e2e.png``, ``<slug>-tput-vs-intvty.png`` and, with --goodput,
    ``<slug>-goodput.png`` (requests per second against CONC, completed and within the SLOs)."""
    divisors = "/".join(f"{d:g}" for d in curve.divisors) or "?"
    paths = []
    for x in ("e2e", "intvty"):
        title = f"{curve.key.title}\ntok/s/GPU = total token throughput / {divisors}"
        paths.append(draw(plot_series(curve, x), Path(out_dir) / f"{curve.key.slug}-{FILE_SUFFIX[x]}.png",
                          title, XLABELS[x], YLABEL))
    if series := goodput_series(curve):
        paths.append(draw(series, Path(out_dir) / f"{curve.key.slug}-goodput.png", f"{curve.key.title}\ngoodput "
                          "against the --goodput SLOs", "CONC", "requests per second"))
    return tuple(paths)


def plot_curves(curves: Iterable[Curve], out_dir: Path) -> dict[CurveKey, tuple[Path, ...]]:
    """The plots of every curve, under ``out_dir``."""
    return {c.key: plot_curve(c, out_dir) for c in curves}
