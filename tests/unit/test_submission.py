"""Leaderboard submission: payload layout, the Gradio two-step call, retries, saved payloads, the CLI."""
from __future__ import annotations

import copy
import json

import pytest
from fake_leaderboard import FakeLeaderboard

from pytest_inferencemax.publish.submission import (
    SubmissionError,
    build_payload,
    leaderboard_url,
    save_payload,
    submit,
    submit_run,
)
from pytest_inferencemax.cli.submit import main
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.store import RunFolder
from record_factory import record_dict, record_from
from submission_support import FAST, S1_TEMPLATE, free_port, s1_record, s2_record, write_run

pytestmark = pytest.mark.usefixtures("submission_env", "loopback_dns")  # tests/unit/conftest.py


# --- payload ------------------------------------------------------------------------------------

def test_s1_payload_has_14_items_in_runner_order():
    assert build_payload(record_from(s1_record()), "Team A", "s1") == [
        "Team A", 4, 2100.123456789, 420.987654321, 2162.0, 413.779, 0.9714, 1.0174, 440.5, 434.57, 1.0136,
        2.01, 4.02, 210.5]


def test_s2_payload_has_12_items_in_runner_order():
    assert build_payload(record_from(s2_record()), "Team A", "s2") == [
        "Team A", 32, 5900.5, 22000.25, 6000.0, 21500.0, 0.9834, 1.0233, 151.0, 150.0, 1.0067, 0.4246]


def test_null_baseline_and_ratios_are_sent_as_zero():
    rec = s1_record()
    rec["b200_baseline_nv1126"] = None
    for key in ("tput_per_gpu_ratio_vs_b200_1126", "median_e2e_ratio_vs_b200_1126", "interactivity_ratio_vs_b200_1126"):
        rec[key] = None
    assert build_payload(record_from(rec), "T", "s1")[4:11] == [0.0, 0.0, 0.0, 0.0, 440.5, 0.0, 0.0]


def test_sig_digits_reproduces_the_original_ostream_rounding():
    rec = s2_record()
    rec["tput_per_gpu"] = 12345.678
    payload = build_payload(record_from(rec), "T", "s2", sig_digits=6)
    assert payload[2:4] == [5900.5, 12345.7]
    assert payload[1] == 32 and isinstance(payload[1], int)


def test_unknown_layout_missing_metric_and_nan_are_errors():
    with pytest.raises(SubmissionError, match="layout 's3' unknown"):
        build_payload(record_from(s1_record()), "T", "s3")
    rec = record_dict(s1_record())
    del rec["median_e2el_ms"]
    with pytest.raises(RecordError, match="median_e2el_ms: Field required"):
        PointRecord.from_dict(rec, "run/gptoss-1024-1024-c4.json")
    rec = s1_record()
    rec["interactivity"] = float("nan")
    with pytest.raises(SubmissionError, match="interactivity is nan"):
        build_payload(record_from(rec), "T", "s1")
    with pytest.raises(SubmissionError, match="team name is empty"):
        build_payload(record_from(s1_record()), "  ", "s1")


def test_skipped_accuracy_is_refused_unless_forced():
    rec = s1_record()
    rec["accuracy"] = None
    rec["accuracy_validation"] = {"status": "SKIPPED", "reason": "--skip-accuracy"}
    with pytest.raises(SubmissionError) as info:
        build_payload(record_from(rec), "T", "s1")
    msg = str(info.value)
    assert "gptoss-1024-1024-c4" in msg and "SKIPPED (--skip-accuracy)" in msg and "--force" in msg
    assert build_payload(record_from(rec), "T", "s1", force=True)[-3:] == [0.0, 0.0, 0.0]


def test_failed_requests_are_refused_unless_forced():
    rec = s2_record()
    rec["inferencemax"]["failed"] = 2
    with pytest.raises(SubmissionError, match="2 request"):
        build_payload(record_from(rec), "T", "s2")
    assert len(build_payload(record_from(rec), "T", "s2", force=True)) == 12


def test_leaderboard_url_template_override_and_env(monkeypatch):
    assert leaderboard_url(S1_TEMPLATE, 1024, 8192) == "https://daniehua-gptoss-fp4-vllm-isl1024osl8192.hf.space"
    assert leaderboard_url(S1_TEMPLATE, 1024, 1024, "http://x:1/") == "http://x:1"
    monkeypatch.setenv("LB_URL_OVERRIDE", "http://env-lb/isl${isl}")
    assert leaderboard_url(S1_TEMPLATE, 8192, 1024) == "http://env-lb/isl8192"
    assert leaderboard_url(S1_TEMPLATE, 8192, 1024, "http://arg") == "http://arg"
    monkeypatch.delenv("LB_URL_OVERRIDE")
    with pytest.raises(SubmissionError, match="--leaderboard-url"):
        leaderboard_url(None, 1, 1)
    with pytest.raises(SubmissionError, match=r"only \$\{isl\}"):
        leaderboard_url("https://x-${conc}.hf.space", 1, 1)


