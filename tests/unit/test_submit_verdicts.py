"""Submission honours the verdict in every path (cli.submit, finish_run for pytest --submit-team, cli.merge
--submit-team): only qualifying curves go, the rest are held back with their verdict and why; the submission
log is appended, never rewritten (a dry run cannot wipe a real send); a dry run needs no team; every bad
argument of cli.submit is named in one message."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fake_leaderboard import FakeLeaderboard

from pytest_inferencemax.cli.merge import main as merge_main
from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.cli.submit import main
from pytest_inferencemax.judge.verdict import judge_curves
from pytest_inferencemax.judge.curve import build_curves
from pytest_inferencemax.judge.ranking import rank_variants
from pytest_inferencemax.publish.finish import SubmitOptions, finish_run
from pytest_inferencemax.publish.submission import SubmissionError
from pytest_inferencemax.publish.submit_log import log_path, read_log
from pytest_inferencemax.publish.submit_select import DRY_RUN_TEAM, select_points
from pytest_inferencemax.results.record import PointRecord
from record_factory import record_from
from submission_support import free_port, s1_record, write_run

pytestmark = pytest.mark.usefixtures("submission_env", "loopback_dns")  # tests/unit/conftest.py

NONE_RULE = {"rule": "none", "reason": "CPU smoke sweep: there are no reference points to beat"}
CURVE = "gptoss, stage s1, ISL 1024 / OSL 1024"


def not_applicable(conc: int) -> dict:
    rec = copy.deepcopy(s1_record(conc))
    rec["inferencemax"]["verdict_rule"] = NONE_RULE
    return rec


def losing(conc: int, isl: int = 8192) -> dict:
    """A stage-1 point of another ISL that does not beat its baseline: its curve is "not qualified"."""
    rec = copy.deepcopy(s1_record(conc))
    rec["inferencemax"].update(point=f"gptoss-{isl}-1024-c{conc}", isl=isl)
    rec["tput_per_gpu"], rec["tput_per_gpu_ratio_vs_b200_1126"] = 206.9, 0.5  # the baseline's: 413.779
    return rec


def records_of(run: Path) -> list[PointRecord]:
    return [PointRecord.from_dict(json.loads(p.read_text()), str(p)) for p in sorted(run.glob("gptoss-*.json"))]


# --- cli.submit ---------------------------------------------------------------------------------

def test_cli_submit_holds_back_a_not_applicable_curve_and_says_why(tmp_path, capsys):
    run = write_run(tmp_path / "run", [not_applicable(c) for c in (4, 8, 16)])
    with FakeLeaderboard(layout="s1") as lb:
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--dry-run"]) == 2
        assert lb.requests == []
        out, err = capsys.readouterr()
        assert "ready" not in out and "nothing to submit" in err
        assert (f"inferencemax: held back {CURVE} (3 point(s): gptoss-1024-1024-c16, gptoss-1024-1024-c4, "
                f"gptoss-1024-1024-c8): NOT APPLICABLE: {NONE_RULE['reason']}; --submit-unqualified sends it anyway"
                in out)
        assert [(e.point, e.status, e.dry_run) for e in read_log(run)] == [
            (f"gptoss-1024-1024-c{c}", "held back", True) for c in (16, 4, 8)]
        assert read_log(run)[0].message == f"{CURVE}: NOT APPLICABLE: {NONE_RULE['reason']}"
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--unqualified"]) == 0
    assert len(lb.received) == 3
    out = capsys.readouterr().out
    assert f"sent although NOT APPLICABLE: {NONE_RULE['reason']} (--submit-unqualified): {CURVE}" in out
    assert "3/3 point(s) submitted; 3 of them did not qualify" in out


def test_cli_submit_sends_the_qualifying_curve_only(tmp_path, capsys):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8), losing(4), losing(8)])
    with FakeLeaderboard(layout="s1") as lb:
        assert main([str(run), "--team", "T", "--leaderboard-url", lb.base_url, "--backoff", "0.01"]) == 0
    assert sorted(p[1] for p in lb.received) == [4, 8] and {len(p) for p in lb.received} == {14}
    out = capsys.readouterr().out
    assert f"verdict {CURVE}: QUALIFIED" in out
    assert ("held back gptoss, stage s1, ISL 8192 / OSL 1024 (2 point(s): gptoss-8192-1024-c4, gptoss-8192-1024-c8): "
            "NOT QUALIFIED: 0 of 2 points (0%) beat the baseline tput/GPU") in out
    assert "2/2 point(s) submitted; 2 point(s) held back" in out
    assert sorted((e.point, e.status) for e in read_log(run)) == [
        ("gptoss-1024-1024-c4", "submitted"), ("gptoss-1024-1024-c8", "submitted"),
        ("gptoss-8192-1024-c4", "held back"), ("gptoss-8192-1024-c8", "held back")]


def test_cli_submit_holds_back_an_interrupted_run(tmp_path, capsys):
    run = write_run(tmp_path / "run", [s1_record(4), s1_record(8)])
    (run / "summary.json").write_text(json.dumps({"interrupted": {"by": "Ctrl-C", "point": "gptoss-1024-1024-c16",
                                                                  "not_run": [], "deselected": 0}}))
    assert main([str(run), "--team", "T", "--dry-run"]) == 2
    assert f"held back {CURVE} (2 point(s): gptoss-1024-1024-c4, gptoss-1024-1024-c8): INCOMPLETE: interrupted " \
           "by Ctrl-C during gptoss-1024-1024-c16" in capsys.readouterr().out


def test_cli_submit_holds_back_a_curve_the_run_judged_otherwise(tmp_path, capsys):
    """The run's summary.json said NOT QUALIFIED (its AMD table had a point above ours); judged again without
    that table it would qualify: the two disagree, so nothing goes."""
    run = write_run(tmp_path / "run", [s1_record(4)])
    (run / "summary.json").write_text(json.dumps({"conclusion": [
        f"verdict {CURVE}: NOT QUALIFIED (not qualified: below AMD's existing point at CONC 4)"]}))
    assert main([str(run), "--team", "T", "--dry-run"]) == 2
    assert "the run's summary.json says NOT QUALIFIED, judged again now QUALIFIED" in capsys.readouterr().out


def test_cli_submit_points_outside_the_run_are_named(tmp_path, capsys):
    run = write_run(tmp_path / "run", [s1_record(4)])
    assert main([str(run), "--team", "T", "--dry-run", "--points", "gptoss-1024-1024-c4,nope"]) == 2
    assert "--points: nope not in" in capsys.readouterr().err


# --- the other paths: finish_run (pytest --submit-team) and cli.merge ------------------------------

def test_finish_run_says_which_curves_it_held_back(tmp_path):
    run = write_run(tmp_path / "run", [not_applicable(4), s1_record(4) | {"inferencemax": {
        **s1_record(4)["inferencemax"], "point": "gptoss-8192-1024-c4", "isl": 8192}}])
    records = records_of(run)
    rules = {("gptoss", "s1"): None}  # finish_run is given the stage's rule: here, none
    lines: list[str] = []
    finished = finish_run(run, records, rules, tmp_path, SubmitOptions(team="T", dry_run=True), echo=lines.append,
                          with_plots=False)
    assert finished.submissions == []
    assert [h.curve.isl for h in finished.held_back] == [1024, 8192]
    assert any(ln.startswith(f"submission held back {CURVE} (1 point(s): gptoss-1024-1024-c4): NOT APPLICABLE: "
                             "this stage declares no verdict rule") for ln in finished.lines())
    assert any("held back" in ln for ln in lines)  # said as it happened, too


def test_cli_merge_submit_team_holds_back_and_says_so(tmp_path, capsys):
    a = write_run(tmp_path / "a", [not_applicable(4)])
    b = write_run(tmp_path / "b", [not_applicable(8)])
    assert merge_main([str(a), str(b), "--out", str(tmp_path / "ab"), "--baselines", str(tmp_path),
                       "--submit-team", "T", "--submit-dry-run", "-q"]) == 0
    out = capsys.readouterr().out
    assert (f"submission held back {CURVE} (2 point(s): gptoss-1024-1024-c4, gptoss-1024-1024-c8): "
            f"NOT APPLICABLE: {NONE_RULE['reason']}") in out
    assert not list((tmp_path / "ab" / "submissions").glob("*.json"))  # nothing built, nothing sent
    assert {e.status for e in read_log(tmp_path / "ab")} == {"held back"}


def test_only_the_best_variant_of_a_qualifying_curve_is_sent():
    def variant(name: str, ratio: float) -> PointRecord:
        rec = copy.deepcopy(s1_record(4))
        rec["inferencemax"].update(point=f"gptoss-1024-1024-c4-{name}", variant=name)
        rec["tput_per_gpu_ratio_vs_b200_1126"] = ratio
        return record_from(rec)

    records = [variant("a", 1.05), variant("b", 1.2)]
    curves, verdicts = judge_curves(build_curves(records), {("gptoss", "s1"): {"rule": "beat_baseline_share"}})
    selection = select_points(records, verdicts, rank_variants(curves, verdicts))
    assert selection.send == {"gptoss-1024-1024-c4-b"}
    (held,) = selection.held_back
    assert held.points == ("gptoss-1024-1024-c4-a",) and held.label == "qualified"
    assert "variant 'a' is not the best on its curve ('b' is)" in held.line()


# --- the log ------------------------------------------------------------------------------------

def test_a_dry_run_never_overwrites_a_real_send(tmp_path, monkeypatch):
    secret = "hf_SeCrEt0987654321"
    monkeypatch.setenv("HF_TOKEN", secret)
    run = write_run(tmp_path / "run", [s1_record(4)])
    with FakeLeaderboard(layout="s1", answer=[f"ok {secret}"]) as lb:
        assert main([str(run), "--team", "Team A", "--leaderboard-url", lb.base_url]) == 0
        assert main([str(run), "--team", "Team A", "--leaderboard-url", lb.base_url, "--dry-run"]) == 0
    sub = run / "submissions"
    assert json.loads((sub / "gptoss-1024-1024-c4.json").read_text())["result"]["status"] == "submitted"
    assert json.loads((sub / "gptoss-1024-1024-c4.dry-run.json").read_text())["result"]["status"] == "dry-run"
    first, second = read_log(run)
    assert (first.status, first.dry_run, second.status, second.dry_run) == ("submitted", False, "dry-run", True)
    assert first.team == second.team == "Team A" and first.url == lb.base_url and first.event_id
    assert first.time and second.time >= first.time and first.payload == lb.received[0]
    assert secret not in log_path(run).read_text()


def test_the_log_is_appended_and_a_torn_last_line_is_left_out(tmp_path):
    run = write_run(tmp_path / "run", [s1_record(4)])
    for _ in range(2):
        assert main([str(run), "--dry-run", "--leaderboard-url", f"http://127.0.0.1:{free_port()}"]) == 0
    text = log_path(run).read_text()
    assert len(text.splitlines()) == 2
    log_path(run).write_text(text + '{"team": "T", "point": "x", "sta')  # a crash mid-line
    assert len(read_log(run)) == 2
    log_path(run).write_text("not json\n" + text)
    with pytest.raises(ResultsError, match="line 1: not a log entry"):
        read_log(run)


# --- arguments ----------------------------------------------------------------------------------

def test_a_dry_run_needs_no_team(tmp_path, capsys):
    run = write_run(tmp_path / "run", [s1_record(4)])
    with FakeLeaderboard(layout="s1") as lb:
        assert main([str(run), "--dry-run", "--leaderboard-url", lb.base_url]) == 0
    out = capsys.readouterr().out
    assert f"the payloads' team is {DRY_RUN_TEAM!r}" in out and f'"data": ["{DRY_RUN_TEAM}", 4' in out
    assert read_log(run)[0].team == DRY_RUN_TEAM
    assert SubmitOptions(dry_run=True).team_name() == DRY_RUN_TEAM
    with pytest.raises(SubmissionError, match="no team name: pass --team"):
        SubmitOptions().team_name()


def test_every_bad_argument_is_named_in_one_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--retries", "-1", "--backoff", "soon", "--layout", "s3", "--sig-digits", "0", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "7 problems with the arguments" in err
    for words in ("unrecognized argument(s): --bogus", "RESULTS_DIR is missing", "--team is missing",
                  "--retries '-1': must be a whole number >= 0", "--backoff 'soon': must be a number >= 0",
                  "--sig-digits '0': must be a whole number >= 1", "--layout 's3': use one of s1, s2"):
        assert words in err, words
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing"), "--team", " ", "--baselines", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "is not a folder" in err and "--team is empty" in err and "--baselines" in err
