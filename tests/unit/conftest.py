"""What every unit test shares: its servers are stand-ins in a thread, never a launched process."""
from __future__ import annotations

import gc
import os
import socket
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_death_grace(monkeypatch):
    """No 3 s watch for a dying server after a point with failed requests.

    ``measure_point`` keeps asking the server's ``death_reason`` for ``DEATH_GRACE_S`` after such a point
    (a launched process may take a moment to be seen as gone). A unit test's server is a stand-in given by
    URL, whose ``death_reason`` is always None: the watch cannot find anything and only cost 3 s per failed
    point (6 s for two rounds). The watch itself is exercised where a launched server really dies
    (tests/e2e/test_server_lifecycle.py)."""
    monkeypatch.setattr("pytest_inferencemax.measure.runner.DEATH_GRACE_S", 0.0)


class _YoungGenerationCollect:
    """The ``gc`` module as ``run_load`` sees it in unit tests: ``collect()`` collects the young generation only;
    ``freeze``/``unfreeze`` and the rest are the real ones."""

    def __getattr__(self, name: str):
        return getattr(gc, name)

    @staticmethod
    def collect(generation: int = 2) -> int:
        return gc.collect(0)


@pytest.fixture(autouse=True)
def _no_full_collection_before_each_timed_run(monkeypatch):
    """No full garbage collection before each timed run (0.3-0.4 s each here, some 12 s a session).

    ``run_load`` calls ``gc.collect()`` and ``gc.freeze()`` before its timed run, so that the collector's pauses
    stay out of the timestamps. This process holds transformers, lm-eval and matplotlib by then: a full collection
    walks every one of its objects. ``gc.freeze()`` still moves every object out of the collector's reach, so the timed
    run sees the same collector as before; what a unit test checks never depends on the garbage freed first."""
    monkeypatch.setattr("pytest_inferencemax.measure.loadgen.gc", _YoungGenerationCollect())


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def collect_only(pytester, monkeypatch):
    """``pytest ARGS --collect-only`` run as a user runs it (from the repository root, or ``cwd``), in this process.

    What it shows is collection alone (the plan, the selected ids), which needs no process of its own: pytest's
    own in-process run (``pytester``) reads the same rootdir, ini, conftest and plugin entry point as
    ``python -m pytest`` would, without a second interpreter's 1-2 s of imports. The run's pytest
    and plugin settings from the environment (``PYTEST_ADDOPTS``, ``INFERENCEMAX_*``) are left out."""
    def run(*args: str, cwd: Path = REPO) -> pytest.RunResult:
        for name in [n for n in os.environ if n.startswith(("PYTEST_ADDOPTS", "INFERENCEMAX"))]:
            monkeypatch.delenv(name)
        monkeypatch.chdir(cwd)
        result = pytester.runpytest_inprocess(*args, "--collect-only", "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines[-60:] + result.errlines[-60:])
        return result

    return run


@pytest.fixture(scope="session")
def smollm2_auto_tokenizer(smollm2_model):
    """SmolLM2's tokenizer through transformers' AutoTokenizer, loaded once for every module that compares with it
    or builds workloads with it (tests only encode and decode with it). ``local_files_only``: offline for this
    call alone; setting HF_HUB_OFFLINE around the first import of huggingface_hub would keep it offline for the
    rest of the session (its constants are read at import), which the hub tests of test_wikitext_task.py notice."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_model), local_files_only=True)


# -- the submission tests' environment (test_submission.py, test_submit_verdicts.py, test_space_signature.py) -----
@pytest.fixture
def submission_env(monkeypatch):
    """No HF token and no leaderboard override from the environment running the tests."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("LB_URL_OVERRIDE", raising=False)


@pytest.fixture
def loopback_dns(monkeypatch):
    """No name but the loopback resolves: the real Spaces' URLs in these tests are never reached."""
    resolve = socket.getaddrinfo

    def loopback_only(host, *args, **kw):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: offline in unit tests")
        return resolve(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
