"""--server-url: a server someone else runs is checked once, within --server-ready-timeout, and
what cannot be fixed by waiting is refused at once."""
from __future__ import annotations

import json
import time

import pytest

from e2e_support import MODELS_DIR, SUITE_TEST, mini_suite_toml
from faulty_server import FaultyServer
from pytest_inferencemax.serve.server import ServerError, check_external, free_port


def test_a_ready_server_passes():
    with FaultyServer("ok") as server:
        assert check_external(server.base_url, "faulty", ready_timeout=5).base_url == server.base_url


def test_health_503_is_not_ready_and_the_wait_is_bounded():
    with FaultyServer("unhealthy") as server:
        t0 = time.monotonic()
        with pytest.raises(ServerError, match=r"not ready after 1 s: GET /health answered HTTP 503"):
            check_external(server.base_url, "faulty", ready_timeout=1, pause=0.2)
        assert time.monotonic() - t0 < 3 and server.health_checks >= 2  # asked again, then gave up


def test_a_model_the_server_does_not_list_is_refused_at_once_with_the_names_it_lists():
    with FaultyServer("ok") as server:
        t0 = time.monotonic()
        with pytest.raises(ServerError, match=r"does not serve 'smollm2': /v1/models lists 'faulty'"):
            check_external(server.base_url, "smollm2", ready_timeout=30)
        assert time.monotonic() - t0 < 2


def test_nothing_listening_is_bounded_too():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="it does not answer"):
        check_external(url, "m", ready_timeout=1, pause=0.2)
    assert time.monotonic() - t0 < 3


def test_a_server_that_is_not_ready_fails_every_point_at_once_with_the_cause(pytester, tmp_path):
    d = pytester.mkdir("mini")
    (d / "suite.toml").write_text(mini_suite_toml("{ isl = 16, osl = 4, conc = [1, 2, 4], prompts_per_conc = 1 }"))
    (d / "test_mini.py").write_text(SUITE_TEST)
    with FaultyServer("unhealthy") as server:
        t0 = time.monotonic()
        result = pytester.runpytest_inprocess(
            "mini", "--server-url", server.base_url, "--served-model-name", "faulty", "--skip-accuracy",
            "--server-ready-timeout", "1", "--models-dir", str(MODELS_DIR), "--results-dir", str(tmp_path),
            "-p", "no:cacheprovider")
        elapsed = time.monotonic() - t0
    result.assert_outcomes(failed=3)
    assert elapsed < 10  # checked once (about 1 s), not once per point
    (run,) = tmp_path.iterdir()
    reasons = [f["reason"] for f in json.loads((run / "summary.json").read_text())["failures"]]
    cause = f"the server at {server.base_url} is not ready after 1 s: GET /health answered HTTP 503"
    assert reasons[0].startswith(cause) and all(r.startswith("not retried: " + cause) for r in reasons[1:])
    assert len(reasons) == 3 and "Traceback" not in result.stdout.str()
