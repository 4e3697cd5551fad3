"""The Space's signature check (issue 25, item 5): before a point is sent, the inputs of the Space's
``submit_results`` (``/gradio_api/info``) are compared with its payload; a mismatch or an unreadable
description sends nothing, shows both lists side by side and is kept in ``submissions/<point>.json``."""
from __future__ import annotations

import json
import re

import pytest
from fake_leaderboard import FakeLeaderboard, gradio_info, layout_inputs

from pytest_inferencemax.cli.submit import main
from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.publish.space_signature import (
    EndpointMissing,
    SignatureUnreadable,
    mismatch,
    parse_info,
)
from pytest_inferencemax.publish.submission import LAYOUT_FIELDS, SubmissionError, read_signature, submit_run
from submission_support import FAST, free_port, s1_record, s2_record, write_run

S1 = [f.name for f in LAYOUT_FIELDS["s1"]]
S2 = [f.name for f in LAYOUT_FIELDS["s2"]]

pytestmark = pytest.mark.usefixtures("submission_env")  # tests/unit/conftest.py


def saved(run, point: str) -> dict:
    return json.loads((run / "submissions" / f"{point}.json").read_text(encoding="utf-8"))


# --- the comparison -----------------------------------------------------------------------------

def test_the_layouts_are_the_payloads_fields_in_order():
    assert len(S1) == 14 and len(S2) == 12 and S1[:11] == S2[:11]
    assert S1[0] == "team" and S1[11:] == ["bits_per_byte", "byte_perplexity", "word_perplexity"]
    assert S2[11] == "gsm8k_metric"


def test_count_mismatch_names_the_fix_and_shows_both_lists():
    space = parse_info(gradio_info(layout_inputs("s2")), "http://lb/gradio_api/info")
    values = ["T", 4, 2100.0, 420.0, 2162.0, 413.7, 0.97, 1.01, 440.5, 434.5, 1.01, 0.8407, 1.78, 9.9]
    cause = ("the Space's /submit_results takes 12 inputs and the s1 payload has 14 items: Gradio would keep the "
             "first 12 and drop the rest; nothing was sent. Fix: ")
    # a stage-2 record sent as s1: the layout is wrong
    assert mismatch(space, "s1", values, LAYOUT_FIELDS, have={"gsm8k_metric"}).splitlines()[0] == cause + (
        "the s2 layout fits it: re-submit with --layout s2 (cli.submit), or set the stage's payload_layout = \"s2\".")
    # a stage-1 record (no gsm8k_metric): the Space is another stage's
    problem = mismatch(space, "s1", values, LAYOUT_FIELDS, have={"bits_per_byte", "byte_perplexity"})
    first, *table = problem.splitlines()
    assert first == cause + ("the s2 layout fits it but this record has no gsm8k_metric, so the URL is likely another "
                             "stage's Space: check --leaderboard-url, $LB_URL_OVERRIDE or the stage's leaderboard_url.")
    assert len(table) == 1 + 14  # a heading, then one row per item
    assert table[12].split()[:6] == ["12", "gsm8k_metric", "float", "(Number)", "bits_per_byte", "number"]
    assert "0.8407" in table[12] and "<-" not in table[12]  # fits by kind: the harm is what the count shows
    assert table[13].split()[:5] == ["13", "-", "-", "byte_perplexity", "number"]
    assert table[13].endswith("<- no such input: Gradio drops it") and "<- no such input" in table[14]
    assert mismatch(space, "s2", values[:12], LAYOUT_FIELDS) is None


def test_type_mismatch_points_at_the_input_and_no_layout_fits():
    inputs = layout_inputs("s1")
    inputs[11] = ("bits_per_byte", "Textbox")
    space = parse_info(gradio_info(inputs), "http://lb/gradio_api/info")
    values = ["T"] + [1.0] * 13
    first, *table = mismatch(space, "s1", values, LAYOUT_FIELDS).splitlines()
    assert first.startswith("the Space's /submit_results takes 14 inputs like the s1 payload, but input 12 "
                            "(bits_per_byte) takes str (Textbox), not a number like the payload's bits_per_byte; "
                            "nothing was sent.")
    assert "no layout this runner knows (s1, s2) fits it: check that the URL is this stage's Space" in first
    assert table[12].endswith("<- takes str, not a number")
    assert sum("<-" in row for row in table) == 1
    assert "input 1 (team) takes str (Textbox), not a number" in mismatch(space, "s1", [1.0] * 14, LAYOUT_FIELDS)


