"""Parallel points with pytest-xdist: one server per worker, disjoint GPUs, distinct ports, one summary."""
from __future__ import annotations

import json

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml


def test_too_few_listed_gpus_is_refused_before_anything_starts(pytester):
    run = pytester.runpytest_subprocess("--gpus-per-server", "4", "--gpus", "0-3", "-n", "2", "--co")
    assert run.ret != 0
    assert "worker 1 needs GPUs 4..7 of --gpus 0,1,2,3" in run.stderr.str() + run.stdout.str()


def test_dsr1_plans_two_server_groups(pytester):
    """`pytest suites/dsr1 -n 2 --gpus-per-server 4`: the 8192/1024 CONC 64 point needs its own server."""
    from e2e_support import REPO

    run = pytester.runpytest_subprocess(str(REPO / "suites" / "dsr1"), "--collect-only", "-n", "2",
                                        "--gpus-per-server", "4", "--gpu-env", "HIP_VISIBLE_DEVICES")
    out = run.stdout.str()
    assert "2 server configuration(s)" in out
    assert "GPUs per server (HIP_VISIBLE_DEVICES): gw0 0,1,2,3; gw1 4,5,6,7" in out
    recipes = {line.rsplit("server recipe ", 1)[1] for line in out.splitlines() if "server recipe " in line}
    assert len(recipes) == 2
    assert "TP 4" in out  # --gpus-per-server sets the servers' TP


def test_two_workers_two_servers_one_summary(pytester, smollm2_model, tmp_path):
    toml = mini_suite_toml("{ isl = 24, osl = 6, conc = [1, 2], prompts_per_conc = 2 }")
    # a point-dependent server setting, so the two points need two servers and go to two workers
    toml = toml.replace('"--enforce-eager",', '"--enforce-eager", "--seed", "${server_seed}",')
    toml = toml.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nvars = { server_seed = 0 }\n'
                        '[[server.when]]\nmatch = { conc = 2 }\nvars = { server_seed = 1 }')
    suite_dir = pytester.mkdir("mini")
    (suite_dir / "suite.toml").write_text(toml)
    (suite_dir / "test_mini.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "mini", "-n", "2", "--gpus-per-server", "2", "--results-dir", str(tmp_path), "--run-id", "xd",
        "--models-dir", str(MODELS_DIR), timeout=900)
    run.assert_outcomes(passed=2)
    run_dir = tmp_path / "xd"
    records = [json.loads((run_dir / f"mini-24-6-c{c}.json").read_text()) for c in (1, 2)]
    servers = [r["inferencemax"]["server"] for r in records]
    devices = [s["env"]["CUDA_VISIBLE_DEVICES"] for s in servers]
    assert sorted(devices) == ["0,1", "2,3"]  # disjoint, fake-listed: this machine has no GPU
    assert servers[0]["base_url"] != servers[1]["base_url"]  # distinct ports
    assert servers[0]["argv"] != servers[1]["argv"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(p["point"] for p in summary["points"]) == ["mini-24-6-c1", "mini-24-6-c2"]
    manifests = sorted(p.name for p in run_dir.glob("manifest-gw*.json"))
    assert manifests == ["manifest-gw0.json", "manifest-gw1.json"]
    worker_devices = sorted(json.loads((run_dir / m).read_text())["servers"][0]["devices"] == ["0", "1"]
                            for m in manifests)
    assert worker_devices == [False, True]
