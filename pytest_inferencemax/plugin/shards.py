"""``--shards-out FILE``: the collected tests split into shards, one per server configuration, written as JSON for a
launcher that runs each shard elsewhere (``cli/slurm.py``: one Slurm array task a shard).

A shard is what one xdist worker keeps together (``xdist_groups.server_key``): the points of one recipe and
the accuracy gate of their server. Its ``nodeids`` are pytest's node ids, in the session's order, so that the
shard's own pytest runs exactly them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plugin.plan_text import GATE_ARG, point_of
from pytest_inferencemax.plugin.session import BenchSession
from pytest_inferencemax.plugin.xdist_groups import server_key
from pytest_inferencemax.results.store import write_json_atomic


def shard_plan(bench: BenchSession, items: list[pytest.Item]) -> list[dict[str, Any]]:
    """The shards of ``items``, in the order of their first test: name, suite, stage, variant, recipe key, point
    ids and node ids. Tests that are not points or gates (a suite folder's other tests) go nowhere."""
    shards: dict[str, dict[str, Any]] = {}
    for item in items:
        point = point_of(item)
        if not isinstance(point, Point):
            continue
        key = f"{point.suite}-{server_key(bench, item, point)}"
        shard = shards.setdefault(key, {
            "name": _name(point, shards), "suite": point.suite, "suite_dir": str(Path(item.path).parent),
            "stage": point.stage, "variant": point.variant, "server": key,
            "points": [], "nodeids": []})
        shard["nodeids"].append(item.nodeid)
        if GATE_ARG not in item.callspec.params:
            shard["points"].append(point.id)
    return list(shards.values())


def _name(point: Point, taken: dict[str, dict[str, Any]]) -> str:
    """``gptoss`` (``gptoss-bs32`` on a variant); ``-2``, ``-3`` … when a suite's rules give it several servers
    (e.g. a prefill size by ISL or CONC)."""
    base = point.suite + (f"-{point.variant}" if point.variant else "")
    names = {s["name"] for s in taken.values()}
    n, name = 1, base
    while name in names:
        n += 1
        name = f"{base}-{n}"
    return name


def write_shards(bench: BenchSession, items: list[pytest.Item], path: Path) -> None:
    write_json_atomic(Path(path), {"run_id": bench.settings.run_id, "rootdir": str(bench.rootdir),
                                   "shards": shard_plan(bench, items)})