def test_gradio_input_kinds_json_accepts_anything_checkbox_nothing():
    info = gradio_info([("team", "Json"), *layout_inputs("s2")[1:]])
    info["named_endpoints"]["/submit_results"]["parameters"][1]["type"] = {"type": "integer"}  # Number(precision=0)
    info["named_endpoints"]["/submit_results"]["parameters"][1]["python_type"] = {"type": "int"}
    space = parse_info(info, "u")
    assert [p.kind for p in space.parameters[:3]] == ["any", "number", "number"]
    assert mismatch(space, "s2", ["T"] + [1] * 11, LAYOUT_FIELDS) is None
    boolean = parse_info(gradio_info([("team", "Checkbox"), *layout_inputs("s2")[1:]]), "u")
    assert "input 1 (team) takes bool (Checkbox), not a string" in mismatch(boolean, "s2", ["T"] + [1] * 11,
                                                                             LAYOUT_FIELDS)


def test_parameter_names_fall_back_to_the_label():
    info = gradio_info(layout_inputs("s2"))
    for i, p in enumerate(info["named_endpoints"]["/submit_results"]["parameters"]):
        p["parameter_name"] = f"param_{i}"  # what gradio names the inputs of a lambda *args
    assert [p.name for p in parse_info(info, "u").parameters] == S2


def test_a_description_without_the_endpoint_or_not_gradios_is_told_apart():
    with pytest.raises(EndpointMissing, match=r"no /submit_results endpoint \(its API lists: /predict, /vote\)"):
        parse_info({"named_endpoints": {"/predict": {"parameters": []}, "/vote": {}}}, "u")
    for junk in ([1, 2], {"detail": "Not Found"}, {"named_endpoints": {"/submit_results": {"params": []}}}):
        with pytest.raises(SignatureUnreadable):
            parse_info(junk, "u")


# --- before sending -----------------------------------------------------------------------------

def test_s1_payload_to_a_stage2_space_is_refused_before_anything_is_sent(tmp_path):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8)])
    lines: list[str] = []
    with FakeLeaderboard(layout="s2") as lb:
        outcomes = submit_run(run, "T", url_override=lb.base_url, echo=lines.append, **FAST)
    assert lb.posts() == 0 and lb.received == []
    assert lb.info_reads() == 1  # once per Space, not per point
    assert [o.status for o in outcomes] == ["refused", "refused"]
    assert all(o.message.startswith("the Space's /submit_results takes 12 inputs and the s1 payload has 14 items")
               and "this record has no gsm8k_metric, so the URL is likely another stage's Space" in o.message
               for o in outcomes)
    full = [line for line in lines if "byte_perplexity" in line and "<- no such input" in line]
    assert len(full) == 1 and lines[-1].endswith("(as above)")  # the lists once, then the cause per point
    data = saved(run, "gptoss-1024-1024-c4")
    assert data["payload"] == outcomes[0].payload and len(data["payload"]) == 14  # kept, with why it was not sent
    assert data["result"]["status"] == "refused" and "takes 12 inputs" in data["result"]["message"]
    sig = data["space_signature"]
    assert sig["check"] == "mismatch" and sig["endpoint"] == "/submit_results"
    assert sig["info_url"] == lb.base_url + "/gradio_api/info?all_endpoints=true"
    assert [p["name"] for p in sig["parameters"]] == S2
    assert sig["parameters"][0] == {"name": "team", "component": "Textbox", "python_type": "str", "kind": "string"}


def test_a_fitting_space_gets_the_points_and_its_signature_is_recorded(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    lines: list[str] = []
    with FakeLeaderboard(layout="s2") as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, echo=lines.append, **FAST)
    assert out.status == "submitted" and lb.received == [out.payload]
    assert [m for m, _, _ in lb.requests][:2] == ["GET", "POST"]  # the description first
    assert any("/submit_results takes 12 inputs: team (str), max_concurrency (float)" in line for line in lines)
    sig = saved(run, "gptoss-8192-1024-c4")["space_signature"]
    assert sig["check"] == "fits the s2 payload" and len(sig["parameters"]) == 12


