"""Hooks pytest-inferencemax calls, so teams extend it from a conftest.py without forking."""
from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_inferencemax_record(point: Any, record: dict[str, Any]) -> dict[str, Any] | None:
    """Return fields to add to (or replace in) a point's result JSON before it is written.

    Called once per finished point; ``point`` is a :class:`pytest_inferencemax.plan.points.Point`.
    Every implementation's dict is merged, in hook order. Use it for machine info, a
    kernel version, a change id: whatever your team needs to find the run again.
    """


@pytest.hookspec
def pytest_inferencemax_manifest(manifest: dict[str, Any]) -> None:
    """Add entries to the run manifest (``manifest.json``) by setting keys of ``manifest``.

    Called once at the end of a session that ran points, before the manifest is written: the
    place for a team's machine info (BIOS, firmware, driver and kernel versions, a change id).
    """


@pytest.hookspec
def pytest_inferencemax_round(point: Any, round: int) -> None:
    """Called before each round of a point run with ``--repeat`` (``round`` counts from 1).

    For what must change between rounds: a log marker, a cache to drop, a server setting to reset.
    """
