"""A sweep fanned out over a Slurm cluster: one array task per server configuration, merged into one run.

    python -m pytest_inferencemax.cli.slurm SUITE_DIR... [--partition P] [--gpus-per-node 8] [--time 4:00:00]
        [--account A] [--max-parallel N] [--sbatch-arg ARG]... [--run-id ID] [--dry-run] [-- PYTEST_ARGS...]

1. Plans the shards with pytest's own collection (``--collect-only --shards-out``: one shard per server
   configuration, as xdist's workers keep them; variants, ``-k``, ``--conc`` apply) and prints them.
2. Writes the array job's script (``--dry-run``: prints it and stops; no Slurm needed) and submits it
   (``sbatch --array=0-K%N``); each task runs its shard's pytest into ``<results-dir>/<run-id>/shards/<shard>``
   (a shared filesystem: the nodes write there, this command reads there).
3. Waits, with a state line per shard (pending, running, done, failed, time limit, node failure) whenever one
   changes. Ctrl-C or SIGTERM cancels the array (``scancel``) and says what had finished.
4. Merges every shard's run folder into ``<results-dir>/<run-id>/merged`` (``cli.merge``: verdicts, rounds,
   ranking, report, plots) and, with ``--submit-team``, submits after the merge only what qualified.

A shard that failed is named with Slurm's state, its exit code and its log; what it measured is merged. Run the
same command again with the same ``--run-id`` and only the shards without a clean result are submitted again.
Exit 0 when every shard ran clean, 1 when one failed or a point failed, 2 on bad input, 130 when interrupted.
docs/slurm.md has a worked example.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from pytest_inferencemax.cli.merge import conclude, merge
from pytest_inferencemax.cli.slurm_jobs import (
    JobSpec, Shard, SlurmError, TaskState, exit_file_state, job_script, sacct_states, sbatch, scancel, scontrol_states,
)
from pytest_inferencemax.errors import ConfigError, ResultsError
from pytest_inferencemax.plan.options import add_arguments
from pytest_inferencemax.plan.values import positive_float, positive_int, run_name
from pytest_inferencemax.publish.finish import SubmitOptions
from pytest_inferencemax.results.merge_inputs import MergeError
from pytest_inferencemax.results.record import PointStatus
from pytest_inferencemax.results.store import RunFolder, write_json_atomic

PROGRESS_EVERY_S = 30.0  # a state line at least this often, the running tasks' times in it
WORDS = {"PENDING": "pending", "RUNNING": "running", "COMPLETED": "done", "FAILED": "failed", "TIMEOUT": "time limit",
         "NODE_FAIL": "node failure", "CANCELLED": "cancelled", "OUT_OF_MEMORY": "out of memory",
         "REQUEUED": "requeued", "COMPLETING": "finishing", "PREEMPTED": "preempted"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.slurm", description=__doc__.splitlines()[0])
    p.add_argument("suites", nargs="+", metavar="SUITE_DIR", help="suite directories, e.g. suites/gptoss")
    p.add_argument("--partition", help="Slurm partition of the tasks")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs each task asks for (with --exclusive; 0: none)")
    p.add_argument("--time", help="each task's time limit, e.g. 4:00:00")
    p.add_argument("--account", help="Slurm account to charge")
    p.add_argument("--max-parallel", type=positive_int, help="tasks running at once (--array=0-K%%N)")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                   help="one more #SBATCH line, e.g. --sbatch-arg=--container-image=IMAGE (pyxis); repeatable")
    p.add_argument("--setup", help="a shell line each task runs first, e.g. 'module load rocm'")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter on the nodes (default: this one: a venv on the shared filesystem)")
    p.add_argument("--results-dir", type=Path, default=Path("results"),
                   help="where the run's folder goes, on a filesystem the nodes share (default: %(default)s)")
    p.add_argument("--run-id", type=run_name, help="the run's folder; the same again resumes it (default: now)")
    p.add_argument("--poll-interval", type=positive_float, default=10.0, help="seconds between state reads (default: 10)")
    p.add_argument("--baselines", type=Path, default=Path("baselines"), help="baseline tables for AMD checks")
    p.add_argument("--dry-run", action="store_true", help="plan and print the job script; submit nothing")
    add_arguments(p, ("submit-team", "submit-dry-run", "submit-unqualified", "submit-force", "leaderboard-url"))
    p.add_argument("-q", "--quiet", action="store_true", help="print only state changes, verdicts and problems")
    return p


def plan_shards(suites: Sequence[str], pytest_args: Sequence[str], results_dir: Path, run_id: str,
                python: str) -> tuple[Path, list[Shard]]:
    """pytest's rootdir and the shards of the sweep, from pytest's own collection (``--shards-out``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shards.json"
        # pytest takes the rootdir from the paths among all its arguments, option values too (the JSON's): named
        # here, the working directory, and again in every task, so that the node ids mean the same files
        rootdir = [] if any(a == "--rootdir" or a.startswith("--rootdir=") for a in pytest_args) else [
            f"--rootdir={os.getcwd()}"]
        argv = [python, "-m", "pytest", *suites, *pytest_args, *rootdir, "--collect-only", "-q", "-p",
                "no:cacheprovider", "--results-dir", str(results_dir), "--run-id", run_id, "--shards-out", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode == 5:  # pytest: no tests collected
            raise ConfigError("no point selected: nothing to submit (check the suites, -k and --stage)")
        if done.returncode != 0 or not out.is_file():
            why = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()][-3:]
            raise ConfigError(f"planning the shards failed (pytest --collect-only exited {done.returncode}): "
                              + " | ".join(why))
        data = json.loads(out.read_text())
    shards = [Shard(i, s["name"], tuple(s["points"]), tuple(s["nodeids"]), s.get("variant"))
              for i, s in enumerate(data["shards"])]
    if not shards:
        raise ConfigError("no point selected: nothing to submit (check the suites, -k and --stage)")
    return Path(data["rootdir"]), shards


def clean(shard: Shard, shards_dir: Path) -> bool:
    """The shard's run folder holds every point's record, each ok, and no failure: nothing to run again."""
    folder = RunFolder(shards_dir / shard.name)
    try:
        records = {r.point_id: r for r in folder.points()}
        return not folder.failures() and all(p in records and records[p].status == PointStatus.OK
                                             for p in shard.points)
    except (OSError, ResultsError):  # a damaged record (RecordError): run the shard again
        return False


def same_plan(shards: Sequence[Shard], shards_dir: Path) -> str | None:
    """Record the plan in ``shards/plan.json``; why it cannot go on when the run id was planned with other
    shards (a resumed run must be the same sweep: its merge would mix two)."""
    plan = {s.name: list(s.nodeids) for s in shards}
    path = shards_dir / "plan.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != plan:
            return (f"{shards_dir.parent} was planned with other shards ({', '.join(before)}); this command plans "
                    f"{', '.join(plan)}: give another --run-id (the same one resumes the same sweep)")
        return None
    shards_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, plan)
    return None


