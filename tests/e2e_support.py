"""Shared pieces of the end-to-end tests: the real SmolLM2 model and a mini suite for pytester."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / ".cache" / "models"
METRICS_DOC = REPO / "docs" / "metrics.md"


def process_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def pids_with_arg(text: str) -> list[int]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                out.append(int(cmdline.parent.name))
        except OSError:
            continue
    return out


def smollm2_path() -> Path:
    from pytest_inferencemax.serve.models.smollm2 import DEFAULT_DIR_NAME, ensure_model

    return ensure_model(MODELS_DIR / DEFAULT_DIR_NAME)


def documented_keys() -> list[str]:
    """Every top-level result key named in the first column of docs/metrics.md's tables."""
    keys: list[str] = []
    for line in METRICS_DOC.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            keys += re.findall(r"`([^`]+)`", first_cell)
    return keys


def mini_suite_toml(points: str, name: str = "mini") -> str:
    """The embedded suite's server recipe with a stage of our own."""
    recipe = (REPO / "suites" / "smollm2-cpu" / "suite.toml").read_text()
    head = recipe.split("[stages.cpu]")[0].replace('name = "smollm2"', f'name = "{name}"')
    return head + f"""
[stages.cpu]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
workloads = [{points}]
"""


SUITE_TEST = '''
def test_point(inferencemax, inferencemax_point):
    outcome = inferencemax.run(inferencemax_point)
    assert outcome.failed == 0, outcome.failure_report()
'''


def baseline_toml(model: str, isl: int, osl: int, tput_by_conc: dict[int, float], *, e2e_ms: float = 100.0,
                  intvty: float = 100.0) -> str:
    """A baseline file (baselines/<name>.toml) with these tput/GPU figures by CONC for ``model``."""
    rows = "".join(f"  {{ isl = {isl}, osl = {osl}, conc = {c}, median_e2e_ms = {e2e_ms}, median_intvty = {intvty}, "
                   f"tput_per_gpu = {t} }},\n" for c, t in tput_by_conc.items())
    return ('[source]\ntitle = "calibration baseline"\norigin = "written by the test"\nrecorded = "2026-11-29"\n'
            f'group = "cal_baseline_t1"\nprefix = "cal"\ntag = "t1"\n\n[models]\n{model} = [\n{rows}]\n')


def calibration_suite_toml(argv: str, stages: str) -> str:
    """A suite whose server recipe launches the calibration server (``argv``: a TOML array), with ``stages``."""
    return f'''
[suite]
name = "cal"
title = "the calibration server, launched as a recipe"
model = "calibration"
served_model_name = "calibration"
engine = "vllm"
tp = 1
default_stage = "s"

[server]
argv = {argv}
host = "127.0.0.1"
{stages}'''


def interruptible() -> None:
    """In a child before exec: SIGINT as a terminal's foreground job has it. A shell starts background jobs
    (``cmd &``, nohup, some CI runners) with SIGINT ignored, their children inherit that, and Python then
    installs no KeyboardInterrupt handler: a test that sends Ctrl-C must not depend on how it was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_pytest(cwd: Path, target: str, args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """pytest on ``target`` in a subprocess (Ctrl-C-able however this one was started), its output lines
    collected as they come."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", target, "-p", "no:cacheprovider", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, lines
