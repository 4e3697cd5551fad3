"""GPU telemetry: power, utilisation, memory used, graphics clock and temperature, per GPU.

Read with whichever vendor tool the host has, in this order: ``amd-smi metric --json``, else
``rocm-smi --json``, else ``nvidia-smi --query-gpu=... --format=csv``. A host without any of them
(this project's CPU machines) records telemetry as absent: never an error. The parsers take what
each tool prints (tested on outputs kept in tests/golden/gpu/), and give the same :class:`GpuReading`.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

NVIDIA_FIELDS = "index,power.draw,utilization.gpu,memory.used,clocks.sm,temperature.gpu"


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment; None where the tool did not say."""

    gpu: str
    power_w: float | None = None
    util_pct: float | None = None
    mem_used_mb: float | None = None
    clock_mhz: float | None = None
    temp_c: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(value: Any) -> float | None:
    """A number from 12, "12.5", "[N/A]", {"value": 12, "unit": "W"} or "(1700Mhz)"; None otherwise."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return float(match.group()) if match else None


def parse_nvidia_smi(text: str) -> list[GpuReading]:
    """``nvidia-smi --query-gpu=<NVIDIA_FIELDS> --format=csv,noheader,nounits`` (one line per GPU)."""
    out = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 6:
            continue
        index, power, util, mem, clock, temp = cells
        out.append(GpuReading(index, _number(power), _number(util), _number(mem), _number(clock), _number(temp)))
    return out


def _find(obj: Any, *names: str) -> Any:
    """The first of ``names`` found in ``obj`` or the dicts under it (amd-smi moves fields between versions)."""
    if isinstance(obj, dict):
        for name in names:
            if name in obj and _number(obj[name]) is not None:
                return obj[name]
        for value in obj.values():
            if (found := _find(value, *names)) is not None:
                return found
    return None


def parse_amd_smi(text: str) -> list[GpuReading]:
    """``amd-smi metric --json``: a list of GPUs, or ``{"gpu_data": [...]}``; values plain or ``{value, unit}``.
    Lines before the JSON (amd-smi's warnings) are skipped."""
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    data = json.loads(text[start:]) if start >= 0 else []
    gpus = data.get("gpu_data", []) if isinstance(data, dict) else data
    out = []
    for n, gpu in enumerate(g for g in gpus if isinstance(g, dict)):
        power = gpu.get("power") or {}
        out.append(GpuReading(
            str(gpu.get("gpu", n)),
            _number(_find(power, "socket_power", "current_socket_power", "average_socket_power")),
            _number(_find(gpu.get("usage") or {}, "gfx_activity", "gfx_usage")),
            _number(_find(gpu.get("mem_usage") or gpu.get("memory") or {}, "used_vram", "vram_used")),
            _number(_find(gpu.get("clock") or {}, "gfx_0", "gfx_clock", "clk")),
            _number(_find(gpu.get("temperature") or {}, "hotspot", "edge", "gpu_temp"))))
    return out


def parse_rocm_smi(text: str) -> list[GpuReading]:
    """``rocm-smi --showpower --showuse --showmemuse --showtemp --showgpuclocks --json``: ``{"card0": {...}}``."""
    data = json.loads(text)

    def field(card: dict[str, Any], *patterns: str) -> float | None:
        for pattern in patterns:
            for key, value in card.items():
                if re.search(pattern, key, re.IGNORECASE) and (n := _number(value)) is not None:
                    return n
        return None

    out = []
    for name, card in data.items():
        if not name.startswith("card") or not isinstance(card, dict):
            continue
        used_b = field(card, r"VRAM Total Used Memory \(B\)")
        out.append(GpuReading(
            name.removeprefix("card"), field(card, r"Socket Graphics Package Power", r"Graphics Package Power"),
            field(card, r"^GPU use"), used_b / 1e6 if used_b is not None else None,
            field(card, r"^sclk clock"), field(card, r"Temperature \(Sensor junction\)", r"Temperature \(Sensor edge\)")))
    return out


# name, command, parser: the first tool on PATH is used
TOOLS: Sequence[tuple[str, list[str], Callable[[str], list[GpuReading]]]] = (
    ("amd-smi", ["amd-smi", "metric", "--json"], parse_amd_smi),
    ("rocm-smi", ["rocm-smi", "--showpower", "--showuse", "--showmemuse", "--showtemp", "--showgpuclocks", "--json"],
     parse_rocm_smi),
    ("nvidia-smi", ["nvidia-smi", f"--query-gpu={NVIDIA_FIELDS}", "--format=csv,noheader,nounits"], parse_nvidia_smi),
)


def find_tool() -> tuple[str, list[str], Callable[[str], list[GpuReading]]] | None:
    """The GPU tool this host has, or None (then GPU telemetry is absent)."""
    return next((t for t in TOOLS if shutil.which(t[1][0])), None)


def read_gpus(tool: tuple[str, list[str], Callable[[str], list[GpuReading]]], timeout: float = 5.0,
              only: Sequence[str] | None = None) -> list[GpuReading]:
    """One reading of every GPU (of ``only``, the server's GPU ids, when given); [] when the tool fails."""
    try:
        proc = subprocess.run(tool[1], capture_output=True, text=True, timeout=timeout)
        readings = tool[2](proc.stdout) if proc.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return [r for r in readings if only is None or r.gpu in only]
