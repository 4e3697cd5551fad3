"""The commands as a user runs them, each a process: their --help against pytest's (one option table,
plan/options.py), and cli.slurm's planning through pytest's own collection (--dry-run, with no Slurm)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferencemax.cli import bench, merge, parity
from pytest_inferencemax.plan.options import option

REPO = Path(__file__).resolve().parents[2]
WIDE = {**os.environ, "COLUMNS": "400"}  # one line per option where argparse can


def options_in_help(text: str) -> dict[str, tuple[str, str]]:
    """``--name`` -> (metavar, help) from a ``--help`` text: argparse's ``--name METAVAR  help`` and pytest's
    ``--name=METAVAR  help``, continuation lines joined, whitespace folded."""
    found: dict[str, tuple[str, str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        spec = re.match(r"^  (-\w, )?(--[\w-]+)(?:[= ]([^\s,]+))?(?:\s{2,}(.*))?$", line)
        if spec:
            current = [spec.group(4) or ""]
            found[spec.group(2)] = (spec.group(3) or "", current)  # type: ignore[assignment]
        elif current is not None and line.startswith("    ") and line.strip():
            current.append(line.strip())
        else:
            current = None
    return {name: (metavar, " ".join(" ".join(parts).split())) for name, (metavar, parts) in found.items()}


@pytest.fixture(scope="module")
def pytest_help() -> dict[str, tuple[str, str]]:
    run = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], capture_output=True,
                         text=True, env=WIDE, timeout=120)
    assert run.returncode == 0, run.stderr
    return options_in_help(run.stdout)


@pytest.mark.parametrize("command", [bench, parity, merge], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_a_command_and_pytest_show_the_same_shared_options(command, pytest_help):
    run = subprocess.run([sys.executable, "-m", command.__name__, "--help"], capture_output=True, text=True,
                         env=WIDE, timeout=60)
    assert run.returncode == 0, run.stderr
    ours = options_in_help(run.stdout)
    shared = sorted(set(ours) & set(pytest_help) - {"--help", "--quiet"})
    assert len(shared) >= 5, shared  # the parse found them: every command shares its server and submit options
    for name in shared:
        metavar, text = ours[name]
        pytest_metavar, pytest_text = pytest_help[name]
        opt = option(name[2:])
        assert pytest_text == text + (f" [ini: {opt.dest}]" if opt.ini else ""), name
        assert metavar == pytest_metavar, name
        if opt.default is not None and not opt.flag:
            assert f"(default: {opt.default})" in text, name  # the default, stated once, shown by both


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


def test_pytest_arguments_that_select_nothing_are_a_usage_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.slurm", "suites/dsr1", "--dry-run",
                          "--results-dir", str(tmp_path), "--", "-k", "no-such-point"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "error: no point selected: nothing to submit" in run.stderr
