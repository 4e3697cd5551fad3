"""Parallel points with pytest-xdist: one server per worker, disjoint GPUs, distinct ports, one summary (on the
calibration server launched as a suite's recipe: xdist's plumbing is the subject, not the engine)."""
from __future__ import annotations

import json

from e2e_support import REPO, SUITE_TEST, calibration_suite_toml


def test_too_few_listed_gpus_is_refused_before_anything_starts(pytester):
    run = pytester.runpytest_subprocess("--gpus-per-server", "4", "--gpus", "0-3", "-n", "2", "--co")
    assert run.ret != 0
    assert "worker 1 needs GPUs 4..7 of --gpus 0,1,2,3" in run.stderr.str() + run.stdout.str()


def test_dsr1_plans_two_server_groups(pytester):
    """`pytest suites/dsr1 -n 2 --gpus-per-server 4`: the 8192/1024 CONC 64 point needs its own server."""
    run = pytester.runpytest_subprocess(str(REPO / "suites" / "dsr1"), "--collect-only", "-n", "2",
                                        "--gpus-per-server", "4", "--gpu-env", "HIP_VISIBLE_DEVICES")
    out = run.stdout.str()
    assert "2 server configuration(s)" in out
    assert "GPUs per server (HIP_VISIBLE_DEVICES): gw0 0,1,2,3; gw1 4,5,6,7" in out
    recipes = {line.rsplit("server recipe ", 1)[1] for line in out.splitlines() if "server recipe " in line}
    assert len(recipes) == 2
    assert "TP 4" in out  # --gpus-per-server sets the servers' TP


# a point-dependent server setting (the ITL), so the two points need two servers and go to two workers
XDIST_SUITE = calibration_suite_toml(
    '["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "5", "--itl-ms", "${itl_ms}"]'
    % (REPO / "benchmarks" / "calibration_server.py"), """
vars = { itl_ms = "2" }

[[server.when]]
match = { conc = 2 }
vars = { itl_ms = "3" }

[stages.s]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
workloads = [{ isl = 16, osl = 8, conc = [1, 2], prompts_per_conc = 2 }]
""")


def test_two_workers_two_servers_one_summary(pytester, smollm2_model, tmp_path):
    suite_dir = pytester.mkdir("cal")
    (suite_dir / "suite.toml").write_text(XDIST_SUITE)
    (suite_dir / "test_cal.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "-n", "2", "--gpus-per-server", "2", "--results-dir", str(tmp_path), "--run-id", "xd",
        "--tokenizer", str(smollm2_model), "--telemetry-interval", "0",
        "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    run.assert_outcomes(passed=2)
    run_dir = tmp_path / "xd"
    records = [json.loads((run_dir / f"cal-16-8-c{c}.json").read_text()) for c in (1, 2)]
    servers = [r["inferencemax"]["server"] for r in records]
    devices = [s["env"]["CUDA_VISIBLE_DEVICES"] for s in servers]
    assert sorted(devices) == ["0,1", "2,3"]  # disjoint, fake-listed: the calibration server uses no GPU
    assert servers[0]["base_url"] != servers[1]["base_url"]  # distinct ports
    assert [s["argv"][s["argv"].index("--itl-ms") + 1] for s in servers] == ["2", "3"]  # each point's own recipe
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(p["point"] for p in summary["points"]) == ["cal-16-8-c1", "cal-16-8-c2"]
    manifests = sorted(p.name for p in run_dir.glob("manifest-gw*.json"))
    assert manifests == ["manifest-gw0.json", "manifest-gw1.json"]
    worker_devices = sorted(json.loads((run_dir / m).read_text())["servers"][0]["devices"] == ["0", "1"]
                            for m in manifests)
    assert worker_devices == [False, True]


# three points, two server configurations: CONC 1 alone (ITL 2 ms), CONC 2 and 4 together (ITL 3 ms)
GROUPED_SUITE = XDIST_SUITE.replace("match = { conc = 2 }", "match = { conc_above = 1 }").replace(
    "conc = [1, 2]", "conc = [1, 2, 4]")


def test_points_of_one_server_configuration_stay_on_one_worker(pytester, smollm2_model, tmp_path):
    """`-n 2` alone means `--dist loadgroup`: the points that share a server configuration go to one worker, whose
    one server measures them all; two configurations, two servers (a third would mean a configuration was split)."""
    suite_dir = pytester.mkdir("cal")
    (suite_dir / "suite.toml").write_text(GROUPED_SUITE)
    (suite_dir / "test_cal.py").write_text(SUITE_TEST)
    run = pytester.runpytest_subprocess(
        "cal", "-n", "2", "--results-dir", str(tmp_path), "--run-id", "grp", "--tokenizer", str(smollm2_model),
        "--telemetry-interval", "0", "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
    run.assert_outcomes(passed=3)
    run_dir = tmp_path / "grp"
    urls = {c: json.loads((run_dir / f"cal-16-8-c{c}.json").read_text())["inferencemax"]["server"]["base_url"]
            for c in (1, 2, 4)}
    assert urls[2] == urls[4] != urls[1], urls
    launched = [s for m in sorted(run_dir.glob("manifest-gw*.json")) for s in json.loads(m.read_text())["servers"]]
    assert len(launched) == 2, launched