# --- sending ------------------------------------------------------------------------------------

def test_submit_posts_then_reads_the_completion():
    payload = build_payload(record_from(s2_record()), 'Team "quoted" \\ ü', "s2")
    with FakeLeaderboard(answer=["Submitted!", 3]) as lb:
        result = submit(lb.base_url, payload, **FAST)
    assert result.ok and result.status == "complete"
    assert result.data == ["Submitted!", 3] and result.attempts == 1 and result.event_id in lb.events
    assert lb.received == [payload]  # the team name survived JSON escaping exactly
    assert [(m, p.rsplit("/", 1)[-1] if m == "GET" else p) for m, p, _ in lb.requests] == [
        ("POST", "/gradio_api/call/submit_results"), ("GET", result.event_id)]


def test_503_is_retried_then_succeeds():
    with FakeLeaderboard(fail_first=2) as lb:
        result = submit(lb.base_url, ["T", 4], **FAST)
    assert result.ok and result.attempts == 3 and lb.posts() == 3


def test_503_gives_up_after_the_retries():
    with FakeLeaderboard(fail_first=100) as lb, pytest.raises(SubmissionError, match="HTTP 503.*after 3 attempts"):
        submit(lb.base_url, ["T", 4], **{**FAST, "retries": 2})
    assert lb.posts() == 3


def test_400_is_not_retried_and_explained():
    with FakeLeaderboard(post_status=400) as lb, pytest.raises(SubmissionError) as info:
        submit(lb.base_url, ["T", 4], **FAST)
    msg = str(info.value)
    assert "HTTP 400" in msg and "wrong number of inputs" in msg and "Not retried" in msg and "payload" in msg
    assert lb.posts() == 1 and len(lb.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with pytest.raises(SubmissionError, match="connection failed.*gave up after 2 attempts"):
        submit(f"http://127.0.0.1:{free_port()}", ["T"], **{**FAST, "retries": 1})


def test_error_event_is_a_failure():
    with FakeLeaderboard(outcome="error") as lb:
        result = submit(lb.base_url, ["T", 4], **FAST)
    assert not result.ok and result.status == "error"
    assert result.data == "submit_results: invalid submission" and "reported an error" in result.message


def test_stream_without_final_event_is_unconfirmed():
    with FakeLeaderboard(outcome="none") as lb:
        result = submit(lb.base_url, ["T", 4], **FAST)
    assert not result.ok and result.status == "unconfirmed" and result.event_id


# --- results folders ----------------------------------------------------------------------------

def test_run_folder_reads_points_and_skips_summary_manifests_and_foreign_json(tmp_path):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8)])
    (run / "notes.json").write_text("[1, 2]", encoding="utf-8")
    assert [r.point_id for r in RunFolder(run).points()] == ["gptoss-1024-1024-c4", "gptoss-1024-1024-c8"]
    (run / "gptoss-1024-1024-c16.json").write_text('{"inferencemax": {"point": "x"', encoding="utf-8")
    with pytest.raises(RecordError, match="c16.json: cannot be read as JSON .* re-run the point"):
        RunFolder(run).points()


def test_payload_is_saved_before_sending_even_when_the_send_fails(tmp_path):
    run = write_run(tmp_path / "run", [s2_record(4)])
    saved = run / "submissions" / "gptoss-8192-1024-c4.json"
    seen_on_arrival = []
    with FakeLeaderboard(post_status=400, on_post=lambda p: seen_on_arrival.append(
            json.loads(saved.read_text())["payload"] if saved.exists() else None)) as lb:
        (out,) = submit_run(run, "T", url_override=lb.base_url, echo=lambda s: None, **FAST)
    assert out.status == "failed" and "HTTP 400" in out.message
    assert seen_on_arrival == [out.payload] == lb.received
    data = json.loads(saved.read_text())
    assert data["url"] == lb.base_url and data["payload"] == out.payload and data["time"]
    assert data["result"]["status"] == "failed" and "HTTP 400" in data["result"]["message"]


def test_dry_run_sends_nothing(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8)])
    lines: list[str] = []
    with FakeLeaderboard(layout="s1") as lb:
        monkeypatch.setenv("LB_URL_OVERRIDE", lb.base_url)
        outcomes = submit_run(run, "T", dry_run=True, echo=lines.append, **FAST)
    assert lb.posts() == 0 and lb.info_reads() == 1  # the Space's signature was read, once, and nothing sent
    assert [o.status for o in outcomes] == ["dry-run", "dry-run"]
    assert sorted(p.name for p in (run / "submissions").iterdir()) == [
        "gptoss-1024-1024-c4.json", "gptoss-1024-1024-c8.json", "log.jsonl"]
    assert any("would POST " + lb.base_url + "/gradio_api/call/submit_results" in s for s in lines)


