"""Golden tests: our suites' recipes render exactly what the bounty's launch scripts run.

The goldens in tests/golden/recipes/ were produced by running the original launch scripts
(danielhua23/amdgpu_inferencemax_bounty, stage 1 at 9f4fc0d, stage 2 at 56dc686) with fake
``vllm``/``python3`` executables that record argv, the variables the script exported and the
``--config`` file; see tests/golden/regenerate.md. Nothing is run here: the tests only render
our recipes and compare.

Comparisons are exact. The one mapping: the vLLM scripts write ``/tmp/vllm_config.yaml`` and
pass that path, whereas our recipe writes the file into ``${files_dir}``; each golden's
``metadata.path_map`` names that path, the argv is compared with it substituted, and the file
contents are compared byte for byte (no whitespace normalisation: the heredoc's trailing
space and newline must be in our file too).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_inferencemax.plan.points import PlanOptions, plan_points
from pytest_inferencemax.plan.recipe import RecipeContext, render_recipe, resolve_model
from pytest_inferencemax.plan.suite import load_suite

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "recipes"
PORT = 8888  # the placeholder port the goldens were generated with
SUITES_STAGES = [("gptoss", "s1"), ("gptoss", "s2"), ("dsr1", "s1"), ("dsr1", "s2")]


def _golden(suite_name: str, stage: str) -> dict:
    path = GOLDEN_DIR / f"{suite_name}-{stage}.json"
    if not path.exists():
        pytest.fail(f"no golden file {path.relative_to(REPO)}; regenerate (tests/golden/regenerate.md)")
    return json.loads(path.read_text(encoding="utf-8"))


def _cases():
    for suite_name, stage in SUITES_STAGES:
        suite = load_suite(REPO / "suites" / suite_name)
        for point in plan_points(suite, PlanOptions(stage=stage)):
            yield pytest.param(suite_name, stage, point.id, id=f"{stage}-{point.id}")


@pytest.fixture(scope="module")
def suites():
    return {name: load_suite(REPO / "suites" / name) for name in {s for s, _ in SUITES_STAGES}}


def _ctx(suite, tmp_path: Path, stage: str | None = None) -> RecipeContext:
    model = resolve_model(suite, tmp_path / "models", None, stage)
    return RecipeContext(model=model, served_model_name=model, tokenizer=model,
                         files_dir=tmp_path / "files", models_dir=tmp_path / "models", host="127.0.0.1")


def _map_path(value: str, path_map: dict[str, str], files_dir: Path) -> str:
    """The script's hard-coded path -> where our recipe puts the same file."""
    for script_path, ours in path_map.items():
        value = value.replace(script_path, ours.replace("${files_dir}", str(files_dir)))
    return value


@pytest.mark.parametrize("suite_name, stage, point_id", list(_cases()))
def test_recipe_matches_script(suites, tmp_path, suite_name, stage, point_id):
    suite = suites[suite_name]
    golden = _golden(suite_name, stage)
    assert point_id in golden["points"], (
        f"{suite_name} {stage}: no golden for planned point {point_id}; regenerate (tests/golden/regenerate.md)")
    expected = golden["points"][point_id]
    path_map = golden["metadata"]["path_map"]
    (point,) = [p for p in plan_points(suite, PlanOptions(stage=stage)) if p.id == point_id]
    ctx = _ctx(suite, tmp_path, stage)
    recipe = render_recipe(suite, point, ctx)

    assert recipe.command(PORT) == [_map_path(a, path_map, ctx.files_dir) for a in expected["argv"]]
    assert recipe.environment(PORT) == expected["env"]
    ours_files = {str(ctx.files_dir / name): content for name, content in recipe.files}
    script_files = {_map_path(p, path_map, ctx.files_dir): c for p, c in expected["files"].items()}
    assert ours_files == script_files


@pytest.mark.parametrize("suite_name, stage", SUITES_STAGES, ids=[f"{s}-{t}" for s, t in SUITES_STAGES])
def test_golden_covers_exactly_the_planned_points(suites, suite_name, stage):
    golden = _golden(suite_name, stage)
    planned = [p.id for p in plan_points(suites[suite_name], PlanOptions(stage=stage))]
    assert sorted(golden["points"]) == sorted(planned), "stale golden: regenerate (tests/golden/regenerate.md)"
    meta = golden["metadata"]
    assert (meta["suite"], meta["stage"]) == (suite_name, stage)
    # The goldens were generated with the model our suite uses for the stage (see metadata.model_note).
    model = suites[suite_name].stage(stage)[1].model or suites[suite_name].suite.model
    assert all(p["inputs"]["MODEL"] == model for p in golden["points"].values())
    assert all(p["inputs"]["PORT"] == str(PORT) for p in golden["points"].values())
