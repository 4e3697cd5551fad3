"""The Space's signature check against a real Gradio app (gradio from PyPI, the ``test`` extra): a Space
whose ``submit_results`` has the stage-2 signature (12 inputs) gets nothing from a 14-item s1 payload,
its function is never called, and a fitting payload reaches the function with every value intact.

The app runs in a subprocess on 127.0.0.1 (a free port); it is ready when its ``/gradio_api/info``
answers (polled, with a deadline). Each call of its function is appended to a JSON-lines file.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pytest_inferencemax.publish.submission import LAYOUT_FIELDS, submit_run
from record_factory import record_dict

pytestmark = pytest.mark.e2e  # gradio is in the test extra (scripts/setup.sh installs it): missing, these fail

S2_NAMES = [f.name for f in LAYOUT_FIELDS["s2"]]
APP = '''
import json, sys
import gradio as gr

calls_file, port = sys.argv[1], int(sys.argv[2])


def submit_results(team, max_concurrency, median_e2el_ms, tput_per_gpu, baseline_e2e_ms, baseline_tput_per_gpu,
                   e2e_ratio, tput_ratio, interactivity, baseline_interactivity, interactivity_ratio, gsm8k_metric):
    with open(calls_file, "a", encoding="utf-8") as f:
        f.write(json.dumps([team, max_concurrency, median_e2el_ms, tput_per_gpu, baseline_e2e_ms,
                            baseline_tput_per_gpu, e2e_ratio, tput_ratio, interactivity, baseline_interactivity,
                            interactivity_ratio, gsm8k_metric]) + "\\n")
    return f"Submitted {team}"


NAMES = submit_results.__code__.co_varnames[:submit_results.__code__.co_argcount]
with gr.Blocks() as demo:
    inputs = [gr.Textbox(label="team")] + [gr.Number(label=name) for name in NAMES[1:]]
    status = gr.Textbox(label="status")
    gr.Button("Submit").click(submit_results, inputs, status, api_name="submit_results")
demo.queue().launch(server_name="127.0.0.1", server_port=port, show_error=True)
'''


@dataclass
class Space:
    base_url: str
    calls: Path

    def called_with(self) -> list[list]:
        return [json.loads(line) for line in self.calls.read_text(encoding="utf-8").splitlines()] \
            if self.calls.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stage2_space(tmp_path_factory) -> Iterator[Space]:
    d = tmp_path_factory.mktemp("gradio_space")
    (d / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    space = Space(base_url=f"http://127.0.0.1:{(port := free_port())}", calls=d / "calls.jsonl")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_NAME": "127.0.0.1",
           "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_OFFLINE": "1"}
    log = (d / "app.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(d / "app.py"), str(space.calls), str(port)], cwd=d, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 45
        while True:  # ready: the app answers its API description
            if proc.poll() is not None:
                pytest.fail(f"the Gradio app exited ({proc.returncode}): {(d / 'app.log').read_text()[-2000:]}")
            try:
                if requests.get(space.base_url + "/gradio_api/info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Gradio app did not answer in 45 s: {(d / 'app.log').read_text()[-2000:]}")
            time.sleep(0.1)  # a poll interval, not a wait for readiness
        yield space
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def s1_record(conc: int) -> dict:
    """A stage-1 result: wikitext's three figures."""
    return record_dict({
        "max_concurrency": conc, "median_e2el_ms": 2100.5, "tput_per_gpu": 420.25, "interactivity": 440.5,
        "accuracy": {"bits_per_byte": 0.8407, "byte_perplexity": 1.7906, "word_perplexity": 11.32},
        "accuracy_validation": {"status": "PASSED", "task": "wikitext", "rule": "max_ratio"},
        "inferencemax": {"point": f"gptoss-1024-1024-c{conc}", "suite": "gptoss", "stage": "s1", "isl": 1024,
                         "osl": 1024, "conc": conc, "failed": 0, "leaderboard_url": "http://unused.invalid"}})


