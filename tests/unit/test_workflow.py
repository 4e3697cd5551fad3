"""The GitHub Actions workflow (.github/workflows/inferencemax.yml): lint and structure.

actionlint (the ``test`` extra installs it beside the interpreter) must pass on the workflow and
must fail on broken copies of it, so a passing lint means something. The structural checks pin
what docs/ci.md promises: the triggers and inputs, the matrix from the plan job, reports and
artifacts even after a failure, one merge through ``python -m pytest_inferencemax.cli.merge``, and
secrets and inputs reaching scripts only through ``env:``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_inferencemax.cli.matrix import build_matrix

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "inferencemax.yml"
INPUTS = {"suite", "isl_osl", "conc", "stage", "team", "submit", "runner_labels"}


def actionlint() -> str:
    """The actionlint binary next to this interpreter, or on PATH; fail (never skip) without it."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: install the test extra, pip install -e \".[test]\" "
                    "(or run bash scripts/setup.sh)")
    return found


def lint(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", "-oneline", str(path)], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def step_using(workflow: dict[str, Any], job: str, action: str) -> dict[str, Any]:
    [step] = [s for s in steps(workflow, job) if s.get("uses", "").startswith(action + "@")]
    return step


def step_running(workflow: dict[str, Any], job: str, text: str) -> dict[str, Any]:
    [step] = [s for s in steps(workflow, job) if text in s.get("run", "")]
    return step


def walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) pair of the document, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- lint -------------------------------------------------------------------------------------


# --- structure --------------------------------------------------------------------------------


def test_triggers_dispatch_inputs_and_nightly_schedule(workflow):
    on = triggers(workflow)
    inputs = on["workflow_dispatch"]["inputs"]
    assert INPUTS <= set(inputs)
    assert inputs["submit"]["type"] == "boolean" and inputs["submit"]["default"] is False
    labels = json.loads(inputs["runner_labels"]["default"])
    assert isinstance(labels, list) and "self-hosted" in labels
    [schedule] = on["schedule"]
    assert len(schedule["cron"].split()) == 5