def test_submit_run_uses_the_record_template_and_filters(tmp_path):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8)])
    out = submit_run(run, "T", dry_run=True, only_qualified={"gptoss-1024-1024-c8"}, echo=lambda s: None)
    assert [(o.point, o.url) for o in out] == [
        ("gptoss-1024-1024-c8", "https://daniehua-gptoss-fp4-vllm-isl1024osl1024.hf.space")]
    out = submit_run(run, "T", dry_run=True, only_qualified=lambda r: r.max_concurrency == 4, echo=lambda s: None)
    assert [o.point for o in out] == ["gptoss-1024-1024-c4"]


def test_hf_token_is_sent_but_never_saved_or_printed(tmp_path, monkeypatch, capsys):
    secret = "hf_SeCrEtToKeN1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    run = write_run(tmp_path / "run", [s2_record(4), s2_record(32)])
    with FakeLeaderboard(fail_first=1, answer=[f"thanks, {secret}"]) as lb:
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--backoff", "0.01"]) == 0
    assert all(h.get("Authorization") == f"Bearer {secret}" for _, _, h in lb.requests)
    for path in run.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8"), path
    out, err = capsys.readouterr()
    assert secret not in out + err
    saved = [json.loads(p.read_text())["result"] for p in sorted((run / "submissions").glob("*.json"))]
    assert [r["data"] for r in saved] == [["thanks, ***"]] * 2
    assert sorted(r["attempts"] for r in saved) == [1, 2]  # the first point sent met the 503


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_resubmits_a_saved_results_folder(tmp_path, capsys):
    recs = [s1_record(4), s1_record(8)]
    run = write_run(tmp_path / "run", recs)
    with FakeLeaderboard(layout="s1") as lb:
        rc = main([str(run), "--team", "Team A", "--leaderboard-url", lb.base_url, "--backoff", "0.01"])
    assert rc == 0
    assert lb.received == [build_payload(record_from(r), "Team A", "s1") for r in recs]
    assert "2/2 point(s) submitted" in capsys.readouterr().out
    assert json.loads((run / "submissions" / "gptoss-1024-1024-c8.json").read_text())["result"]["status"] == "submitted"


def test_cli_layout_flag_for_records_without_one(tmp_path):
    rec = s2_record(4)
    rec["inferencemax"]["stage"] = "custom"
    run = write_run(tmp_path / "run", [rec])
    with FakeLeaderboard() as lb:
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url]) == 1  # no layout known
        assert lb.requests == []
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--layout", "s2"]) == 0
    assert len(lb.received) == 1 and len(lb.received[0]) == 12


def test_cli_refuses_skipped_accuracy_without_force(tmp_path, capsys):
    rec = s1_record(4)
    rec["accuracy"] = None
    rec["accuracy_validation"] = {"status": "SKIPPED", "reason": "--skip-accuracy"}
    run = write_run(tmp_path / "run", [rec, s1_record(8)])
    with FakeLeaderboard(layout="s1") as lb:  # a point without its gate: the curve does not qualify
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url]) == 2
        assert "NOT QUALIFIED: accuracy gate not passed on CONC 4 (SKIPPED)" in capsys.readouterr().out
        assert lb.requests == []
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--unqualified"]) == 1
        assert len(lb.received) == 1  # only the point that passed its gate
        err = capsys.readouterr().err
        assert "refused: gptoss-1024-1024-c4" in err and "SKIPPED" in err and "--force" in err
        assert not (run / "submissions" / "gptoss-1024-1024-c4.json").exists()
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--unqualified", "--force"]) == 0
    assert len(lb.received) == 3


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing"), "--team", "T"])
    assert info.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path)])  # --team is required
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--team", "T"]) == 2
    assert "no point records" in capsys.readouterr().err
    run = write_run(tmp_path / "run", [s1_record(4)])
    assert main([str(run), "--team", "T", "--points", "nope", "--dry-run"]) == 2
    rec = copy.deepcopy(s1_record(4))
    del rec["inferencemax"]["leaderboard_url"]
    run2 = write_run(tmp_path / "run2", [rec])
    assert main([str(run2), "--team", "T", "--dry-run"]) == 1
    assert "no leaderboard URL" in capsys.readouterr().err


def test_save_payload_rejects_odd_point_ids(tmp_path):
    with pytest.raises(SubmissionError, match="cannot name a file"):
        save_payload(tmp_path, "../x", "http://a", [])
