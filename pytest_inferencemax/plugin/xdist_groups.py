"""pytest-xdist: one results folder for every worker, and a server configuration's points on one worker.

With ``-n N`` the plugin asks for ``--dist loadgroup`` (``hooks.pytest_cmdline_main``; its workers are told in
their ``workerinput``, as they parse the command line again) and gives each point its
server configuration as its ``xdist_group``: a worker then starts each server once, and no two workers start the
same one. xdist reads the groups by appending them to each item's id; pytest 9.2 keeps ids elsewhere, and xdist
3.8's groups are then silently ignored (``groups_ignored`` says so)."""
from __future__ import annotations

from typing import Any

import pytest
from _pytest.nodes import Node

from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plugin.plan_text import point_of
from pytest_inferencemax.plugin.session import BenchSession
from pytest_inferencemax.errors import ConfigError


def server_key(bench: BenchSession, item: pytest.Item, point: Point) -> str:
    """The point's server configuration: its recipe's key, or "external" under --server-url."""
    suite = bench.catalog.suite_of(item.path)
    return "external" if bench.settings.server_url or suite is None else bench.catalog.recipe(suite, point).key


def groups_ignored(config: pytest.Config) -> str | None:
    """Why this pytest and xdist ignore ``xdist_group`` (None when they honour it, or when no groups are asked for):
    xdist appends a test's group to ``item._nodeid``, which pytest 9.2 no longer has."""
    if config.getoption("dist", "no") != "loadgroup" or "_nodeid" in getattr(Node, "__slots__", ("_nodeid",)):
        return None
    return (f"inferencemax: this pytest ({pytest.__version__}) ignores pytest-xdist's groups: a server "
            "configuration's points may go to several workers, each starting that server; "
            "pip install 'pytest<9.2' keeps them on one")


class XdistHooks:
    """Hooks that exist only when pytest-xdist is installed."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["inferencemax_run_id"] = self.bench.settings.run_id  # one results folder
        # a worker parses the command line again: a --dist the plugin chose (not typed) reaches it only this way
        node.workerinput["inferencemax_dist"] = node.config.getoption("dist", "no")

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Each point's server configuration as its ``xdist_group``, so that ``--dist loadgroup`` keeps a
        configuration's points on one worker. First of all: xdist's worker reads the marks in its own hook, which
        pytest calls before this module's (its plugin is registered later). On a worker, xdist reads whether to
        group from the command line it parsed (``loadgroup``): the plugin's own choice of ``--dist`` is set here."""
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and workerinput.get("inferencemax_dist") == "loadgroup":
            config.option.loadgroup = True
        for item in items:
            point = point_of(item)
            if isinstance(point, Point):  # not a stage's empty list (NOTSET): refused below as a usage error
                try:
                    key = server_key(self.bench, item, point)
                except ConfigError:  # refused by hooks.pytest_collection_modifyitems, as a usage error
                    return
                item.add_marker(pytest.mark.xdist_group(name=f"{point.suite}-{key}"))
