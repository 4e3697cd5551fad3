"""The calibration server (benchmarks/calibration_server.py) for tests: a server process that records
when it sent each token, so the client's figures can be checked against the truth."""
from __future__ import annotations

import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from calibration_server import running as calibration_server  # noqa: E402,F401  (re-exported for the tests)
from pytest_inferencemax.measure.workload import RequestSpec  # noqa: E402


def specs(n: int, osl: int) -> list[RequestSpec]:
    """``n`` requests of a 4-word prompt asking ``osl`` tokens."""
    return [RequestSpec(prompt="one two three four", prompt_len=4, output_len=osl, target_prompt_len=4)
            for _ in range(n)]


def truth(base: str) -> dict:
    """What the server recorded for each request (its send stamps), by request."""
    return requests.get(base + "/calibration/truth", timeout=5).json()["requests"]
