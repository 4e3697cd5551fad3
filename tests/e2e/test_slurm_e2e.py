"""cli.slurm against a real one-node Slurm (tests/slurm_cluster.py): the embedded suite's shape on the calibration
server launched as a recipe, two variants -> two shards -> one job array -> one merged run folder, judged as a
single-process run of the same plan is; a shard whose server cannot start, named and left out of nothing; Ctrl-C
cancelling the array."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_support import CAL_BASELINE, CAL_SUITE, CAL_VARIANTS, start_stamped, text_of, wait_for_line
from slurm_cluster import LocalSlurm, missing

pytestmark = pytest.mark.xdist_group("slurm")  # one local cluster, on one worker


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if absent := missing():
        if os.geteuid() == 0:
            pytest.fail(f"Slurm's {', '.join(absent)} not installed: scripts/test.sh installs slurm-wlm and munge as "
                        "root (apt-get); run it, or apt-get install slurm-wlm munge")
        pytest.skip(f"Slurm's {', '.join(absent)} not installed and not root: apt-get install slurm-wlm munge")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def sweep(root: Path, variants: str = CAL_VARIANTS) -> Path:
    """The calibration suite with two variants and the baseline only the fast one beats, under ``root``."""
    d = root / "cal"
    d.mkdir(parents=True)
    (d / "suite.toml").write_text(CAL_SUITE)
    (d / "variants.toml").write_text(variants)
    (d / "test_cal.py").write_text("from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  "
                                   "# noqa: F401\n")
    (root / "baselines").mkdir()
    (root / "baselines" / "calb.toml").write_text(CAL_BASELINE)
    return root


def pytest_args(smollm2_model: Path) -> list[str]:
    return ["--tokenizer", str(smollm2_model), "--telemetry-interval", "0",
            "--extra-body", '{"calibration": {"prompt_tokens": 16}}']


def launcher(root: Path, run_id: str, smollm2_model: Path, *pytest_extra: str) -> list[str]:
    """cli.slurm on the sweep under ``root``; ``pytest_extra`` goes to pytest (after ``--``)."""
    return [sys.executable, "-m", "pytest_inferencemax.cli.slurm", "cal", "--results-dir", str(root / "res"),
            "--run-id", run_id, "--poll-interval", "0.2", "--baselines", str(root / "baselines"), "--",
            *pytest_args(smollm2_model), *pytest_extra]


def judged(run_dir: Path) -> tuple[list[str], dict]:
    """What a run concluded: its verdict lines and its variants' ranking (names and curves qualified)."""
    verdicts = [line for line in json.loads((run_dir / "summary.json").read_text())["conclusion"]
                if line.startswith(("verdict ", "variants: "))]
    ranking = json.loads((run_dir / "variants.json").read_text())
    return [v.split(" -> ")[0] for v in verdicts], {
        "best": ranking["best"], "overall": [(o["variant"], o["curves_qualified"]) for o in ranking["overall"]]}


def test_two_variants_run_as_one_array_and_merge_as_one_process_judges(slurm, tmp_path, smollm2_model):
    root = sweep(tmp_path)
    run = subprocess.run(launcher(root, "sl", smollm2_model), cwd=root, env=slurm.env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "shard 0 cal-fast: 3 points" in out and "shard 1 cal-slow: 3 points" in out
    assert "slurm: submitted array " in out and " (2 tasks)" in out
    states = [line for line in out.splitlines() if line.startswith("slurm ") and " | " in line]
    assert "cal-fast: done | cal-slow: done" in states[-1], states  # a state line per change, the last all done
    assert any("running" in line for line in states), states
    assert slurm.jobs() == []
    shards = tmp_path / "res" / "sl" / "shards"
    assert {p.name for p in shards.iterdir()} >= {"cal-fast", "cal-slow", "logs", "array.sbatch", "plan.json"}
    assert (shards / "cal-fast" / ".exit").read_text().strip() == "0"

    one = subprocess.run([sys.executable, "-m", "pytest", "cal", *pytest_args(smollm2_model), "--results-dir",
                          str(tmp_path / "one"), "--run-id", "one", "-p", "no:cacheprovider"], cwd=root,
                         capture_output=True, text=True, timeout=180)
    assert one.returncode == 0, one.stdout[-2000:]
    merged, single = judged(tmp_path / "res" / "sl" / "merged"), judged(tmp_path / "one" / "one")
    assert merged == single
    assert merged[1] == {"best": "fast", "overall": [("fast", 0), ("slow", 0)]}  # the stage has no gate: none qualifies
    fast, slow = (next(v for v in merged[0] if f"variant {name}:" in v) for name in ("fast", "slow"))
    assert "beat the baseline" not in fast and "0 of 3 points (0%) beat the baseline tput/GPU" in slow

    # the same command again: every shard has a clean result, nothing is submitted, the merge is the same
    again = subprocess.run(launcher(root, "sl", smollm2_model), cwd=root, env=slurm.env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "clean result from an earlier submission: not run again" in again.stdout
    assert "submitted array" not in again.stdout
    assert judged(tmp_path / "res" / "sl" / "merged") == merged


BROKEN = CAL_VARIANTS + '''
[[variant]]
name = "broken"
args_set = { "--no-such-flag" = "1" }
'''


def test_a_shard_whose_server_cannot_start_is_named_and_the_others_are_merged(slurm, tmp_path, smollm2_model):
    root = sweep(tmp_path, BROKEN)
    run = subprocess.run(launcher(root, "br", smollm2_model, "-k", "c1"), cwd=root, env=slurm.env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 1, run.stdout + run.stderr
    log = tmp_path / "res" / "br" / "shards" / "logs" / "2.log"
    assert f"slurm: shard cal-broken (task 2): failed (exit 1:0, NonZeroExitCode); log: {log}" in run.stderr
    assert "no-such-flag" in log.read_text()  # the server's own complaint, in the task's log
    merged = tmp_path / "res" / "br" / "merged"
    assert {p.name for p in merged.glob("cal-*.json")} == {"cal-16-16-c1-fast.json", "cal-16-16-c1-slow.json"}
    failed = json.loads((merged / "summary.json").read_text())["failures"]
    assert [f["point"] for f in failed] == ["cal-16-16-c1-broken"]  # never silently missing


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_cancels_the_array(slurm, tmp_path, smollm2_model, sig):
    slow_start = CAL_VARIANTS.replace('name = "fast"', 'name = "fast"\nargs_set = { "--start-delay" = "60" }')
    root = sweep(tmp_path, slow_start)
    argv = launcher(root, "cc", smollm2_model, "-k", "c1")
    proc, lines = start_stamped(root, argv, env=slurm.env)
    try:
        wait_for_line(lines, "cal-fast: running", proc, timeout=60)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    out = text_of(lines)
    assert "slurm: interrupted: array " in out and "cancelled (scancel)" in out and "--run-id cc to resume" in out
    assert slurm.jobs() == []
