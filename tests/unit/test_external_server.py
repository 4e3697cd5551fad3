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


READY_S, PAUSE_S = 1.0, 0.2  # --server-ready-timeout, and the pause between asks, of the bounded waits below
MAX_ASKS = round(READY_S / PAUSE_S) + 1  # one ask, then one after each pause that ends by the deadline
# the most a bounded wait may take: the deadline, then the last ask's requests (each waits at most max(1 s,
# what is left)); a generous margin for a loaded machine, still far below the default --server-ready-timeout 60
WAIT_BOUND_S = READY_S + 10


@pytest.fixture
def asks(monkeypatch) -> list[tuple[str, float]]:
    """Every GET the readiness check sends, as (path, timeout): the check's asks, counted as events."""
    from pytest_inferencemax.serve import api

    sent: list[tuple[str, float]] = []
    real = api.get

    def get(base_url, path, **kw):
        sent.append((path, kw.get("timeout", 10.0)))
        return real(base_url, path, **kw)

    monkeypatch.setattr(api, "get", get)
    return sent


def test_health_503_is_not_ready_and_the_wait_is_bounded(asks):
    with FaultyServer("unhealthy") as server:
        t0 = time.monotonic()
        with pytest.raises(ServerError, match=rf"not ready after {READY_S:g} s: GET /health answered HTTP 503"):
            check_external(server.base_url, "faulty", ready_timeout=READY_S, pause=PAUSE_S)
        elapsed = time.monotonic() - t0
    assert 2 <= server.health_checks <= MAX_ASKS  # asked again, then gave up at the deadline
    assert [path for path, _ in asks] == ["/health"] * server.health_checks
    assert all(timeout <= max(1.0, READY_S) for _, timeout in asks)  # each request waits at most max(1 s, time left)
    assert elapsed < WAIT_BOUND_S


def test_a_model_the_server_does_not_list_is_refused_at_once_with_the_names_it_lists():
    with FaultyServer("ok") as server:
        t0 = time.monotonic()
        with pytest.raises(ServerError, match=r"does not serve 'smollm2': /v1/models lists 'faulty'"):
            check_external(server.base_url, "smollm2", ready_timeout=30)
        elapsed = time.monotonic() - t0
    assert server.health_checks == 1 and server.peers == []  # refused at the first ask: no completion, no second ask
    assert elapsed < 30 / 2  # not waited for: well within the 30 s it was given


def test_nothing_listening_is_bounded_too(asks):
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="it does not answer"):
        check_external(url, "m", ready_timeout=READY_S, pause=PAUSE_S)
    elapsed = time.monotonic() - t0
    assert 2 <= len(asks) <= MAX_ASKS and {path for path, _ in asks} == {"/health"}  # asked again, then gave up
    assert all(timeout <= max(1.0, READY_S) for _, timeout in asks)
    assert elapsed < WAIT_BOUND_S


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
    assert server.health_checks == 1  # checked once (its default pause, 2 s, outlasts the 1 s), not once per point
    assert elapsed < 10  # the failed points did not wait: --server-ready-timeout 1 s, and room for a loaded machine
    (run,) = tmp_path.iterdir()
    reasons = [f["reason"] for f in json.loads((run / "summary.json").read_text())["failures"]]
    cause = f"the server at {server.base_url} is not ready after 1 s: GET /health answered HTTP 503"
    assert reasons[0].startswith(cause) and all(r.startswith("not retried: " + cause) for r in reasons[1:])
    assert len(reasons) == 3 and "Traceback" not in result.stdout.str()