def test_a_space_without_submit_results_is_refused(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    with FakeLeaderboard(api_name="/predict") as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, echo=lambda s: None, **FAST)
    assert out.status == "refused" and lb.posts() == 0
    assert "has no /submit_results endpoint (its API lists: /predict)" in out.message
    assert "Nothing was sent" in out.message and saved(run, out.point)["space_signature"] == {"check": "not read"}


@pytest.mark.parametrize("knobs, said, reads", [
    ({"info_status": 404}, "HTTP 404", 1),  # a 4xx is not retried
    ({"info_text": "<html>Space is building</html>"}, "answered something else than JSON: '<html>Space is", 1),
    ({"info_fail_first": 100}, "HTTP 503.*gave up after 3 attempts", 3),
])
def test_an_unreadable_description_refuses_after_the_retries(tmp_path, knobs, said, reads):
    run = write_run(tmp_path / "run", [s2_record(4)])
    with FakeLeaderboard(**knobs) as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, echo=lambda s: None, **{**FAST, "retries": 2})
    assert out.status == "refused" and lb.posts() == 0 and lb.info_reads() == reads
    assert out.message.startswith(f"cannot read the Space's API description: GET {lb.base_url}/gradio_api/info")
    assert re.search(said, out.message) and ". Nothing was sent: a point goes only to a Space whose " in out.message


def test_a_space_waking_up_is_read_on_a_retry(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    with FakeLeaderboard(info_fail_first=1) as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, echo=lambda s: None, **FAST)
    assert out.status == "submitted" and lb.info_reads() == 2 and lb.posts() == 1


def test_read_signature_raises_the_projects_error():
    with pytest.raises(SubmissionError, match="connection failed.*gave up after 2 attempts") as info:
        read_signature(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01, timeout=2)
    assert isinstance(info.value, ResultsError)


# --- dry run ------------------------------------------------------------------------------------

def test_dry_run_checks_a_space_that_answers(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    with FakeLeaderboard(layout="s2") as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, dry_run=True, layout="s1", echo=lambda s: None,
                            **FAST)
    assert out.status == "refused" and "re-submit with --layout s2" in out.message and lb.posts() == 0


def test_dry_run_goes_on_unchecked_when_the_space_does_not_answer(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    lines: list[str] = []
    with FakeLeaderboard(info_fail_first=5) as lb:  # one try only: a dry run does not wait for a Space
        (out,) = submit_run(run, "T", url_override=lb.base_url, dry_run=True, echo=lines.append, **FAST)
    assert out.status == "dry-run" and lb.info_reads() == 1
    check = saved(run, out.point)["space_signature"]["check"]
    assert check.startswith("not checked (dry run): cannot read the Space's API description") and "503" in check
    assert "the Space's signature: not checked (dry run)" in lines[-1]
    (out,) = submit_run(run, "T", url_override=f"http://127.0.0.1:{free_port()}", dry_run=True, echo=lambda s: None,
                        **FAST)
    assert out.status == "dry-run" and "connection failed" in saved(run, out.point)["space_signature"]["check"]


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_refuses_with_one_cause_line_and_the_lists_no_traceback(tmp_path, capsys):
    run = write_run(tmp_path / "run", [s2_record(4), s2_record(8)])  # stage-2 results, sent as s1 by mistake
    with FakeLeaderboard(layout="s2") as lb:
        rc = main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--layout", "s1", "--backoff", "0.01"])
        assert rc == 1 and lb.posts() == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert out.count("<- no such input: Gradio drops it") == 2  # byte_perplexity, word_perplexity: once
        assert sorted(line for line in err.splitlines() if line.startswith("  ")) == [
            f"  refused: gptoss-8192-1024-c{c}: the Space's /submit_results takes 12 inputs and the s1 payload has 14 "
            "items: Gradio would keep the first 12 and drop the rest; nothing was sent. Fix: the s2 layout fits it: "
            "re-submit with --layout s2 (cli.submit), or set the stage's payload_layout = \"s2\"." for c in (4, 8)]
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--layout", "s2"]) == 0
    assert lb.received == [["T", c, 5900.5, 22000.25, 6000.0, 21500.0, 0.9834, 1.0233, 151.0, 150.0, 1.0067, 0.4246]
                           for c in (4, 8)]
