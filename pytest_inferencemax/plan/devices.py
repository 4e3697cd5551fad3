"""GPUs: what the machine reports, and which ones each server (one per xdist worker) may use."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

GPU_TOOLS = (
    ("nvidia-smi", ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"]),
    ("amd-smi", ["amd-smi", "static", "--asic", "--csv"]),
    ("rocm-smi", ["rocm-smi", "--showproductname", "--csv"]),
)


def gpu_report(timeout: float = 20.0) -> dict[str, str]:
    """What each GPU tool on PATH prints about the GPUs (empty when none is installed)."""
    out: dict[str, str] = {}
    for name, cmd in GPU_TOOLS:
        if shutil.which(cmd[0]) is None:
            continue
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            out[name] = (proc.stdout or proc.stderr).strip()[:4000]
        except (OSError, subprocess.SubprocessError) as exc:
            out[name] = f"failed: {exc}"
    return out


def default_visibility_vars() -> tuple[str, ...]:
    """ROCm machines (``/dev/kfd``) honour HIP_VISIBLE_DEVICES, others CUDA_VISIBLE_DEVICES.

    Only one variable is set by default: ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES filter one
    after the other, so setting both to the same physical ids would select the wrong devices.
    """
    return ("HIP_VISIBLE_DEVICES",) if os.path.exists("/dev/kfd") else ("CUDA_VISIBLE_DEVICES",)


@dataclass(frozen=True)
class DeviceSlice:
    """The GPUs one worker's servers may use, and how they are exported."""

    worker: int
    devices: tuple[str, ...]
    env_vars: tuple[str, ...]

    def env(self) -> dict[str, str]:
        value = ",".join(self.devices)
        return {var: value for var in self.env_vars}


def worker_index(workerid: str | None) -> int:
    """``gw3`` -> 3; no xdist -> 0."""
    if not workerid:
        return 0
    digits = workerid.lstrip("gw")
    return int(digits) if digits.isdigit() else 0


def gpus_per_server(per_server: int | None, gpus: tuple[str, ...] | None, num_gpus: int | None,
                    servers: int | None) -> int | None:
    """K, the GPUs each server (one per xdist worker; ``servers`` of them, None: one) gets.

    ``--gpus-per-server K`` decides when given. Otherwise a ``--gpus`` list alone still confines the servers
    to it: each gets ``--num-gpus`` of them when that is given, else an equal share of the list (``--gpus 0-3``
    with one server: all four, so its TP is 4). Neither: None, and the servers see every GPU.
    Raises ValueError (naming the fix) when the list cannot be shared so.
    """
    if per_server or not gpus:
        return per_server
    count = servers or 1
    listed = f"--gpus {','.join(gpus)} lists {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    if num_gpus:
        if num_gpus * count > len(gpus):
            raise ValueError(f"{listed}, fewer than {count} server(s) x --num-gpus {num_gpus}: list more GPUs, "
                             f"or pass a smaller --num-gpus or fewer workers (-n)")
        return num_gpus
    if len(gpus) % count:
        raise ValueError(f"{listed}, which {count} servers (-n {count}) cannot share equally: list a multiple of "
                         f"{count}, or pass --gpus-per-server K")
    return len(gpus) // count


def device_slice(worker: int, per_server: int, available: tuple[str, ...] | None,
                 env_vars: tuple[str, ...]) -> DeviceSlice:
    """Worker ``w`` gets devices ``[w*K, (w+1)*K)`` of ``available`` (or of 0, 1, 2, … when not listed)."""
    start = worker * per_server
    if available is None:
        devices = tuple(str(i) for i in range(start, start + per_server))
    else:
        if start + per_server > len(available):
            raise ValueError(f"worker {worker} needs GPUs {start}..{start + per_server - 1} of --gpus "
                             f"{','.join(available)}: use fewer workers (-n) or a smaller --gpus-per-server")
        devices = available[start:start + per_server]
    return DeviceSlice(worker, devices, env_vars)