def states(job_id: str, shards: Sequence[Shard], shards_dir: Path) -> dict[int, TaskState]:
    """Each shard's task state: the controller's, else accounting's, else the exit status it left."""
    found = scontrol_states(job_id)
    if any(s.index not in found for s in shards):
        found = {**sacct_states(job_id), **found}
    for s in shards:
        if s.index not in found and (left := exit_file_state(shards_dir / s.name)) is not None:
            found[s.index] = left
    return found


def state_line(job_id: str, shards: Sequence[Shard], now: dict[int, TaskState], started: float) -> str:
    elapsed = int(time.monotonic() - started)
    parts = []
    for s in shards:
        st = now.get(s.index)
        word = WORDS.get(st.state, st.state.lower()) if st else "unknown"
        if st and st.state == "PENDING" and st.reason and st.reason != "None":
            word += f" ({st.reason})"
        elif st and st.state == "RUNNING":
            word += f" {st.run_time} on {st.node}"
        parts.append(f"{s.name}: {word}")
    return f"slurm {job_id} {elapsed // 60}m{elapsed % 60:02d}s | " + " | ".join(parts)


def wait(job_id: str, shards: Sequence[Shard], shards_dir: Path, poll: float,
         echo: Callable[[str], None]) -> dict[int, TaskState]:
    """Poll until every task is final; a line whenever a shard's state changes."""
    started, last, said = time.monotonic(), "", 0.0
    while True:
        now = states(job_id, shards, shards_dir)
        words = " ".join(f"{i}:{st.state}:{st.reason}" for i, st in sorted(now.items()))
        if words != last or time.monotonic() - said >= PROGRESS_EVERY_S:  # a change, or still alive
            echo(state_line(job_id, shards, now, started))
            last, said = words, time.monotonic()
        if all(now.get(s.index) and now[s.index].final for s in shards):
            return now
        time.sleep(poll)


