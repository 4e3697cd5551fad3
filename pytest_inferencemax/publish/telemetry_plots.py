"""One plot per point of its telemetry over time: running and waiting requests, KV-cache usage and,
where the host has a GPU tool, the GPUs' power (``plots/<point>-telemetry.png``), from the point's
``<point>.telemetry.jsonl``. Drawn with matplotlib's object API on the Agg canvas, like the curves."""
from __future__ import annotations

import json
from pathlib import Path

from pytest_inferencemax.publish.plots import save_png


def read_series(path: Path) -> list[dict]:
    """The samples of a ``.telemetry.jsonl`` file (lines that are not JSON objects are skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "t" in row:
            rows.append(row)
    return rows


def plot_telemetry(series_path: Path, out: Path, title: str) -> Path | None:
    """The point's telemetry plot at ``out``; None when the series has no server samples."""
    rows = [r for r in read_series(series_path) if r.get("server")]
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    power = [(r["t"], sum(g.get("power_w", 0.0) for g in r.get("gpus", []))) for r in rows if r.get("gpus")]
    panels = 3 if power else 2
    fig = Figure(figsize=(8, 2.4 * panels + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True)
    ts = [r["t"] for r in rows]
    for role, color in (("running", "tab:blue"), ("waiting", "tab:orange")):
        axes[0].plot(ts, [r["server"].get(role) for r in rows], label=f"{role} requests", color=color)
    axes[0].set_ylabel("requests")
    axes[0].legend(fontsize=8)
    axes[1].plot(ts, [100.0 * r["server"]["kv_usage"] if "kv_usage" in r["server"] else None for r in rows],
                 color="tab:green")
    axes[1].set_ylabel("KV cache used %")
    if power:
        axes[2].plot([p[0] for p in power], [p[1] for p in power], color="tab:red")
        axes[2].set_ylabel("GPU power W")
    for ax in axes:
        ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")  # the timed run starts at 0
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("seconds from the start of the timed run (before 0: warmups)")
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)
