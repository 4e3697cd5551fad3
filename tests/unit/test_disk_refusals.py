"""Nothing measured is lost when the disk says no (issue 25, item 1): the results folder is checked
before anything starts, a record the run folder refuses is kept elsewhere and its point fails naming
both paths and the OS's reason, and a session whose files cannot be written still prints its summary
and exits non-zero. The disk refuses for real here: a file where a folder must be, a folder where a
file must be (no fake file system)."""
from __future__ import annotations

import json

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.errors import ResultsWriteError
from pytest_inferencemax.results.manifest import Manifest
from pytest_inferencemax.results.store import check_writable, keep_path, save_or_keep, write_text_atomic

MINI = "{ isl = 16, osl = 4, conc = [1, 2, 4], prompts_per_conc = 1 }"


def test_a_refused_write_names_the_file_and_the_reason(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ResultsWriteError) as info:
        write_text_atomic(tmp_path / "a-file" / "p.json", "{}")
    assert str(info.value) == f"cannot write {tmp_path / 'a-file' / 'p.json'}: {tmp_path / 'a-file'} is a file, not a folder"
    assert isinstance(info.value, OSError)
    (tmp_path / "p.json").mkdir()  # a folder where the record must go
    with pytest.raises(ResultsWriteError, match=r"p\.json: Is a directory$"):
        write_text_atomic(tmp_path / "p.json", "{}")
    assert list(tmp_path.glob(".p.json.*")) == []  # no temporary file left behind


def test_check_writable_says_why(tmp_path):
    (tmp_path / "f").write_text("x")
    assert check_writable(tmp_path / "f") == f"{tmp_path / 'f'} is a file, not a folder"
    assert check_writable(tmp_path / "f" / "run") == f"{tmp_path / 'f'} is a file, not a folder"
    assert check_writable(tmp_path / "new" / "run") is None and (tmp_path / "new" / "run").is_dir()
    assert list((tmp_path / "new" / "run").iterdir()) == []  # the probe is gone


def test_a_refused_record_is_kept_in_the_temporary_folder(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    run = tmp_path / "results" / "run1"
    (run / "rounds" / "p.r1.json").mkdir(parents=True)
    saved = save_or_keep(run / "rounds" / "p.r1.json", '{"a": 1}', run)
    assert saved.path == tmp_path / "tmp" / "inferencemax-unsaved" / "run1" / "rounds" / "p.r1.json"
    assert saved.path.read_text() == '{"a": 1}' and "Is a directory" in saved.refused
    assert keep_path(run / "x.json") == tmp_path / "tmp" / "inferencemax-unsaved" / "run1" / "x.json"
    assert save_or_keep(run / "ok.json", "{}", run).refused is None


def test_a_manifest_the_disk_refuses_does_not_end_the_run(tmp_path):
    (tmp_path / "f").write_text("x")
    manifest = Manifest(rootdir=tmp_path, path=tmp_path / "f" / "manifest.json", settings={})
    manifest.add_server({"base_url": "http://x"})  # no exception
    assert manifest.refused == f"cannot write {tmp_path / 'f' / 'manifest.json'}: {tmp_path / 'f'} is a file, not a folder"


def _mini(pytester):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml(MINI))
    (d / "test_mini.py").write_text(SUITE_TEST)
    return d


