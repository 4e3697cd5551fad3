"""Shared pieces of the end-to-end tests: the real SmolLM2 model and a mini suite for pytester."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

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


def stage_toml(workloads: str, stage: str = "s", warmups: int = 1) -> str:
    """A stage table (TOML) of the tests' usual settings (every prompt as long as asked, ``warmups`` per CONC, one
    device) with ``workloads`` (the inside of its list, e.g. ``{ isl = 16, osl = 4, conc = [1, 2], ... }``)."""
    return (f"\n[stages.{stage}]\nrange_ratio = 1.0\nwarmups_per_conc = {warmups}\ntput_per_gpu_divisor = 1\n"
            f"workloads = [{workloads}]\n")


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


# -- lifecycle and signal tests (issue 22): hermetic signals, stamped output, the calibration server's counters --

CALIBRATION_SERVER = REPO / "benchmarks" / "calibration_server.py"
INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_signals() -> None:
    """In a child before exec: SIGINT, SIGTERM and SIGHUP at their defaults and unblocked, however this
    process was started. A shell starts background jobs with SIGINT ignored, ``nohup`` with SIGHUP ignored,
    and a blocked signal mask is inherited too: a test that signals its child must not depend on that."""
    for sig in INTERRUPTING_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTING_SIGNALS)


def start_pytest_stamped(cwd: Path, target: str, args: list[str], preexec_fn=default_signals
                         ) -> tuple[subprocess.Popen, list[tuple[float, str]]]:
    """pytest on ``target`` in a subprocess: :func:`start_stamped`."""
    return start_stamped(cwd, [sys.executable, "-m", "pytest", target, "-p", "no:cacheprovider", *args], preexec_fn)


def start_stamped(cwd: Path, argv: list[str], preexec_fn=default_signals, env: dict | None = None
                  ) -> tuple[subprocess.Popen, list[tuple[float, str]]]:
    """``argv`` in a subprocess started with ``preexec_fn`` (default: every interrupting signal at its default), its
    output lines collected as they come, each with the ``time.monotonic()`` it was read at (the plugin and the
    commands flush their progress lines as they write them)."""
    import time

    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=preexec_fn, env=env)
    lines: list[tuple[float, str]] = []
    threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in iter(proc.stdout.readline, "")),
                     daemon=True).start()
    return proc, lines


def text_of(lines: list[tuple[float, str]]) -> str:
    return "".join(line for _, line in list(lines))


def wait_for_line(lines: list[tuple[float, str]], text: str, proc: subprocess.Popen,
                  timeout: float = 60) -> tuple[float, str]:
    """The first output line containing ``text`` and when it was read; fails when the run ends first or after
    ``timeout`` s (a bound on a hang, never the subject of a test)."""
    import time

    deadline = time.monotonic() + timeout
    ended = None
    while True:
        found = next(((t, line) for t, line in list(lines) if text in line), None)
        if found is not None:
            return found
        if proc.poll() is not None:  # a second for the reader to catch up with its last lines
            ended = ended or time.monotonic()
            assert time.monotonic() - ended < 1, f"the run ended before printing {text!r}:\n{text_of(lines)}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout:g} s:\n{text_of(lines)}"
        time.sleep(0.05)


def launched_server(lines: list[tuple[float, str]], proc: subprocess.Popen, timeout: float = 60) -> tuple[str, Path]:
    """The base URL and log of the server the run launched, from its ``starting ... server on URL (log: PATH)``."""
    _, line = wait_for_line(lines, "server on http://", proc, timeout)
    m = re.search(r"server on (http://\S+) \(log: (.+)\)", line)
    assert m, line
    return m.group(1), Path(m.group(2))


def calibration_stats(base_url: str) -> dict:
    """The calibration server's counters (``GET /calibration/stats``): received, finished, dropped, in_flight."""
    import json
    import urllib.request

    with urllib.request.urlopen(base_url + "/calibration/stats", timeout=5) as answer:
        return json.loads(answer.read())


def calibration_argv(*args: str) -> str:
    """A recipe's argv (a TOML array) launching the calibration server on the recipe's port with ``args``."""
    return "[" + ", ".join(f'"{a}"' for a in ("${python}", str(CALIBRATION_SERVER), "--port", "${port}",
                                              "--model", "calibration", *args)) + "]"


