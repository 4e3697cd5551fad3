"""Atomic JSON writes and redaction of secrets."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_inferencemax.measure.loadtypes import RequestResult
from pytest_inferencemax.results.build import error_summary
from pytest_inferencemax.results.redact import REDACTED, redact_argv, redact_env
from pytest_inferencemax.results.store import write_json_atomic


# --- write_json_atomic -----------------------------------------------------------------------


def test_writes_valid_json(tmp_path):
    data = {"a": 1, "b": [1.5, "x", None, True], "nested": {"k": "v"}, "unicode": "wörld"}
    out = write_json_atomic(tmp_path / "r.json", data)
    assert out == tmp_path / "r.json"
    text = out.read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert text.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_accepts_a_string_path_and_creates_parent_folders(tmp_path):
    target = tmp_path / "run" / "sub" / "point.json"
    out = write_json_atomic(str(target), {"x": 1})
    assert isinstance(out, Path)
    assert json.loads(target.read_text()) == {"x": 1}


def test_values_json_cannot_hold_become_strings(tmp_path):
    out = write_json_atomic(tmp_path / "r.json", {"path": Path("/a/b"), "ok": 1})
    assert json.loads(out.read_text()) == {"path": "/a/b", "ok": 1}


def test_replaces_an_existing_file(tmp_path):
    target = tmp_path / "r.json"
    target.write_text('{"old": true, "padding": "' + "x" * 1000 + '"}\n')
    write_json_atomic(target, {"new": 1})
    assert json.loads(target.read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_repeated_writes_leave_no_temp_files(tmp_path):
    target = tmp_path / "r.json"
    for i in range(5):
        write_json_atomic(target, {"i": i})
    assert json.loads(target.read_text()) == {"i": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_failed_serialisation_keeps_the_old_file_and_no_temp(tmp_path, bad):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"good": 1})
    before = target.read_bytes()
    # The bad value comes after enough good data that a partial write would have started.
    with pytest.raises(ValueError):
        write_json_atomic(target, {"first": list(range(500)), "bad": bad})
    assert target.read_bytes() == before
    assert json.loads(before) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "r.json", {"bad": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_non_serialisable_error_other_than_value_error_also_cleans_up(tmp_path):
    class Boom:
        def __str__(self):
            raise RuntimeError("cannot stringify")

    target = tmp_path / "r.json"
    write_json_atomic(target, [1])
    with pytest.raises(RuntimeError, match="cannot stringify"):
        write_json_atomic(target, {"x": Boom()})
    assert json.loads(target.read_text()) == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# --- redact_env ------------------------------------------------------------------------------


def test_redact_env_hides_secret_names_and_keeps_the_rest():
    env = [
        ("HF_TOKEN", "hf_abc"), ("OPENAI_API_KEY", "sk-123"), ("AWS_SECRET_ACCESS_KEY", "s"),
        ("DB_PASSWORD", "pw"), ("MYSQL_PASSWD", "pw2"), ("GOOGLE_APPLICATION_CREDENTIALS", "/c.json"),
        ("hf_token", "lower"),
        ("PATH", "/usr/bin"), ("HOME", "/root"), ("VLLM_CPU_KVCACHE_SPACE", "2"), ("HF_HUB_OFFLINE", "1"),
    ]
    out = redact_env(env)
    assert out == {
        "HF_TOKEN": REDACTED, "OPENAI_API_KEY": REDACTED, "AWS_SECRET_ACCESS_KEY": REDACTED,
        "DB_PASSWORD": REDACTED, "MYSQL_PASSWD": REDACTED, "GOOGLE_APPLICATION_CREDENTIALS": REDACTED,
        "hf_token": REDACTED,
        "PATH": "/usr/bin", "HOME": "/root", "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1",
    }
    assert "hf_abc" not in json.dumps(out) and "sk-123" not in json.dumps(out)


def test_redact_env_takes_a_mapping_items_view():
    out = redact_env({"API_KEY": "k", "X": "y"}.items())
    assert out == {"API_KEY": "***", "X": "y"}


# --- redact_argv -----------------------------------------------------------------------------


def test_redact_argv_hides_the_value_after_the_flag():
    argv = ["vllm", "serve", "m", "--api-key", "sk-secret", "--port", "8000"]
    assert redact_argv(argv) == ["vllm", "serve", "m", "--api-key", REDACTED, "--port", "8000"]


def test_redact_argv_hides_the_value_after_equals():
    argv = ["vllm", "--api-key=xyz", "--port=8000"]
    assert redact_argv(argv) == ["vllm", f"--api-key={REDACTED}", "--port=8000"]


def test_redact_argv_other_secret_flags():
    argv = ["x", "--hf-token", "hf_1", "--token=t2", "--model", "m"]
    assert redact_argv(argv) == ["x", "--hf-token", REDACTED, f"--token={REDACTED}", "--model", "m"]


def test_redact_argv_keeps_everything_else_and_does_not_change_its_input():
    argv = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--api-key-file", "f"]
    copy = list(argv)
    assert redact_argv(argv) == copy
    assert argv == copy
    assert redact_argv(["a", "--api-key"]) == ["a", "--api-key"]  # flag last: nothing to hide
    assert redact_argv([]) == []


def test_redacted_argv_holds_no_secret():
    argv = ["s", "--api-key", "k1", "--api-key=k2", "--hf-token", "k3"]
    assert all(s not in " ".join(redact_argv(argv)) for s in ("k1", "k2", "k3"))


# --- error_summary ---------------------------------------------------------------------------


def test_error_summary_groups_failures_by_first_line():
    def failed(err):
        return RequestResult(prompt_len=1, output_len_requested=1, success=False, error=err)

    results = [failed("HTTP 500: boom\ntrace 1"), failed("HTTP 500: boom\ntrace 2"), failed("timeout"),
               failed(""), RequestResult(prompt_len=1, output_len_requested=1, success=True)]
    assert error_summary(results) == {"HTTP 500: boom": 2, "timeout": 1, "unknown error": 1}
    assert error_summary(results, limit=1) == {"HTTP 500: boom": 2}
    assert error_summary([failed("e" * 500)]) == {"e" * 200: 1}
