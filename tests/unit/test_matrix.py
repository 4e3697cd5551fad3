"""The GitHub Actions matrix CLI (python -m pytest_inferencemax.cli.matrix) on the real suites.

Checks the groups and their point counts, the filters, that each entry's ``-k`` selects exactly
its group's points under pytest's own ``-k`` matching (also next to confusable ids such as
1024-10240 and a suite whose name ends in another's), and the exit code 2 on bad input.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_inferencemax.cli.matrix import main
from pytest_inferencemax.plan.points import PlanOptions, plan_points
from pytest_inferencemax.plan.suite import load_suite

REPO = Path(__file__).resolve().parents[2]
TEST_MODULE = "from pytest_inferencemax.plugin.suite_tests import test_accuracy, test_point  # noqa: F401\n"


def matrix(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    """Run the CLI in-process from the repository root; return its entries."""
    assert main(list(args)) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "the matrix must be one line (GITHUB_OUTPUT name=value)"
    return json.loads(out)["include"]


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI expecting exit code 2; return its one-line error."""
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def collected_points(pytester: pytest.Pytester, *args: str | Path) -> list[str]:
    """Point ids pytest collects with these arguments (its own -k matching)."""
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider", *args)
    assert result.ret in (0, 5), result.stdout.str() + result.stderr.str()
    return [line.split("test_point[", 1)[1].rstrip("]") for line in result.stdout.lines
            if "::test_point[" in line]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_gptoss_stage1_has_three_groups(capsys):
    entries = matrix(capsys, "suites/gptoss", "--stage", "s1")
    assert [(e["isl"], e["osl"], e["points"], e["conc"]) for e in entries] == [
        (1024, 1024, 2, "4,8"), (1024, 8192, 3, "4,8,16"), (8192, 1024, 2, "4,8")]
    assert {(e["suite"], e["name"], e["stage"], e["engine"]) for e in entries} == {("suites/gptoss", "gptoss", "s1", "vllm")}
    assert [e["k"] for e in entries] == ["[gptoss-1024-1024-c", "[gptoss-1024-8192-c", "[gptoss-8192-1024-c"]


def test_default_stage_and_several_suites_in_order(capsys):
    entries = matrix(capsys, "suites/gptoss/", "./suites/dsr1", "suites/smollm2-cpu")
    assert [(e["suite"], e["stage"], e["isl"], e["osl"], e["points"]) for e in entries] == [
        ("suites/gptoss", "s1", 1024, 1024, 2), ("suites/gptoss", "s1", 1024, 8192, 3),
        ("suites/gptoss", "s1", 8192, 1024, 2),
        ("suites/dsr1", "s1", 1024, 1024, 5), ("suites/dsr1", "s1", 1024, 8192, 5),
        ("suites/dsr1", "s1", 8192, 1024, 5),
        ("suites/smollm2-cpu", "cpu", 128, 64, 3)]
    assert entries[3]["engine"] == "sglang"


def test_smollm2_cpu_gives_one_entry(capsys):
    [entry] = matrix(capsys, "suites/smollm2-cpu")
    assert entry == {"suite": "suites/smollm2-cpu", "name": "smollm2", "stage": "cpu", "engine": "vllm",
                     "isl": 128, "osl": 64, "conc": "1,2,4", "points": 3, "k": "[smollm2-128-64-c"}


def test_isl_osl_filter(capsys):
    entries = matrix(capsys, "suites/gptoss", "suites/dsr1", "--isl-osl", "8192-1024, 1024/1024")
    assert [(e["name"], e["isl"], e["osl"]) for e in entries] == [
        ("gptoss", 1024, 1024), ("gptoss", 8192, 1024), ("dsr1", 1024, 1024), ("dsr1", 8192, 1024)]


def test_conc_replaces_lists_as_pytest_does(capsys):
    entries = matrix(capsys, "suites/gptoss", "--conc", "4,8", "--isl-osl", "1024-8192")
    assert [(e["isl"], e["osl"], e["conc"], e["points"]) for e in entries] == [(1024, 8192, "4,8", 2)]
    assert [e["points"] for e in matrix(capsys, "suites/gptoss", "--conc", "16")] == [1, 1, 1]