def failure_lines(shards: Sequence[Shard], final: dict[int, TaskState], shards_dir: Path) -> list[str]:
    """One line per shard that did not end clean: its state, exit code, reason and log."""
    out = []
    for s in shards:
        st = final.get(s.index)
        if clean(s, shards_dir) and (st is None or st.state == "COMPLETED"):  # None: clean from an earlier array
            continue
        what = f"{WORDS.get(st.state, st.state)} (exit {st.exit_code or '?'}, {st.reason or 'no reason given'})" if st \
            else "no state known"
        out.append(f"shard {s.name} (task {s.index}): {what}; log: {shards_dir / 'logs' / f'{s.index}.log'}")
    return out


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, pytest_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser().parse_args(ours)
    echo = (lambda _l: None) if args.quiet else (lambda line: print(line, flush=True))
    run_id = args.run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(os.path.abspath(args.results_dir)) / run_id
    shards_dir = run_dir / "shards"
    try:
        rootdir, shards = plan_shards(args.suites, pytest_args, shards_dir, run_id, args.python)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run and (why := same_plan(shards, shards_dir)):
        print(f"error: {why}", file=sys.stderr)
        return 2
    todo = [s for s in shards if args.dry_run or not clean(s, shards_dir)]
    for s in shards:
        done = "" if s in todo else "  (clean result from an earlier submission: not run again)"
        echo(f"shard {s.index} {s.name}: {len(s.points)} points{done}")
    spec = JobSpec(workdir=rootdir, shards_dir=shards_dir, python=args.python, pytest_args=tuple(pytest_args),
                   job_name=f"inferencemax-{run_id}", partition=args.partition, time=args.time, account=args.account,
                   gpus_per_node=args.gpus_per_node, max_parallel=args.max_parallel,
                   sbatch_args=tuple(args.sbatch_arg), setup=args.setup)
    if args.dry_run:
        print(job_script(todo, spec), end="")
        return 0
    final: dict[int, TaskState] = {}
    if todo:
        final = _submit_and_wait(todo, spec, args.poll_interval, echo)
        if final is None:
            return 130
    return _merge(shards, final, shards_dir, run_dir, args, echo)


def _submit_and_wait(todo: list[Shard], spec: JobSpec, poll: float,
                     echo: Callable[[str], None]) -> dict[int, TaskState] | None:
    """Submit the array and wait for it; None when Ctrl-C or SIGTERM cancelled it."""
    (spec.shards_dir / "logs").mkdir(parents=True, exist_ok=True)
    script = spec.shards_dir / "array.sbatch"
    script.write_text(job_script(todo, spec))
    try:
        job_id = sbatch(script)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    echo(f"slurm: submitted array {job_id} ({len(todo)} tasks): {script}")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return wait(job_id, todo, spec.shards_dir, poll, echo)
    except (KeyboardInterrupt, _Terminated):
        scancel(job_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                st.final for st in states(job_id, todo, spec.shards_dir).values()):
            time.sleep(0.5)
        finished = [s.name for s in todo if clean(s, spec.shards_dir)]
        print(f"slurm: interrupted: array {job_id} cancelled (scancel); finished clean: "
              f"{', '.join(finished) or 'none'}; run again with --run-id {spec.shards_dir.parent.name} to resume",
              file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _merge(shards: list[Shard], final: dict[int, TaskState], shards_dir: Path, run_dir: Path,
           args: argparse.Namespace, echo: Callable[[str], None]) -> int:
    """Merge what every shard left; name each shard that did not end clean."""
    problems = failure_lines(shards, final, shards_dir)
    for line in problems:
        print(f"slurm: {line}", file=sys.stderr)
    present = [shards_dir / s.name for s in shards if (shards_dir / s.name).is_dir()]
    submit = (SubmitOptions(team=args.submit_team, dry_run=args.submit_dry_run, force=args.submit_force,
                            unqualified=args.submit_unqualified, url_override=args.leaderboard_url)
              if args.submit_team or args.submit_dry_run else None)
    try:
        finished, failures = merge(present, run_dir / "merged", baselines_dir=args.baselines, submit=submit,
                                   echo=echo)
    except (MergeError, ConfigError) as exc:
        print(f"error: merging the shards: {exc}", file=sys.stderr)
        return 1
    code = conclude(finished, failures, run_dir / "merged", args.quiet)
    return 1 if problems else code

if __name__ == "__main__":
    sys.exit(main())
