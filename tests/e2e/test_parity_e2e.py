"""Parity between the precise and the reference client, end to end (the judging rules: tests/unit).

The command and ``--parity`` in a suite run, against the calibration server, whose schedule the test changes
halfway through the comparison (``POST /calibration/schedule``, once the server has received a given number of
requests): the verdict is then known before the run. Ten times slower events from the middle of a run on: each
client's run-to-run spread holds the change, whichever runs it falls between, and the two clients agree within
it (PASSED). One more output token in every usage from then on: a count that differs between runs (FAILED).
And what only a real vLLM shows: its own /metrics around each run."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import requests

from calibration import calibration_server, truth
from e2e_support import SUITE_TEST, mini_suite_toml

SLOWER = {"itl_ms": 20.0}  # from a server started with --itl-ms 2: every event after the first ten times later
ONE_MORE_TOKEN = {"usage_offset": 1}  # every usage reports one completion token more than was sent


def received(base: str) -> int:
    """The completion requests the calibration server at ``base`` has received (each has its truth from then on)."""
    return len(truth(base))


class ScheduleSwitch:
    """While open: posts ``schedule`` to the calibration server at ``base`` as its defaults for the requests from
    then on, as soon as it has received ``after`` completion requests; ``at``: the count it had received when the
    new schedule was in place (None: never switched)."""

    def __init__(self, base: str, after: int, schedule: dict) -> None:
        self.base, self.after, self.schedule = base, after, schedule
        self.at: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "ScheduleSwitch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):  # a poll interval; the window it must hit is a whole run wide
            if received(self.base) >= self.after:
                requests.post(self.base + "/calibration/schedule", json=self.schedule, timeout=5).raise_for_status()
                self.at = received(self.base)
                return


def switched_inside_the_comparison(switch: ScheduleSwitch, base: str, per_run: int) -> None:
    """The test's premise: the schedule changed after the first run of the comparison (the precise client's round
    1) and before its last (the reference's round 2), its 4 runs of ``per_run`` requests the server's last."""
    before = received(base) - 4 * per_run  # what came before the comparison (checks, the point)
    assert switch.at is not None and before + per_run < switch.at <= before + 3 * per_run, (switch.at, before)


def test_parity_command_passes_when_the_server_changed_speed_between_rounds(smollm2_model, tmp_path):
    per_run = 2 + 4  # --num-warmups 2, --num-prompts 4
    with calibration_server("--ttft-ms", "20", "--itl-ms", "2") as base:
        with ScheduleSwitch(base, per_run + per_run // 2, SLOWER) as switch:  # halfway through the reference's round 1
            proc = subprocess.run(
                [sys.executable, "-m", "pytest_inferencemax.cli.parity", "--base-url", base, "--model", "calibration",
                 "--tokenizer", str(smollm2_model), "--isl", "16", "--osl", "8", "--conc", "2", "--num-prompts", "4",
                 "--num-warmups", "2", "--rounds", "2", "--out", str(tmp_path), "-q"],
                capture_output=True, text=True, timeout=300)
        switched_inside_the_comparison(switch, base, per_run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("parity isl16-osl8-c2: PASSED: identical in every run: completed 4, "
                                  "total_input_tokens 64, total_output_tokens 32; 5 throughput/TPOT figures within the "
                                  "clients' run-to-run spread"), proc.stdout
    saved = json.loads((tmp_path / "parity.json").read_text())
    assert saved["passed"] is True
    assert [(r["client"], r["round"]) for r in saved["runs"]] == [
        ("precise", 1), ("reference", 1), ("precise", 2), ("reference", 2)]  # alternating
    rows = {r["key"]: r for r in saved["rows"]}
    for key in ("completed", "total_input_tokens", "total_output_tokens"):
        assert rows[key]["ok"] and rows[key]["judged"] == "identical", rows[key]
    assert rows["total_output_tokens"]["means"] == {"precise": 32.0, "reference": 32.0}
    # the change is what the spread holds: the slow rounds' TPOT at least the 20 ms the server waits, the fast
    # ones' well below (2 ms scheduled; a host busy with other work stretches it, by 6 ms once under the full suite)
    tpots = [r["figures"]["median_tpot_ms"] for r in saved["runs"]]
    assert max(tpots) > 18 and min(tpots) < max(tpots) / 2, tpots
    assert (tmp_path / "parity.md").read_text().startswith("### Parity: isl16-osl8-c2")


@pytest.mark.parametrize("change, passed", [(SLOWER, True), (ONE_MORE_TOKEN, False)], ids=["slower", "one-more-token"])
def test_parity_option_in_a_suite_run_writes_the_comparison_beside_the_point(pytester, smollm2_model, tmp_path,
                                                                             change, passed):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [2], prompts_per_conc = 2 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    per_run = 2 + 4  # the stage's warmups_per_conc = 1 at CONC 2, then 2 x CONC prompts
    before = 1 + per_run  # the readiness check, the point's own run
    with calibration_server("--ttft-ms", "20", "--itl-ms", "2") as base:
        with ScheduleSwitch(base, before + per_run + per_run // 2, change) as switch:
            run = pytester.runpytest_subprocess(
                "mini", "--server-url", base, "--served-model-name", "calibration", "--tokenizer", str(smollm2_model),
                "--results-dir", str(tmp_path), "--run-id", "par", "--parity", "--parity-rounds", "2",
                "--telemetry-interval", "0", "--extra-body", '{"calibration": {"prompt_tokens": 16}}', timeout=300)
        switched_inside_the_comparison(switch, base, per_run)
    saved = json.loads((tmp_path / "par" / "mini-16-4-c2.parity.json").read_text())
    rec = json.loads((tmp_path / "par" / "mini-16-4-c2.json").read_text())  # the point's own record is written first
    assert rec["total_output_tokens"] == 16 and rec["median_tpot_ms"] < 5  # measured before the change
    assert len(saved["runs"]) == 4 and saved["passed"] is passed
    out = run.stdout.str()
    if passed:
        run.assert_outcomes(passed=1)
        assert "inferencemax: mini-16-4-c2: parity PASSED" in out
    else:  # the failure names the row that differs, and how (on a server that keeps its speed, throughputs may
        run.assert_outcomes(failed=1)  # differ beyond its small spread too: the reference connects per request)
        assert "total_output_tokens" in [r["key"] for r in saved["rows"] if not r["ok"]]
        assert ("parity: the two clients disagree: total_output_tokens: runs differ by up to 4: precise 16, 20; "
                "reference ") in out


def test_parity_reads_vllms_own_view_of_each_run(vllm_server, smollm2_model):
    """What the calibration server does not count: the engine's own figures over each parity run (its /metrics
    before and after), as the parity table prints them under the clients'. The verdict is not the subject: on a
    CPU server two rounds decide nothing (the tests above decide it on a known schedule)."""
    from pytest_inferencemax.measure.parity import run_parity
    from pytest_inferencemax.measure.workload import load_tokenizer, random_workload

    tokenizer = load_tokenizer(str(smollm2_model))
    workload = random_workload(tokenizer, input_len=16, output_len=4, num_prompts=2, seed=0)
    runs = run_parity("p", vllm_server.base_url, "smollm2", workload.requests, concurrency=2, num_warmups=2,
                      rounds=2, count_tokens=lambda t: len(tokenizer.encode(t, add_special_tokens=False)))
    assert [(r.client, r.round) for r in runs] == [("precise", 1), ("reference", 1), ("precise", 2), ("reference", 2)]
    for run in runs:  # 2 warmups and 2 timed requests a run, each 16 prompt and 4 generated tokens
        view = run.server
        assert (view["requests"], view["prompt_tokens"], view["generation_tokens"]) == (4, 64, 16), view
        assert 0 < view["mean_ttft_ms"] < view["mean_e2e_ms"] and view["mean_itl_ms"] > 0, view
        assert run.figures["total_output_tokens"] == 8 and run.failed == 0