def test_stage_two(capsys):
    entries = matrix(capsys, "suites/gptoss", "--stage", "s2")
    assert [(e["stage"], e["isl"], e["osl"], e["conc"]) for e in entries] == [("s2", 8192, 1024, "4,32,128")]


@pytest.mark.parametrize("suite", ["suites/gptoss", "suites/dsr1"])
def test_k_selects_exactly_the_group_among_all_ids(capsys, pytester, suite):
    entries = matrix(capsys, str(REPO / suite))  # absolute: pytester has moved to its own folder
    all_ids = collected_points(pytester, REPO / suite)
    assert len(all_ids) == len(plan_points(load_suite(REPO / suite), PlanOptions()))
    for entry in entries:
        group = [i for i in all_ids if i.startswith(f"{entry['name']}-{entry['isl']}-{entry['osl']}-c")]
        assert collected_points(pytester, REPO / suite, "-k", entry["k"]) == group
        assert len(group) == entry["points"]
    assert sum(e["points"] for e in entries) == len(all_ids)


def _write_suite(root: Path, name: str) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "suite.toml").write_text(f"""\
[suite]
name = "{name}"
model = "org/model"
engine = "vllm"
default_stage = "s1"

[server]
argv = ["true"]

[stages.s1]
workloads = [
  {{ isl = 1024, osl = 1024, conc = [4, 8], prompts_per_conc = 1 }},
  {{ isl = 1024, osl = 10240, conc = [4], prompts_per_conc = 1 }},
  {{ isl = 10240, osl = 1024, conc = [4], prompts_per_conc = 1 }},
  {{ isl = 11024, osl = 1024, conc = [4], prompts_per_conc = 1 }},
]
""", encoding="utf-8")
    (folder / f"test_{name}.py").write_text(TEST_MODULE, encoding="utf-8")


def test_k_does_not_match_confusable_ids(capsys, pytester):
    root = pytester.path
    for name in ("demo", "xdemo"):
        _write_suite(root, name)
    [first, *_] = matrix(capsys, str(root / "demo"))
    assert (first["isl"], first["osl"], first["points"]) == (1024, 1024, 2)
    # The naive expression would also take 1024-10240 and the other suite's points...
    naive = collected_points(pytester, root / "demo", root / "xdemo", "-k", "demo-1024-1024")
    assert "demo-1024-10240-c4" in naive and "xdemo-1024-1024-c4" in naive
    # ...the matrix's does not.
    assert collected_points(pytester, root / "demo", root / "xdemo", "-k", first["k"]) == [
        "demo-1024-1024-c4", "demo-1024-1024-c8"]


@pytest.mark.parametrize("args, words", [
    (["suites/gptoss", "--stage", "s9"], ["no stage 's9'", "s1", "--stage"]),
    (["suites/smollm2-cpu", "--stage", "s1"], ["no stage 's1'", "cpu"]),
    (["suites/gptoss", "--isl-osl", "1024x1024"], ["--isl-osl", "1024-1024,8192-1024"]),
    (["suites/gptoss", "--isl-osl", "1024-1024,1024-1024"], ["twice"]),
    (["suites/gptoss", "--isl-osl", "2048-1024"], ["2048-1024", "choose from 1024-1024,1024-8192,8192-1024"]),
    (["suites/gptoss", "--conc", "4,x"], ["--conc", "not a whole number"]),
    (["suites/gptoss", "--conc", "0"], ["--conc", "at least 1"]),
    (["suites", "--conc", "4"], ["suites: no suite.toml", "suites/gptoss"]),
    (["no/such/dir"], ["no/such/dir: no suite.toml"]),
])
def test_bad_input_exits_2_with_one_line(capsys, args, words):
    err = fails(capsys, *args)
    for word in words:
        assert word in err


def test_malformed_suite_file_is_a_one_line_error(capsys, tmp_path):
    (tmp_path / "suite.toml").write_text("[suite]\nname = \n", encoding="utf-8")
    assert "not valid TOML" in fails(capsys, str(tmp_path))


def test_command_line_entry_point():
    proc = subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.matrix", "suites/smollm2-cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["include"][0]["k"] == "[smollm2-128-64-c"
    bad = subprocess.run([sys.executable, "-m", "pytest_inferencemax.cli.matrix", "suites/gptoss", "--stage", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stdout == "" and "no stage 'nope'" in bad.stderr
