"""cli.slurm without a Slurm: the shards pytest plans, the array's job script (--dry-run), and reading Slurm's
answers. The launcher against a real Slurm: tests/e2e/test_slurm_e2e.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferencemax.cli import slurm
from pytest_inferencemax.cli.slurm_jobs import JobSpec, Shard, _task_ids, job_script

REPO = Path(__file__).resolve().parents[2]
DSR1_VARIANTS = '''
[[variant]]
name = "base"

[[variant]]
name = "mns${max_num_seqs}"
grid = { max_num_seqs = [64, 128] }
args_set = { "--max-running-requests" = "${max_num_seqs}" }
'''


def test_dry_run_on_dsr1_with_variants_prints_the_array_without_a_slurm(tmp_path):
    (tmp_path / "v.toml").write_text(DSR1_VARIANTS)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no sbatch, no squeue: none is needed
    run = subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.slurm", "suites/dsr1", "--dry-run",
                          "--partition", "mi355x", "--gpus-per-node", "8", "--time", "4:00:00", "--max-parallel", "2",
                          "--results-dir", str(tmp_path / "res"), "--run-id", "d", "--sbatch-arg=--container-image=img",
                          "--", "--variants", str(tmp_path / "v.toml"), "-k", "1024-1024"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    # dsr1's recipe gives 1024/1024 one server: one shard a variant (its gate and its points)
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("shard ")] == [
        "shard 0 dsr1-base", "shard 1 dsr1-mns64", "shard 2 dsr1-mns128"]
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=mi355x", "#SBATCH --time=4:00:00",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --exclusive", "#SBATCH --container-image=img",
                 f"#SBATCH --output={tmp_path / 'res' / 'd' / 'shards'}/logs/%a.log", "#SBATCH --requeue"):
        assert line in out, line
    assert "'suites/dsr1/test_dsr1.py::test_point[dsr1-1024-1024-c8-mns64]'" in out
    assert "'suites/dsr1/test_dsr1.py::test_point[dsr1-1024-1024-c4-mns128]'" in out
    assert "--run-id dsr1-mns128" in out and "-k 1024-1024" in out and f"--rootdir={REPO}" in out
    assert not (tmp_path / "res").exists()  # a dry run writes nothing


def test_a_task_list_not_from_zero_is_named_task_by_task(tmp_path):
    spec = JobSpec(workdir=tmp_path, shards_dir=tmp_path / "s", python="py")
    script = job_script([Shard(1, "a", ("p",), ("t.py::x",)), Shard(3, "b", ("q",), ("t.py::y",))], spec)
    assert "#SBATCH --array=1,3\n" in script and "  1)  # a: 1 points" in script and "  3)  # b: 1 points" in script
    assert f"echo $status > {tmp_path / 's' / 'b' / '.exit'}" in script


@pytest.mark.parametrize("text, ids", [("3", [3]), ("2-5%2", [2, 3, 4, 5]), ("[1,3-4]", [1, 3, 4]), ("", [])])
def test_array_task_ids_as_slurm_writes_them(text, ids):
    assert _task_ids(text) == ids


def test_a_run_id_planned_with_other_shards_is_refused(tmp_path):
    first = [Shard(0, "cal-fast", ("p",), ("t.py::a",))]
    assert slurm.same_plan(first, tmp_path) is None and slurm.same_plan(first, tmp_path) is None
    why = slurm.same_plan([Shard(0, "cal", ("p",), ("t.py::a",))], tmp_path)
    assert why and "was planned with other shards (cal-fast)" in why and "give another --run-id" in why


def test_pytest_arguments_that_select_nothing_are_a_usage_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.slurm", "suites/dsr1", "--dry-run",
                          "--results-dir", str(tmp_path), "--", "-k", "no-such-point"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "error: no point selected: nothing to submit" in run.stderr