def s2_record(conc: int) -> dict:
    """A stage-2 result: the gsm8k metric."""
    return record_dict({
        "max_concurrency": conc, "median_e2el_ms": 5900.5, "tput_per_gpu": 22000.25, "interactivity": 151.0,
        "accuracy": {"gsm8k_metric": 0.4246, "task": "gsm8k"},
        "accuracy_validation": {"status": "PASSED", "task": "gsm8k", "rule": "min_score"},
        "inferencemax": {"point": f"gptoss-8192-1024-c{conc}", "suite": "gptoss", "stage": "s2", "isl": 8192,
                         "osl": 1024, "conc": conc, "failed": 0, "leaderboard_url": "http://unused.invalid"}})


def write_run(run: Path, records: list[dict]) -> Path:
    run.mkdir(parents=True)
    for rec in records:
        (run / f"{rec['inferencemax']['point']}.json").write_text(json.dumps(rec), encoding="utf-8")
    return run


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.submit", *args], capture_output=True,
                          text=True, timeout=60)


def test_the_app_describes_the_stage2_signature(stage2_space):
    info = requests.get(stage2_space.base_url + "/gradio_api/info?all_endpoints=true", timeout=10).json()
    params = info["named_endpoints"]["/submit_results"]["parameters"]
    assert [p["parameter_name"] for p in params] == S2_NAMES  # the stage-2 layout's fields, by name
    assert [p["python_type"]["type"] for p in params] == ["str"] + ["float"] * 11


def test_s1_payload_is_refused_before_sending_and_the_fitting_layout_arrives_intact(stage2_space, tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4), s2_record(8)])  # stage-2 results, sent as s1 by mistake
    refused = cli(str(run), "--team", "Team A", "--leaderboard-url", stage2_space.base_url, "--layout", "s1", "--unqualified")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert stage2_space.called_with() == []  # the Space's function never ran
    assert "Traceback" not in refused.stdout + refused.stderr
    assert ("inferencemax: not submitting gptoss-8192-1024-c4: the Space's /submit_results takes 12 inputs and the "
            "s1 payload has 14 items: Gradio would keep the first 12 and drop the rest; nothing was sent. Fix: the s2 "
            "layout fits it: re-submit with --layout s2 (cli.submit)") in refused.stdout
    assert refused.stdout.count("<- no such input: Gradio drops it") == 2
    saved = json.loads((run / "submissions" / "gptoss-8192-1024-c4.json").read_text(encoding="utf-8"))
    assert saved["result"]["status"] == "refused" and len(saved["payload"]) == 14
    assert saved["space_signature"]["check"] == "mismatch"
    assert [p["name"] for p in saved["space_signature"]["parameters"]] == S2_NAMES

    sent = cli(str(run), "--team", "Team A", "--leaderboard-url", stage2_space.base_url, "--layout", "s2", "--unqualified")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "2/2 point(s) submitted" in sent.stdout
    expected = [["Team A", conc, 5900.5, 22000.25] for conc in (4, 8)]
    calls = sorted(stage2_space.called_with(), key=lambda c: c[1])
    assert [c[:4] for c in calls] == expected and [c[-1] for c in calls] == [0.4246, 0.4246]
    for conc, call in zip((4, 8), calls):
        payload = json.loads((run / "submissions" / f"gptoss-8192-1024-c{conc}.json").read_text())["payload"]
        assert call == payload  # every value as sent
    saved = json.loads((run / "submissions" / "gptoss-8192-1024-c4.json").read_text(encoding="utf-8"))
    assert saved["result"]["status"] == "submitted" and saved["space_signature"]["check"] == "fits the s2 payload"
    assert saved["result"]["data"] == ["Submitted Team A"]


def test_stage1_results_at_a_stage2_space_are_told_to_check_the_url(stage2_space, tmp_path):
    before = len(stage2_space.called_with())
    run = write_run(tmp_path / "run", [s1_record(4)])
    (out,) = submit_run(run, "T", url_override=stage2_space.base_url, echo=lambda s: None, retries=1, backoff=0.1)
    assert out.status == "refused" and len(stage2_space.called_with()) == before
    assert "this record has no gsm8k_metric, so the URL is likely another stage's Space" in out.message