# -- the accuracy gate, conclusion, merge and parity tests (issue 22): what several test files share (no test
#    file imports another) --

GATE_TEST = '''
def test_accuracy(inferencemax, inferencemax_gate):
    gate = inferencemax.gate(inferencemax_gate)
    assert gate is None or gate.passed, gate.message()
''' + SUITE_TEST

PROMPT_TOKENS_16 = '{"calibration": {"prompt_tokens": 16}}'  # --extra-body: the calibration server counts an ISL 16


def embedded_gate() -> dict:
    """The embedded suite's accuracy gate (``[stages.cpu.accuracy]`` of suites/smollm2-cpu), as a table."""
    import tomllib

    return tomllib.loads((REPO / "suites" / "smollm2-cpu" / "suite.toml").read_text())["stages"]["cpu"]["accuracy"]


def accuracy_toml(table: dict, stage: str = "cpu") -> str:
    """``table`` written as a suite's ``[stages.<stage>.accuracy]``."""
    import json

    lines = [f"[stages.{stage}.accuracy]"]
    for key, value in table.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


CONCLUSION_POINTS = ("cal-16-4-c1", "cal-16-4-c2")
CONCLUSION_VERDICT = """
[stages.{stage}.verdict]
rule = "beat_baseline_share"
min_share = 0.5
metric = "tput_per_gpu"
"""


def conclusion_baseline(model: str) -> str:
    """A baseline (``baselines/<name>.toml``) for ``model``'s ISL 16 / OSL 4 points at CONC 1 and 2, so slow at CONC 1
    and so fast at CONC 2 that any server beats it at the first and not at the second: one of two, exactly the
    share a ``beat_baseline_share`` verdict with ``min_share = 0.5`` needs."""
    return f"""[source]
title = "test reference"
origin = "written by the test"
recorded = "2026-11-22"
group = "b200_baseline_nv1126"
prefix = "b200"
tag = "1126"

[models]
{model} = [
  {{ isl = 16, osl = 4, conc = 1, median_e2e_ms = 100000, median_intvty = 0.1, tput_per_gpu = 0.01 }},
  {{ isl = 16, osl = 4, conc = 2, median_e2e_ms = 1, median_intvty = 100000, tput_per_gpu = 1000000 }},
]
"""


def conclusion_suite(root: Path, leaderboard_url: str) -> Path:
    """In ``root``: ``cal/``, a suite whose recipe launches the calibration server (TTFT 5 ms, ITL 2 ms), one stage
    without an accuracy gate and two points (ISL 16 / OSL 4 at CONC 1 and 2) judged against ``baselines/cal-ref.toml``
    (:func:`conclusion_baseline`), their results for ``leaderboard_url`` in the stage-1 layout. Run it with
    ``--tokenizer`` and ``--extra-body`` :data:`PROMPT_TOKENS_16`. Returns the suite's folder."""
    stage = f'''
[stages.s]
range_ratio = 1.0
warmups_per_conc = 1
tput_per_gpu_divisor = 1
baseline = "cal-ref"
leaderboard_url = "{leaderboard_url}"
payload_layout = "s1"
workloads = [{{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }}]
''' + CONCLUSION_VERDICT.format(stage="s")
    suite = root / "cal"
    suite.mkdir()
    (suite / "suite.toml").write_text(calibration_suite_toml(calibration_argv("--ttft-ms", "5", "--itl-ms", "2"), stage))
    (suite / "test_cal.py").write_text(GATE_TEST)
    (root / "baselines").mkdir()
    (root / "baselines" / "cal-ref.toml").write_text(conclusion_baseline("cal"))
    return suite


_GATED_RUN: dict = {}  # the session's one run behind the embedded gate (gated_run), once made