def _run(pytester, server, *args):
    return pytester.runpytest_inprocess(
        "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
        "--models-dir", str(MODELS_DIR), "--telemetry-interval", "0", "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("results", ["a-file", "a-file/below"])
def test_an_unwritable_results_dir_is_a_usage_error_before_anything_starts(pytester, tmp_path, results):
    _mini(pytester)
    (tmp_path / "a-file").write_text("x")
    with FaultyServer("ok", prompt_tokens=False) as server:
        result = _run(pytester, server, "--results-dir", str(tmp_path / results), "--run-id", "r")
        assert server.stream_requests == 0  # nothing was measured
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    why = f"{tmp_path / 'a-file'} is a file, not a folder"
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [f"ERROR: --results-dir {tmp_path / results}: cannot write the run folder "
                      f"{tmp_path / results / 'r'} ({why}): pass a writable folder as --results-dir (ini: "
                      "inferencemax_results_dir)"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_point_whose_record_is_refused_fails_keeps_it_and_the_run_goes_on(pytester, tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    _mini(pytester)
    run = tmp_path / "results" / "r"
    (run / "mini-16-4-c2.json").mkdir(parents=True)  # the disk refuses this one point's record
    with FaultyServer("ok", prompt_tokens=False) as server:
        result = _run(pytester, server, "--results-dir", str(tmp_path / "results"), "--run-id", "r")
    result.assert_outcomes(passed=2, failed=1)
    kept = tmp_path / "tmp" / "inferencemax-unsaved" / "r" / "mini-16-4-c2.json"
    assert json.loads(kept.read_text())["inferencemax"]["point"] == "mini-16-4-c2"  # measured, and kept
    out = result.stdout.str()
    cause = (f"measured, but its record could not be saved: cannot write {run / 'mini-16-4-c2.json'}: Is a "
             f"directory; kept in {kept}")
    assert f"FAILED mini-16-4-c2: {cause}" in out  # the summary's line
    assert "mini-16-4-c4       4/4" in out  # the point after it ran, and the summary printed every row
    assert "Traceback" not in out
    summary = json.loads((run / "summary.json").read_text())
    assert [f["reason"] for f in summary["failures"]] == [cause]
    assert {p["point"] for p in summary["points"]} == {"mini-16-4-c1", "mini-16-4-c2", "mini-16-4-c4"}
    assert (run / "mini-16-4-c1.json").is_file() and (run / "mini-16-4-c4.json").is_file()


def test_files_the_session_cannot_write_are_named_and_the_run_fails(pytester, tmp_path):
    _mini(pytester)
    run = tmp_path / "results" / "r"
    for name in ("summary.json", "report.md", "manifest.json"):
        (run / name).mkdir(parents=True)
    with FaultyServer("ok", prompt_tokens=False) as server:
        result = _run(pytester, server, "--results-dir", str(tmp_path / "results"), "--run-id", "r")
        quiet = _run(pytester, server, "--results-dir", str(tmp_path / "results"), "--run-id", "r", "-q")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # every point passed, but the run is not all on disk
    out = result.stdout.str()
    for name in ("manifest.json", "report.md", "summary.json"):
        assert f"NOT SAVED: cannot write {run / name}: Is a directory" in out
    assert "verdict mini, stage cpu" in out  # the verdicts still print
    assert f"inferencemax: NOT SAVED: cannot write {run / 'manifest.json'}: Is a directory (and 2 more)" in \
        quiet.stdout.str()


def test_merge_out_that_cannot_be_written_is_refused_before_anything_is_written(tmp_path, capsys):
    from pytest_inferencemax.cli.merge import main
    from record_factory import point_record
    from pytest_inferencemax.results.store import RunFolder

    RunFolder(tmp_path / "run").write_point(point_record(conc=4))
    (tmp_path / "a-file").write_text("x")
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "merged"):
        assert main([str(tmp_path / "run"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: --out {out}: cannot write the merged run there ({tmp_path / 'a-file'} is a file, "
                       "not a folder): choose a writable folder\n")
    assert (tmp_path / "a-file").read_text() == "x"


def test_bench_out_that_cannot_be_written_is_refused_before_the_server_is_asked(tmp_path, capsys):
    from pytest_inferencemax.cli.bench import main

    (tmp_path / "a-file").write_text("x")
    with FaultyServer("ok", prompt_tokens=False) as server:
        rc = main(["--base-url", server.base_url, "--model", "faulty", "--tokenizer", str(MODELS_DIR / "SmolLM2-135M-Instruct"),
                   "--isl", "16", "--osl", "4", "--conc", "1", "--out", str(tmp_path / "a-file" / "r.json")])
        assert server.stream_requests == 0
    assert rc == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 'a-file' / 'r.json'}: cannot write there "
                                       f"({tmp_path / 'a-file'} is a file, not a folder): choose a writable path\n")
