"""Slurm, through its own command-line tools: the array job's script, ``sbatch``, the tasks' states, ``scancel``.

Why the tools and not a library (submitit, pyslurm): a shard is a shell command (``python -m pytest ...``) that
must run in whatever the cluster gives it (a venv on the shared filesystem, a pyxis container), which is what
``sbatch`` scripts are for; the states come from ``scontrol`` (every task of the array, while the controller
keeps them: ``MinJobAge``, 300 s by default) and then ``sacct`` where accounting is on; each task also leaves
its pytest exit status beside its results (``.exit``), so a finished shard is known even when neither
remembers it. submitit pickles Python callables for its own runner, and pyslurm must be built against the
cluster's exact Slurm version; the CLI tools exist on every login node.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pytest_inferencemax.errors import ConfigError

EXIT_FILE = ".exit"  # a shard's pytest exit status, written by its task beside its results
# Slurm states a task leaves for good (squeue/scontrol/sacct words)
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE"}


class SlurmError(ConfigError):
    """A Slurm command failed or is missing; the message names the command, what it said and the fix."""


@dataclass(frozen=True)
class Shard:
    """One server configuration's tests (``plugin/shards.py``), run by one array task."""

    index: int
    name: str
    points: tuple[str, ...]
    nodeids: tuple[str, ...]
    variant: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """What every task of the array gets."""

    workdir: Path  # pytest's rootdir: the node ids are relative to it (a shared filesystem)
    shards_dir: Path  # <results-dir>/<run-id>/shards: one run folder per shard
    python: str  # the interpreter on the nodes (a venv on the shared filesystem, or the container's)
    pytest_args: tuple[str, ...] = ()
    job_name: str = "inferencemax"
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    gpus_per_node: int = 0
    max_parallel: int | None = None
    sbatch_args: tuple[str, ...] = ()  # e.g. --container-image=IMAGE (pyxis), --qos=...
    setup: str | None = None  # a shell line before pytest (module load, source a venv)


def job_script(shards: Sequence[Shard], spec: JobSpec) -> str:
    """The array job's script: ``#SBATCH`` lines, then one ``case`` branch per task running its shard's pytest and
    leaving pytest's exit status in ``<shard>/.exit``."""
    last = max(s.index for s in shards)
    head = ["#!/bin/bash", f"#SBATCH --job-name={spec.job_name}",
            f"#SBATCH --array={','.join(str(s.index) for s in shards) if len(shards) != last + 1 else f'0-{last}'}"
            + (f"%{spec.max_parallel}" if spec.max_parallel else ""),
            "#SBATCH --nodes=1", f"#SBATCH --output={spec.shards_dir}/logs/%a.log", "#SBATCH --requeue"]
    head += [f"#SBATCH --partition={spec.partition}"] if spec.partition else []
    head += [f"#SBATCH --time={spec.time}"] if spec.time else []
    head += [f"#SBATCH --account={spec.account}"] if spec.account else []
    head += [f"#SBATCH --gpus-per-node={spec.gpus_per_node}", "#SBATCH --exclusive"] if spec.gpus_per_node else []
    head += [f"#SBATCH {arg}" for arg in spec.sbatch_args]
    body = ["set -u", f"cd {shlex.quote(str(spec.workdir))}"] + ([spec.setup] if spec.setup else [])
    body.append('case "$SLURM_ARRAY_TASK_ID" in')
    for shard in shards:
        out = spec.shards_dir / shard.name
        rootdir = [] if any(a.startswith("--rootdir") for a in spec.pytest_args) else [f"--rootdir={spec.workdir}"]
        argv = [spec.python, "-m", "pytest", *shard.nodeids, *spec.pytest_args, *rootdir, "--results-dir",
                str(spec.shards_dir), "--run-id", shard.name, "-p", "no:cacheprovider"]
        body += [f"  {shard.index})  # {shard.name}: {len(shard.points)} points",
                 f"    mkdir -p {shlex.quote(str(out))} && rm -f {shlex.quote(str(out / EXIT_FILE))}",
                 f"    {' '.join(shlex.quote(a) for a in argv)}",
                 f"    status=$?; echo $status > {shlex.quote(str(out / EXIT_FILE))}; exit $status ;;"]
    body += ['  *) echo "no shard $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac"]
    return "\n".join(head + [""] + body) + "\n"


def _run(argv: list[str], what: str, timeout: float = 60) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]}: not found; run on a Slurm login node (or pass --dry-run to see the job "
                         "script)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(argv)}: no answer in {timeout:g} s ({what})") from None
    if done.returncode != 0:
        raise SlurmError(f"{' '.join(argv)} failed ({what}): {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout


def sbatch(script: Path) -> str:
    """Submit ``script``; the array's job id."""
    return _run(["sbatch", "--parsable", str(script)], "submitting the array").strip().split(";")[0]


def scancel(job_id: str) -> None:
    _run(["scancel", job_id], "cancelling the array")


@dataclass
class TaskState:
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, NODE_FAIL, CANCELLED, ... or UNKNOWN
    reason: str = ""  # Slurm's reason (pending: JobArrayTaskLimit, Resources; failed: NonZeroExitCode)
    exit_code: str = ""  # "1:0": the script's status and the signal
    run_time: str = ""
    node: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL


def _task_ids(text: str) -> list[int]:
    """``3``, ``2-5%2``, ``[1,3-4]`` -> the task ids."""
    ids: list[int] = []
    for part in text.strip("[]").split("%")[0].split(","):
        if "-" in part:
            low, high = part.split("-")
            ids += range(int(low), int(high) + 1)
        elif part.strip().isdigit():
            ids.append(int(part))
    return ids


def scontrol_states(job_id: str) -> dict[int, TaskState]:
    """Every task's state the controller still holds (``scontrol show job -o``); {} once it forgot the job."""
    try:
        text = _run(["scontrol", "show", "job", "-o", job_id], "reading the tasks' states")
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return {}
        raise
    states: dict[int, TaskState] = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        state = TaskState(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""), fields.get("ExitCode", ""),
                          fields.get("RunTime", ""), fields.get("NodeList", ""))
        for task in _task_ids(fields.get("ArrayTaskId", "")):
            states[task] = state
    return states


def sacct_states(job_id: str) -> dict[int, TaskState]:
    """The tasks' final states from accounting (``sacct``), where the cluster keeps it; {} where it does not."""
    try:
        text = _run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode,Elapsed,NodeList"],
                    "reading accounting")
    except SlurmError:
        return {}
    states: dict[int, TaskState] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 5 and "_" in parts[0]:
            for task in _task_ids(parts[0].split("_", 1)[1]):
                states[task] = TaskState(parts[1].split()[0], "", parts[2], parts[3], parts[4])
    return states


def exit_file_state(shard_dir: Path) -> TaskState | None:
    """What a task left when Slurm no longer says: pytest's exit status in ``<shard>/.exit``."""
    try:
        code = (shard_dir / EXIT_FILE).read_text().strip()
    except OSError:
        return None
    return TaskState("COMPLETED" if code == "0" else "FAILED", "" if code == "0" else "NonZeroExitCode", f"{code}:0")