def gated_run(pytester, base_url: str, tmp_path_factory):
    """The session's one pytest run behind the embedded suite's accuracy gate, on the shared vLLM server at
    ``base_url`` (``--server-url``), made by the first test that asks for it, in ``pytester``'s folder (its results
    in one of ``tmp_path_factory``'s); the others read the same run. The gate is what takes the time (lm-eval over
    4 documents of 2047 SmolLM2 tokens, the bounty's stage-1 task), and the tests where it is not the subject need
    a run behind a passed gate only.

    The suite, ``mini/``: the embedded suite's recipe and gate, two points (ISL 16 / OSL 4 at CONC 1 and 2, one
    prompt each) judged against ``baselines/mini-ref.toml`` (:func:`conclusion_baseline`) and submitted
    (``--submit-team 'Team "Quote"'``) to a loopback stage-1 leaderboard. Returns a namespace: ``run`` (pytester's
    RunResult), ``run_dir``, ``gate`` (the embedded gate's table), ``leaderboard_url`` and ``received`` (the
    payloads the leaderboard got)."""
    import types

    from fake_leaderboard import FakeLeaderboard

    if "run" not in _GATED_RUN:
        gate, results_root = embedded_gate(), tmp_path_factory.mktemp("gated")
        with FakeLeaderboard(layout="s1") as board:
            suite = pytester.mkdir("mini")
            toml = mini_suite_toml("{ isl = 16, osl = 4, conc = [1, 2], prompts_per_conc = 1 }")
            toml = toml.replace("tput_per_gpu_divisor = 1\n", f'tput_per_gpu_divisor = 1\nbaseline = "mini-ref"\n'
                                f'leaderboard_url = "{board.base_url}"\npayload_layout = "s1"\n')
            (suite / "suite.toml").write_text(toml + accuracy_toml(gate) + CONCLUSION_VERDICT.format(stage="cpu"))
            (suite / "test_mini.py").write_text(GATE_TEST)
            (pytester.path / "baselines").mkdir()
            (pytester.path / "baselines" / "mini-ref.toml").write_text(conclusion_baseline("mini"))
            run = pytester.runpytest_subprocess(
                "mini", "--server-url", base_url, "--served-model-name", "smollm2", "--tokenizer",
                str(MODELS_DIR / "SmolLM2-135M-Instruct"), "--results-dir", str(results_root), "--run-id", "gated",
                "--models-dir", str(MODELS_DIR), "--submit-team", 'Team "Quote"', timeout=600)
            received = list(board.received)
        _GATED_RUN.update(run=run, run_dir=results_root / "gated", gate=gate, leaderboard_url=board.base_url,
                          received=received)
    return types.SimpleNamespace(**_GATED_RUN)


# -- a server killed mid-point (test_server_lifecycle.py on the calibration server, test_vllm_suite.py on vLLM) --

FAILS_WITHIN_S = 5.0  # README: "within about a second of the server process exiting", on a loaded 2-core machine


def vllm_finished(base_url: str) -> int:
    """Requests the vLLM server finished (its ``vllm:request_success_total``, stopped or at their length)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    counts = [float(m.group(1)) for m in re.finditer(
        r'^vllm:request_success_total\{[^}]*finished_reason="(?:stop|length)"[^}]*\} (\S+)$', text, re.M)]
    assert counts, "vllm:request_success_total is not in /metrics"
    return int(sum(counts))


def calibration_finished(base_url: str) -> int:
    """Requests the calibration server finished (its ``GET /calibration/stats``)."""
    return calibration_stats(base_url)["finished"]


@dataclass
class Killed:
    """A run whose CONC 2 point had its server's process group SIGKILLed once two of its timed requests finished."""

    first: str  # the point before it
    point: str  # the killed point
    text: str  # the run's output
    run_dir: Path
    pid: int  # the killed server's
    failed_after: float  # seconds from the SIGKILL to the stopped point's record on disk
    first_bytes: bytes  # the CONC 1 point's record as it was before the kill


