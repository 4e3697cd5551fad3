"""Giving a run part of a node's GPUs: what docs/ci.md and README.md tell a user to pass does what they say.

The flags are read out of the documents and run through ``pytest --collect-only`` (from the repository root,
in this process: the ``collect_only`` fixture), whose plan shows each point's TP and each server's GPUs, so the
advice and the behaviour cannot drift apart."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pytest_inferencemax.plan.devices import gpus_per_server
from pytest_inferencemax.plan.values import id_list

ROOT = Path(__file__).resolve().parents[2]
CI_ADVICE = re.compile(r'INFERENCEMAX_PYTEST_ARGS(?:=| --body )"([^"]*)"')
README_EXAMPLE = re.compile(r"^(pytest suites/\S+ [^#\n]*--gpus[^#\n]*?)\s+# one server on GPUs ([\d,]+), TP (\d+)$",
                            re.M)
GPU_LINE = re.compile(r"GPUs per server \((?:HIP|CUDA)_VISIBLE_DEVICES\): server ([\w,]+)$", re.M)


def collect_plan(collect_only, args: list[str], tmp_path: Path) -> str:
    """The plan ``pytest <args> --collect-only`` prints, run from the repository root as a user would."""
    return collect_only(*args, "--results-dir", str(tmp_path)).stdout.str()


def tps(plan: str) -> set[str]:
    return set(re.findall(r", TP (\d+), ", plan))


def ci_gpu_advice() -> list[str]:
    return [flags for flags in CI_ADVICE.findall((ROOT / "docs" / "ci.md").read_text()) if "--gpus" in flags]


def test_docs_ci_gives_gpu_flags():
    assert ci_gpu_advice(), "docs/ci.md no longer shows INFERENCEMAX_PYTEST_ARGS with --gpus: update this test"


@pytest.mark.parametrize("flags", ci_gpu_advice())
def test_the_ci_advice_confines_each_server_to_the_listed_gpus(flags, tmp_path, collect_only):
    args = shlex.split(flags)
    listed = id_list(args[args.index("--gpus") + 1])
    plan = collect_plan(collect_only, ["suites/gptoss", *args], tmp_path)
    shown = GPU_LINE.search(plan)
    assert shown, f"docs/ci.md's INFERENCEMAX_PYTEST_ARGS={flags!r} gives the server no GPUs of its own:\n{plan}"
    assert shown.group(1).split(",") == list(listed)
    assert tps(plan) == {str(len(listed))}
    text = (ROOT / "docs" / "ci.md").read_text()
    assert f"GPUs {','.join(listed)} only" in text and f"TP {len(listed)}" in text  # what the prose says it gives


def test_readme_gpu_examples_do_what_their_comments_say(tmp_path, collect_only):
    examples = README_EXAMPLE.findall((ROOT / "README.md").read_text())
    assert examples, "README.md shows no `pytest suites/... --gpus ...  # one server on GPUs ..., TP N` example"
    for command, gpus, tp in examples:
        plan = collect_plan(collect_only, shlex.split(command)[1:], tmp_path)
        shown = GPU_LINE.search(plan)
        assert shown and shown.group(1) == gpus, f"README's `{command}`:\n{plan}"
        assert tps(plan) == {tp}, command


@pytest.mark.parametrize("per_server, gpus, num_gpus, servers, expected", [
    (None, None, None, None, None),          # nothing asked: servers see every GPU
    (None, None, 4, None, None),             # --num-gpus alone sets the TP, hands out nothing
    (2, ("0", "1", "2", "3"), None, 2, 2),   # --gpus-per-server decides
    (None, ("0", "1", "2", "3"), None, None, 4),  # --gpus 0-3 alone: one server on all four
    (None, tuple(str(i) for i in range(8)), None, 2, 4),  # -n 2 --gpus 0-7: four each
    (None, tuple(str(i) for i in range(8)), 2, None, 2),  # --gpus 0-7 --num-gpus 2: TP 2 on the first two
])
def test_gpus_per_server_defaults_to_a_share_of_the_listed_gpus(per_server, gpus, num_gpus, servers, expected):
    assert gpus_per_server(per_server, gpus, num_gpus, servers) == expected


@pytest.mark.parametrize("gpus, num_gpus, servers, message", [
    (("0", "1", "2"), None, 2, "--gpus 0,1,2 lists 3 GPUs, which 2 servers (-n 2) cannot share equally: list a "
                               "multiple of 2, or pass --gpus-per-server K"),
    (("0", "1", "2", "3"), 8, None, "--gpus 0,1,2,3 lists 4 GPUs, fewer than 1 server(s) x --num-gpus 8: list more "
                                    "GPUs, or pass a smaller --num-gpus or fewer workers (-n)"),
])
def test_a_gpu_list_that_cannot_be_shared_is_refused_with_the_fix(gpus, num_gpus, servers, message):
    with pytest.raises(ValueError) as info:
        gpus_per_server(None, gpus, num_gpus, servers)
    assert str(info.value) == message
