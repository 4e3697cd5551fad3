"""A launched server that never becomes ready fails its start within --server-start-timeout, with the
cause and the log's tail, and leaves no process behind (docs/faults.md)."""
from __future__ import annotations

import sys
import time
import uuid

import pytest

from e2e_support import pids_with_arg
from pytest_inferencemax.errors import ServerError
from pytest_inferencemax.plan.recipe import Recipe
from pytest_inferencemax.progress import StreamProgress
from pytest_inferencemax.serve.server import ServerPool

# a process that runs and logs but never listens: /health is never answered
NEVER_READY = "import time; print('loading weights...', flush=True); time.sleep(600)  # {tag}"


def test_a_server_that_never_becomes_ready_fails_within_the_start_timeout(tmp_path):
    tag = f"never-ready-{uuid.uuid4().hex}"
    recipe = Recipe(suite="t", engine="vllm", argv=(sys.executable, "-c", NEVER_READY.format(tag=tag)), env=(), files=(),
                    files_dir=tmp_path / "files", health_path="/health", host="127.0.0.1")
    pool = ServerPool(log_dir=tmp_path, progress=StreamProgress(quiet=True), start_timeout=2, stop_grace=5)
    t0 = time.monotonic()
    with pytest.raises(ServerError) as info:
        pool.acquire(recipe, "m")
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert message.startswith("the server was not ready within 2 s (/health does not answer 2xx yet); raise "
                              "--server-start-timeout if it is still compiling")
    assert "loading weights..." in message  # the log's tail
    assert elapsed < 15  # 2 s, then the SIGTERM of a process that obeys it
    assert pids_with_arg(tag) == []  # stopped: nothing left
    with pytest.raises(ServerError, match="not retried: this server configuration failed to start earlier"):
        pool.acquire(recipe, "m")