def kill_mid_point(pytester, suite: str, args: list[str], finished: Callable[[str], int], expect: str,
                   start_timeout: float, first: str, killed_point: str) -> Killed:
    """Run ``suite`` (point ``first``, then ``killed_point`` at CONC 2, of 2 warmups and 12 requests, and any after
    it) and SIGKILL the server's process group once ``finished`` (the server's own count of finished requests)
    says two of the killed point's timed requests are done. Returns when the run ended with ``expect``."""
    run_dir = pytester.path / "results" / "kill"
    proc, lines = start_pytest_stamped(pytester.path, suite, ["--results-dir", str(run_dir.parent), "--run-id",
                                                              "kill", *args])
    killed = run_dir / f"{killed_point}.json"
    try:
        base, _ = launched_server(lines, proc, timeout=start_timeout)
        _, c2 = wait_for_line(lines, "requests at concurrency 2", proc, timeout=start_timeout)
        ahead = 2 + ("initial test request" in c2)  # c2's warmups (and initial request) come before its timed ones
        assert "2 warmups, then 12 requests" in c2, c2
        first_bytes = (run_dir / f"{first}.json").read_bytes()  # written before the killed point began
        pid = json.loads(first_bytes)["inferencemax"]["server"]["pid"]
        done_before = finished(base)  # c1's, the readiness check's (and maybe c2's warmups: then it waits longer)
        deadline = time.monotonic() + 300
        while finished(base) < done_before + ahead + 2:  # then two of its timed requests
            assert proc.poll() is None and time.monotonic() < deadline, text_of(lines)
            time.sleep(0.05)
        assert not killed.exists()
        os.killpg(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while not killed.exists():  # the stopped point's record: written as the point fails
            assert proc.poll() is None and time.monotonic() - killed_at < 60, text_of(lines)
            time.sleep(0.02)
        failed_after = time.monotonic() - killed_at
        assert proc.wait(start_timeout) == pytest.ExitCode.TESTS_FAILED, text_of(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for_line(lines, expect, proc)
    return Killed(first, killed_point, text_of(lines), run_dir, pid, failed_after, first_bytes)


def check_the_killed_point(killed: Killed) -> None:
    """What a point whose server died mid-way leaves: it failed within seconds and said why, with the log's tail;
    the record before it intact; its own record with the cause and what finished; the summary's one failure."""
    text = killed.text
    # failing fast: the abort check runs every second
    assert killed.failed_after < FAILS_WITHIN_S, f"the point failed {killed.failed_after:.1f} s after the SIGKILL"
    print(f"the point failed {killed.failed_after:.2f} s after the server's SIGKILL")
    assert f"{killed.point} stopped: the server process" in text and "killed by signal 9" in text
    assert "--- last lines of" in text
    failed_line = next(line for line in text.splitlines() if line.startswith(f"FAILED {killed.point}"))
    assert "killed by signal 9" in failed_line
    assert (killed.run_dir / f"{killed.first}.json").read_bytes() == killed.first_bytes  # earlier results intact
    record = json.loads((killed.run_dir / f"{killed.point}.json").read_text())  # its cause and what finished
    assert "killed by signal 9" in record["inferencemax"]["aborted"] and 1 <= record["completed"] < 12
    summary = json.loads((killed.run_dir / "summary.json").read_text())
    assert [f["point"] for f in summary["failures"]] == [killed.point]
    assert "restarting the server (the server process" in text


# -- two variants against a baseline: the fast one beats it, the slow one loses (variants, prune, Slurm) --
CAL_ARGV = ('["${python}", "%s", "--port", "${port}", "--model", "calibration", "--ttft-ms", "5", "--itl-ms", "2"]'
            % CALIBRATION_SERVER)
CAL_SUITE = calibration_suite_toml(CAL_ARGV, """
[stages.s]
range_ratio = 1.0
warmups_per_conc = 0  # the slow variant's requests take 0.6 s each: none spent on warmups
tput_per_gpu_divisor = 1
baseline = "calb"
workloads = [{ isl = 16, osl = 16, conc = [1, 2, 4], prompts_per_conc = 2 }]

[stages.s.verdict]
rule = "beat_baseline_share"
min_share = 0.5
""")

CAL_VARIANTS = '''
[[variant]]
name = "fast"

[[variant]]
name = "slow"
args_set = { "--itl-ms" = "40" }
'''

# 200 tok/s/GPU per unit of CONC: the fast server (ITL 2 ms) gives several times that, the slow one (40 ms) a
# quarter of it
CAL_BASELINE = baseline_toml("cal", 16, 16, {c: 200.0 * c for c in (1, 2, 4)}, e2e_ms=1000.0, intvty=10.0)
