"""pytest-inferencemax's pytest hooks: a thin layer over :class:`BenchSession` (``session.py``).

Registered through the ``pytest11`` entry point. Suite directories hold a ``suite.toml`` and
a test module whose tests take the ``inferencemax_point`` parameter: one test per point. The
``inferencemax`` fixture lives in ``fixture.py``, the ``--collect-only`` plan in ``plan_text.py``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_inferencemax.errors import ConfigError, ResultsWriteError
from pytest_inferencemax.plugin import hookspecs
from pytest_inferencemax.plugin.fixture import FAILURE, PRUNED, RECORD, inferencemax  # noqa: F401  (the fixture)
from pytest_inferencemax.plugin.compare_to import check_compare_to
from pytest_inferencemax.plugin.failure_report import FailureReports
from pytest_inferencemax.plugin.options import Settings, add_options
from pytest_inferencemax.plugin.plan_text import GATE_ARG, POINT_ARG, plan_lines, point_of, variant_lines
from pytest_inferencemax.plugin.session import SESSION, BenchSession
from pytest_inferencemax.plugin.shards import write_shards
from pytest_inferencemax.plugin.signals import EndLikeCtrlC, ignored_signals, ignored_signals_line
from pytest_inferencemax.plugin.terminal_summary import quiet_lines
from pytest_inferencemax.plugin.xdist_groups import XdistHooks, groups_ignored, server_key
from pytest_inferencemax.plan.devices import gpus_per_server
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import SUITE_FILE, SuiteError
from pytest_inferencemax.progress import StreamProgress
from pytest_inferencemax.serve.server import port_in_use
from pytest_inferencemax.publish.finish import FinishedRun, SubmitOptions, finish_run
from pytest_inferencemax.results.compare import CompareError
from pytest_inferencemax.results.store import check_writable
from pytest_inferencemax.results.summary import Interruption, failed_groups, summary_lines, write_summary

FINISHED = pytest.StashKey[FinishedRun]()
ITEMS_ORDERED = pytest.StashKey[bool]()  # pytest_collection_modifyitems finished (no usage error)
INTERRUPTION = pytest.StashKey[Interruption | None]()
USAGE_ERROR = pytest.StashKey[str]()  # refused while collecting: raised again before pytest lists what it collected
_SIGNAL_HANDLERS: dict[pytest.Config, EndLikeCtrlC] = {}  # restored at pytest_unconfigure
# configuration errors found while collecting, per pytest config: refused together as a usage error
CONFIG_ERRORS: dict[pytest.Config, list[str]] = {}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "inferencemax_point: one benchmark point of a suite (added automatically)")
    config.addinivalue_line("markers", "inferencemax_gate: the accuracy gate of one server (added automatically)")
    settings = Settings.from_config(config)
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    progress = StreamProgress(
        quiet=config.get_verbosity() < 0, interval=settings.progress_interval,
        tty=bool(getattr(reporter, "isatty", False)),
        uncaptured=capman.global_and_fixture_disabled if capman is not None else None)
    workers = getattr(config.option, "numprocesses", None)
    workers = workers if isinstance(workers, int) else getattr(config, "workerinput", {}).get("workercount")
    try:  # a --gpus list alone confines the servers to it: each gets its share (plan/devices.py)
        settings = replace(settings, gpus_per_server=gpus_per_server(settings.gpus_per_server, settings.gpus,
                                                                     settings.num_gpus, workers))
        bench = BenchSession.create(settings, progress, Path(config.rootpath),
                                    workerid=getattr(config, "workerinput", {}).get("workerid"), workers=workers)
        if settings.compare_to:  # read here too: under xdist only the controller turns a usage error into one line
            bench.catalog.compared_run()
    except (ValueError, CompareError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION] = bench
    ignored = ignored_signals()
    _SIGNAL_HANDLERS[config] = EndLikeCtrlC(bench.points.note_interruption)
    if ignored and not hasattr(config, "workerinput"):  # said once, by the process the user started
        progress.line(ignored_signals_line(ignored))
    config.pluginmanager.register(ReportCollector(bench), "inferencemax-reports")
    config.pluginmanager.register(FailureReports(), "inferencemax-failure-reports")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(bench), "inferencemax-xdist")
        if (problem := groups_ignored(config)) and not hasattr(config, "workerinput"):
            progress.line(problem)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """With ``-n N`` and no ``--dist``, keep each server configuration's points on one worker. With ``-q``,
    pytest-benchmark's table is left out too (``--benchmark-quiet``; ``--benchmark-verbose`` brings it back):
    the plugin's own lines say what the run gave."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"
    if config.get_verbosity() < 0 and hasattr(config.option, "benchmark_quiet"):
        config.option.benchmark_quiet = True


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    for config in list(_SIGNAL_HANDLERS):
        bench = config.stash.get(SESSION, None)
        if bench is not None and bench.points.interrupted_by is None:
            bench.points.interrupted_by = "Ctrl-C"


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count the points -k or -m left out, so that an interruption does not call them "not run"."""
    for item in items:
        bench = item.config.stash.get(SESSION, None)
        if bench is not None and isinstance(point_of(item), Point) and POINT_ARG in item.callspec.params:
            bench.points.deselected += 1


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Once a suite was refused (``CONFIG_ERRORS``: a usage error at the end of collection), collected tests are
    dropped before pytest counts or lists them (``test_point[NOTSET]``, "2 tests collected")."""
    items = [x for x in report.result if isinstance(x, pytest.Item)]
    if items and CONFIG_ERRORS.get(items[0].config):
        report.result[:] = [x for x in report.result if not isinstance(x, pytest.Item)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    if (error := session.config.stash.get(USAGE_ERROR, None)) is not None:
        # before pytest's own hook lists the items (``test_point[NOTSET]``, "2 tests collected"): the error alone
        raise pytest.UsageError(error)
    bench = session.config.stash.get(SESSION, None)
    if bench is not None:
        bench.points.planned = [p.id for item in session.items
                                if isinstance(p := point_of(item), Point) and POINT_ARG in item.callspec.params]
        # (pytest calls this hook even when collection failed: then its usage error stands alone)
        if bench.settings.shards_out and session.config.stash.get(ITEMS_ORDERED, False):
            write_shards(bench, session.items, Path(bench.settings.shards_out))
        if session.config.stash.get(ITEMS_ORDERED, False) and not session.config.option.collectonly:
            check_compare_to(bench, session.items)  # --compare-to: readable, and measuring what these points measure
            _check_gate_access(bench, session.items)


def _check_gate_access(bench: BenchSession, items: list[pytest.Item]) -> None:
    """The gates of the selected tests' stages can have what they take from the Hugging Face hub (a gated
    tokenizer, a dataset) before any server starts; else a usage error (exit code 4) says what is missing."""
    checked: set[tuple[Path, str]] = set()
    try:
        for item in items:
            point, suite = point_of(item), bench.catalog.suite_of(item.path)
            if not isinstance(point, Point) or suite is None or (suite.path, point.stage) in checked:
                continue
            checked.add((suite.path, point.stage))
            bench.catalog.check_tokenizer(suite)
            bench.gates.check_gate_access(suite, point)
    except ConfigError as exc:  # naming a folder in ${models_dir}: where that came from
        raise pytest.UsageError(bench.settings.explain(str(exc))) from None


def _session(config: pytest.Config) -> BenchSession:
    return config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    arg = next((a for a in (POINT_ARG, GATE_ARG) if a in metafunc.fixturenames), None)
    if arg is None:
        return
    session = _session(metafunc.config)
    try:
        params = _params(session, metafunc.definition.path, arg)
    except ConfigError as exc:
        # A bad suite, stage table, baseline or option: no test of this file runs, and the session
        # ends as a usage error (exit code 4) with this one line (pytest_collection_modifyitems).
        CONFIG_ERRORS.setdefault(metafunc.config, []).append(str(exc))
        params = []
    metafunc.parametrize(arg, params)


def _params(session: BenchSession, path: Path, arg: str) -> list[Any]:
    suite = session.catalog.suite_of(path)  # loads the suite and checks every stage's tables
    if suite is None:
        raise SuiteError(f"{path}: a test taking {arg} needs a {SUITE_FILE} in the same directory")
    points = session.catalog.plan(suite)
    if arg == POINT_ARG:
        return [pytest.param(p, id=p.id, marks=pytest.mark.inferencemax_point) for p in points]
    groups = session.catalog.server_groups(suite, points)  # first point of each server configuration
    for point in groups:
        session.catalog.gate_spec(suite, point.stage)
    return [pytest.param(p, id=f"{suite.name}-accuracy" + _gate_tail(p, n), marks=pytest.mark.inferencemax_gate)
            for n, p in enumerate(groups)]


def _gate_tail(point: Point, n: int) -> str:
    """The gate's id after ``<suite>-accuracy``: its variant's name; else, after the first, its first point."""
    if point.variant:
        return f"-{point.variant}"
    return f"-{point.isl}-{point.osl}-c{point.conc}" if n else ""


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep points that share a server configuration together, so it restarts only when it must; refuse what
    collection found wrong (a usage error, exit code 4, raised again in pytest_collection_finish)."""
    config.stash[ITEMS_ORDERED] = False
    try:
        _order_items(config, items)
    except pytest.UsageError as exc:
        config.stash[USAGE_ERROR] = str(exc)
        raise
    config.stash[ITEMS_ORDERED] = True


def _order_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    if errors := CONFIG_ERRORS.pop(config, None):
        raise pytest.UsageError("\n".join(dict.fromkeys(errors)))
    bench = _session(config)
    if not config.option.collectonly:
        _check_ports(bench, config)
        _check_results_dir(bench, items)
    first_seen: dict[tuple[str, str], int] = {}

    def order(item: pytest.Item) -> tuple[int, int]:
        point = point_of(item)
        if point is None:
            return (-1, 0)
        key = (str(item.path.parent), server_key(bench, item, point))
        gate_last = 0 if GATE_ARG in item.callspec.params else 1  # the gate first
        return (first_seen.setdefault(key, len(first_seen)), gate_last)

    try:
        items.sort(key=order)  # stable: file order within a group
    except ConfigError as exc:  # a recipe that cannot be rendered
        raise pytest.UsageError(str(exc)) from None


def _check_ports(bench: BenchSession, config: pytest.Config) -> None:
    """A fixed --port that something already listens on is refused before any server starts."""
    s = bench.settings
    if not s.port or s.server_url or not bench.catalog.suites:
        return
    workers = getattr(config.option, "numprocesses", None)
    ports = [s.port + bench.worker] if hasattr(config, "workerinput") else [s.port + w for w in range(workers or 1)]
    for host in sorted({suite.server.host for suite in bench.catalog.suites.values()}):
        if busy := [p for p in ports if port_in_use(host, p)]:
            raise pytest.UsageError(f"--port {s.port}: port {busy[0]} on {host} is already in use (another server?): "
                                    "stop what listens there, choose another --port, or drop --port to let a free "
                                    "port be chosen")


def _check_results_dir(bench: BenchSession, items: list[pytest.Item]) -> None:
    """A results folder that cannot take a file is refused before any server starts (a usage error)."""
    if not any(point_of(item) is not None for item in items):
        return
    if why := check_writable(bench.run_dir):
        raise pytest.UsageError(f"--results-dir {bench.settings.results_dir}: cannot write the run folder "
                                f"{bench.run_dir} ({why}): pass a writable folder as --results-dir (ini: "
                                "inferencemax_results_dir)")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """With --collect-only, show the plan: each point's requests, warmups and server."""
    if config.get_verbosity() < 0:
        return []
    if not config.option.collectonly:  # a run with variants says what it is about to start, and for how long
        return [line.strip() for line in variant_lines(_session(config), items)]
    return plan_lines(_session(config), items, getattr(config.option, "numprocesses", None))


class ReportCollector:
    """Collects each point's record and failure from test reports: this process's own, or, on the
    xdist controller, the workers' (user_properties travel with the reports)."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == RECORD and Path(value) not in self.bench.points.record_paths:
                self.bench.points.record_paths.append(Path(value))
            elif key == FAILURE and tuple(value) not in self.bench.points.failures:
                self.bench.points.failures.append(tuple(value))
            elif key == PRUNED and tuple(value) not in self.bench.points.pruned:
                self.bench.points.pruned.append(tuple(value))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bench = session.config.stash.get(SESSION, None)
    if bench is None:
        return
    bench.close()  # also on Ctrl-C, SIGTERM and internal errors: no server is left behind
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    if interrupted and bench.points.current_point and bench.points.current_point not in {p for p, _ in bench.points.failures}:
        bench.points.failures.append((bench.points.current_point, f"interrupted by {bench.points.interrupted_by or 'Ctrl-C'}"))
    if bench.points.record_paths or bench.points.failures or bench.points.pruned or interrupted:
        session.config.hook.pytest_inferencemax_manifest(manifest=bench.manifest.extra)
        bench.manifest.write(finished=True)
        if bench.manifest.refused:
            bench.points.not_saved.append(bench.manifest.refused)
        if not _is_worker(session.config):
            _finish(session, bench, interrupted)
    if bench.points.not_saved and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a run whose results are not all on disk did not pass


def _finish(session: pytest.Session, bench: BenchSession, interrupted: bool) -> None:
    """Verdicts, report, plots, submission and summary.json (the process that saw every point)."""
    records = bench.points.records()
    s = bench.settings
    kept = [str(p) for p in bench.points.record_paths if not p.is_relative_to(bench.run_dir)]
    submit = (SubmitOptions(team=s.submit_team, dry_run=s.submit_dry_run, force=s.submit_force,
                            unqualified=s.submit_unqualified, url_override=s.leaderboard_url)
              if (s.submit_team or s.submit_dry_run) and not kept else None)
    interruption = bench.points.interruption() if interrupted else None
    failed = failed_groups(bench.points.failures, records, stage=s.stage)  # the report's "Failed" section, summary.json's
    finished = finish_run(bench.run_dir, records, bench.catalog.verdict_rules(), bench.catalog.baselines_dir(), submit,
                          echo=bench.progress.line, interruption=interruption, failed=failed)
    if (s.submit_team or s.submit_dry_run) and kept:
        finished.problems.append(f"submission: not sent, {len(kept)} record(s) are not in the run folder {bench.run_dir}")
    bench.points.not_saved += [p.removeprefix("not saved: ") for p in finished.problems if p.startswith("not saved: ")]
    session.config.stash[FINISHED] = finished
    session.config.stash[INTERRUPTION] = interruption
    try:
        write_summary(records, bench.points.failures, bench.run_dir, finished.lines(), interruption, bench.points.pruned, failed)
    except ResultsWriteError as exc:
        bench.points.not_saved.append(str(exc))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    bench = config.stash.get(SESSION, None)
    interruption = config.stash.get(INTERRUPTION, None)
    if bench is not None and config.get_verbosity() < 0:  # -q: the run in a line, its verdicts, what went wrong
        for line in quiet_lines(bench, config.stash.get(FINISHED, None), interruption):
            terminalreporter.write_line(line)
        return
    if bench is None or not (bench.points.record_paths or bench.points.failures or bench.points.pruned):
        return
    terminalreporter.section("inferencemax summary")
    for line in summary_lines(bench.points.records(), bench.points.failures, bench.run_dir, interruption, bench.points.pruned):
        terminalreporter.write_line(line)
    finished = config.stash.get(FINISHED, None)
    for line in [ln for ln in finished.lines() if not ln.startswith("problem: not saved: ")] if finished else []:
        terminalreporter.write_line(line)
    for line in dict.fromkeys(bench.points.not_saved):
        terminalreporter.write_line(f"NOT SAVED: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(SESSION, None)
    if bench is not None:
        bench.close()
    handlers = _SIGNAL_HANDLERS.pop(config, None)
    if handlers is not None:
        handlers.restore()

