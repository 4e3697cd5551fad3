"""cli.slurm without a Slurm: the array's job script, reading Slurm's answers, the plan kept per run. --dry-run
and the planning through pytest: tests/e2e/test_commands_e2e.py; against a real Slurm: tests/e2e/test_slurm_e2e.py."""
from __future__ import annotations


import pytest

from pytest_inferencemax.cli import slurm
from pytest_inferencemax.cli.slurm_jobs import JobSpec, Shard, _task_ids, job_script



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


def test_a_shard_whose_record_is_damaged_is_not_clean_and_runs_again(tmp_path):
    shard = Shard(0, "cal-fast", ("cal-16-16-c1-fast",), ("t.py::a",))
    (tmp_path / "cal-fast").mkdir()
    (tmp_path / "cal-fast" / "cal-16-16-c1-fast.json").write_text("{not json")
    assert slurm.clean(shard, tmp_path) is False
    assert slurm.clean(Shard(1, "absent", ("p",), ("t.py::b",)), tmp_path) is False  # never ran