def test_sweep_matrix_comes_from_the_plan_job(workflow):
    jobs = workflow["jobs"]
    assert "python -m pytest_inferencemax.cli.matrix" in step_running(workflow, "plan", "pytest_inferencemax.cli.matrix")["run"]
    assert jobs["plan"]["outputs"]["matrix"].startswith("${{ steps.")
    sweep = jobs["sweep"]
    assert sweep["needs"] == "plan" or "plan" in sweep["needs"]
    assert sweep["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert sweep["strategy"]["fail-fast"] is False
    runs_on = sweep["runs-on"]
    for part in ("fromJSON(", "inputs.runner_labels", "vars.INFERENCEMAX_RUNNER_LABELS", "self-hosted"):
        assert part in runs_on
    default_minutes = re.search(r"'(\d+)'", str(sweep["timeout-minutes"]))
    assert default_minutes and int(default_minutes.group(1)) >= 360, "give the sweep jobs hours, not minutes"


def test_matrix_fields_the_workflow_reads_are_the_cli_s(workflow):
    used = set(re.findall(r"\bmatrix\.([A-Za-z_]+)", WORKFLOW.read_text(encoding="utf-8")))
    entry = build_matrix([str(REPO / "suites" / "gptoss")])["include"][0]
    assert used and used <= set(entry), f"the workflow reads matrix fields the CLI does not give: {used - set(entry)}"


def test_sweep_runs_pytest_with_results_run_id_and_junit(workflow):
    step = step_running(workflow, "sweep", '-m pytest "$SUITE"')
    for part in ('-k "$K"', "--results-dir results", '--run-id "$RUN_ID"', "--junitxml", "--stage", "--conc"):
        assert part in step["run"]
    assert step["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert step["env"]["K"] == "${{ matrix.k }}" and step["env"]["SUITE"] == "${{ matrix.suite }}"
    assert "github.run_id" in workflow["jobs"]["sweep"]["env"]["RUN_ID"]


def test_sweep_reports_and_uploads_even_after_a_failure(workflow):
    summary = step_running(workflow, "sweep", "GITHUB_STEP_SUMMARY")
    assert "always()" in summary["if"] and "report.md" in summary["run"]
    upload = step_using(workflow, "sweep", "actions/upload-artifact")
    assert "always()" in upload["if"]
    assert "matrix.name" in upload["with"]["name"] and "matrix.isl" in upload["with"]["name"]
    assert "results/" in upload["with"]["path"] and "junit" in upload["with"]["path"]


def test_merge_job_merges_every_run_and_submits_only_when_asked(workflow):
    merge = workflow["jobs"]["merge"]
    assert "sweep" in merge["needs"] and "always()" in merge["if"]
    download = step_using(workflow, "merge", "actions/download-artifact")
    assert download["with"]["merge-multiple"] is False
    assert download["with"]["pattern"].rstrip("*") in step_using(workflow, "sweep", "actions/upload-artifact")["with"]["name"]
    step = step_running(workflow, "merge", "-m pytest_inferencemax.cli.merge")
    assert "python -m pytest_inferencemax.cli.merge" in step["run"] and "--out merged" in step["run"]
    assert "--submit-team" in step["run"]
    assert "inputs.submit" in step["env"]["SUBMIT"] and step["env"]["TEAM"] == "${{ inputs.team }}"
    summary = step_running(workflow, "merge", "GITHUB_STEP_SUMMARY")
    assert "always()" in summary["if"] and "merged/report.md" in summary["run"]
    assert "always()" in step_using(workflow, "merge", "actions/upload-artifact")["if"]
    # Nothing else submits: the sweep jobs never get a team.
    assert "--submit" not in json.dumps(workflow["jobs"]["sweep"]) and "inputs.team" not in json.dumps(workflow["jobs"]["sweep"])


def test_slurm_dispatch_runs_the_launcher_instead_of_the_matrix(workflow):
    jobs = workflow["jobs"]
    dispatch = triggers(workflow)["workflow_dispatch"]["inputs"]["dispatch"]
    assert dispatch["options"] == ["matrix", "slurm"] and dispatch["default"] == "matrix"
    assert "inputs.dispatch != 'slurm'" in jobs["plan"]["if"]  # sweep and merge need the plan: skipped with it
    assert jobs["slurm"]["if"] == "github.event_name == 'workflow_dispatch' && inputs.dispatch == 'slurm'"
    step = step_running(workflow, "slurm", "-m pytest_inferencemax.cli.slurm")
    assert '--run-id "$RUN_ID"' in step["run"] and '--submit-team "$TEAM"' in step["run"]
    assert step["run"].index("-m pytest_inferencemax.cli.slurm") < step["run"].index(" -- ")  # pytest's after --
    assert step["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert "always()" in step_using(workflow, "slurm", "actions/upload-artifact")["if"]


def test_hf_token_comes_only_from_secrets(workflow):
    tokens = [value for key, value in walk(workflow) if key == "HF_TOKEN"]
    assert tokens and all(value == "${{ secrets.HF_TOKEN }}" for value in tokens)
    assert "HF_TOKEN" not in json.dumps(triggers(workflow))


def test_scripts_get_inputs_and_secrets_only_through_env(workflow):
    for job, spec in workflow["jobs"].items():
        for step in spec["steps"]:
            assert "${{" not in step.get("run", ""), f"{job}: {step.get('name')}: pass values through env:"


def test_actions_pinned_by_major_version(workflow):
    used = [value for key, value in walk(workflow) if key == "uses"]
    assert used
    for ref in used:
        assert re.fullmatch(r"actions/[a-z-]+@v\d+", ref), ref
    assert {"actions/upload-artifact@v4", "actions/download-artifact@v4"} <= set(used)


def test_one_sweep_at_a_time_per_runner_pool(workflow):
    concurrency = workflow["concurrency"]
    assert "runner_labels" in concurrency["group"] and concurrency["cancel-in-progress"] is False


def test_container_has_the_seed_s_devices(workflow):
    container = workflow["jobs"]["sweep"]["container"]
    for flag in ("--device=/dev/kfd", "--device=/dev/dri", "--ipc=host", "--shm-size=16g"):
        assert flag in container["options"]
    assert any(":/inferencemax-cache/huggingface" in v for v in container["volumes"])
    assert "rocm/7.0:rocm7.0_ubuntu_22.04_vllm_0.10.1_instinct_20250927_rc1" in WORKFLOW.read_text(encoding="utf-8")


def test_actionlint_passes():
    proc = lint(WORKFLOW, REPO)
    assert proc.returncode == 0, f"actionlint found problems:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("old, new, complaint", [
    ("needs: [plan, sweep]", "needs: [plan, sweeep]", "sweeep"),
    ("${{ fromJSON(needs.plan.outputs.matrix) }}", "${{ fromJSON(needs.plan.outputs.matrix }}", "[expression]"),
    ("${{ matrix.k }}", "${{ matrixx.k }}", "matrixx"),
    ("actions/upload-artifact@v4\n        with:\n          name: inferencemax-run",
     "actions/upload-artifact@v4\n        with:\n          nmae: inferencemax-run", "nmae"),
])
def test_actionlint_rejects_a_broken_copy(tmp_path, old, new, complaint):
    text = WORKFLOW.read_text(encoding="utf-8")
    assert old in text, f"the workflow no longer contains {old!r}: update this test"
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    proc = lint(broken, tmp_path)
    assert proc.returncode != 0, "actionlint accepted a broken workflow"
    assert complaint in proc.stdout, proc.stdout + proc.stderr
