"""pytest-inferencemax's pytest hooks: a thin layer over BenchSession.

Registered through the ``pytest11`` entry point. Suite directories hold a ``suite.toml`` and
a test module whose tests take the ``inferencemax_point`` parameter: one test per point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .accuracy import AccuracyError, GateResult
from .compare import compare
from .conclude import Conclusion, SubmitOptions, conclude
from .devices import default_visibility_vars, device_slice
from .options import Settings, add_options
from .points import Point
from .progress import StreamProgress
from .record import junit_properties
from .runner import PointOutcome
from .session import BenchSession
from .suite import SUITE_FILE, Suite, SuiteError
from .summary import load_records, summary_lines, write_summary

SESSION = pytest.StashKey[BenchSession]()
POINT_ARG = "inferencemax_point"
GATE_ARG = "inferencemax_gate"  # one accuracy test per server configuration, before its points
RECORD, FAILURE = "inferencemax_record", "inferencemax_failure"
CONCLUSION = pytest.StashKey[Conclusion]()


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
    try:
        bench = BenchSession.create(settings, progress, Path(config.rootpath),
                                    workerid=getattr(config, "workerinput", {}).get("workerid"),
                                    workers=workers if isinstance(workers, int) else None)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION] = bench
    config.pluginmanager.register(ReportCollector(bench), "inferencemax-reports")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(bench), "inferencemax-xdist")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """With ``-n N`` and no ``--dist``, keep each server configuration's points on one worker."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"


class XdistHooks:
    """Hooks that exist only when pytest-xdist is installed."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["inferencemax_run_id"] = self.bench.settings.run_id  # one results folder


def _session(config: pytest.Config) -> BenchSession:
    return config.stash[SESSION]


def _suite_of(path: Path, session: BenchSession) -> Suite | None:
    suite_file = Path(path).parent / SUITE_FILE
    return session.suite(suite_file) if suite_file.is_file() else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    arg = next((a for a in (POINT_ARG, GATE_ARG) if a in metafunc.fixturenames), None)
    if arg is None:
        return
    session = _session(metafunc.config)
    suite = _suite_of(metafunc.definition.path, session)
    if suite is None:
        raise SuiteError(f"{metafunc.definition.path}: a test taking {arg} needs a {SUITE_FILE} "
                         "in the same directory")
    points = session.plan(suite)
    if arg == POINT_ARG:
        metafunc.parametrize(POINT_ARG, [pytest.param(p, id=p.id, marks=pytest.mark.inferencemax_point)
                                         for p in points])
        return
    groups = session.server_groups(suite, points)  # first point of each server configuration
    for point in groups[:1]:
        session.gate_spec(suite, point)  # a malformed gate is a collection error, before any server starts
    metafunc.parametrize(GATE_ARG, [
        pytest.param(p, id=f"{suite.name}-accuracy" + (f"-{p.isl}-{p.osl}-c{p.conc}" if n else ""),
                     marks=pytest.mark.inferencemax_gate) for n, p in enumerate(groups)])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep points that share a server configuration together, so it restarts only when it must."""
    bench = _session(config)
    first_seen: dict[tuple[str, str], int] = {}

    def order(item: pytest.Item) -> tuple[int, int]:
        point = _point_of(item)
        if point is None:
            return (-1, 0)
        suite = _suite_of(item.path, bench)
        recipe = "external" if bench.settings.server_url or suite is None else bench.recipe(suite, point).key
        key = (str(item.path.parent), recipe)
        # points of one server configuration stay on one xdist worker (--dist loadgroup)
        item.add_marker(pytest.mark.xdist_group(name=f"{point.suite}-{recipe}"))
        gate_last = 0 if GATE_ARG in item.callspec.params else 1  # the gate first
        return (first_seen.setdefault(key, len(first_seen)), gate_last)

    items.sort(key=order)  # stable: file order within a group


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """With --collect-only, show the plan: each point's requests, warmups and server."""
    if not config.option.collectonly or config.get_verbosity() < 0:
        return []
    bench = _session(config)
    lines: list[str] = []
    recipes: set[str] = set()
    for item in items:
        point = _point_of(item)
        suite = _suite_of(item.path, bench) if point else None
        if point is None or suite is None:
            continue
        server = bench.settings.server_url
        if not server:
            recipes.add(key := bench.recipe(suite, point).key)
            server = f"recipe {key}"
        if GATE_ARG in item.callspec.params:
            spec = bench.gate_spec(suite, point)
            what = (f"accuracy gate {spec.task} ({spec.rule.value})" if spec else "no accuracy gate in this stage")
            if bench.settings.skip_accuracy:
                what += ", skipped (--skip-accuracy)"
            lines.append(f"  {item.callspec.id}: {what}, before the points of server {server}")
            continue
        lines.append(f"  {point.id}: stage {point.stage}, {point.num_prompts} requests after "
                     f"{point.num_warmups} warmups, range ratio {point.range_ratio}, TP {point.tp}, "
                     f"tput/GPU divisor {point.tput_per_gpu_divisor}, server {server}")
    if recipes:
        lines.append(f"  {len(recipes)} server configuration(s); points of one configuration share a server")
    workers = getattr(config.option, "numprocesses", None)
    s = bench.settings
    if recipes and s.gpus_per_server:
        env_vars = ",".join(s.gpu_env or default_visibility_vars())
        shares = [device_slice(w, s.gpus_per_server, s.gpus, ()).devices for w in range(workers or 1)]
        lines.append(f"  GPUs per server ({env_vars}): " + "; ".join(
            f"{'gw' + str(w) if workers else 'server'} {','.join(d)}" for w, d in enumerate(shares)))
    return ["inferencemax plan:", *lines] if lines else []


def _point_of(item: pytest.Item) -> Point | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get(POINT_ARG) or callspec.params.get(GATE_ARG)


def benchmark_extra_info(record: dict[str, Any]) -> dict[str, Any]:
    """The point's figures for pytest-benchmark's ``extra_info``: every number at the top level
    (throughputs, latency statistics, tput_per_gpu, interactivity, baseline ratios) and the verdicts."""
    info = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in ("accuracy", "accuracy_validation", "benchmark_args", "baseline_note"):
        info[key] = record.get(key)
    info["point"] = record["inferencemax"]["point"]
    info["tput_per_gpu_divisor"] = record["inferencemax"]["tput_per_gpu_divisor"]
    return info


class SuiteBench:
    """What a suite's test uses to run its point (the ``inferencemax`` fixture)."""

    def __init__(self, session: BenchSession, suite: Suite, node: pytest.Item) -> None:
        self.session = session
        self.suite = suite
        self._node = node
        self._config = node.config

    def gate(self, point: Point) -> GateResult | None:
        """Run (once per server instance) and return the accuracy gate of ``point``'s server."""
        try:
            gate = self.session.gate(self.suite, point)
        except AccuracyError as exc:
            self._node.user_properties.append((FAILURE, (self._node.callspec.id, f"accuracy gate: {exc}")))
            raise
        if gate is not None and not gate.passed:
            self._node.user_properties.append((FAILURE, (self._node.callspec.id, gate.message().splitlines()[0])))
        return gate

    def run(self, point: Point, benchmark: Any = None) -> PointOutcome:
        """Run ``point``; with pytest-benchmark's ``benchmark`` fixture, record it there too
        (the point's wall time as the timing, every figure and ratio in ``extra_info``)."""
        if benchmark is None:
            return self._run(point)
        outcome = benchmark.pedantic(self._run, args=(point,), rounds=1, iterations=1)
        benchmark.extra_info.update(benchmark_extra_info(outcome.record))
        return outcome

    def _run(self, point: Point) -> PointOutcome:
        # What the summary needs travels in user_properties, so it reaches the xdist controller too.
        props = self._node.user_properties
        try:
            gate = self.session.gate(self.suite, point)
            not_run = None if gate is None or gate.passed else gate.message().splitlines()[0]
        except AccuracyError as exc:
            not_run = f"the accuracy gate could not run: {str(exc).splitlines()[0]}"
        if not_run:
            props.append((FAILURE, (point.id, f"not run: {not_run}")))
            pytest.skip(f"not run: {not_run}")
        try:
            outcome = self.session.run(self.suite, point, record_hook=self._record_hook)
        except BaseException as exc:
            props.append((FAILURE, (point.id, (str(exc) or type(exc).__name__).splitlines()[0])))
            raise
        props.append((RECORD, str(outcome.path)))
        props.extend(junit_properties(outcome.record))  # --junitxml: the figures in the CI's test view
        if outcome.failed:
            props.append((FAILURE, (point.id, outcome.failure_report().replace("\n", " "))))
        if outcome.invalid:
            props.append((FAILURE, (point.id, "invalid workload: " + outcome.invalid[0])))
            pytest.fail(f"{point.id} did not run the workload it names:\n  " + "\n  ".join(outcome.invalid),
                        pytrace=False)
        self._compare(point, outcome)
        if self.session.settings.parity:
            from .parity import ParityAborted
            try:
                report = self.session.parity(self.suite, point, outcome)
            except ParityAborted as exc:
                props.append((FAILURE, (point.id, str(exc))))
                pytest.fail(str(exc), pytrace=False)
            if not report.passed:
                why = "; ".join(f"{r.key}: {r.why}" for r in report.rows if not r.ok)
                props.append((FAILURE, (point.id, f"parity: {why}")))
                pytest.fail(f"{point.id}: the two clients disagree: {why}", pytrace=False)
        client = outcome.record["inferencemax"]["client"]
        if client["client_bound"] and self.session.settings.fail_client_bound:
            props.append((FAILURE, (point.id, "client-bound: " + client["why"])))
            pytest.fail(f"{point.id} is client-bound: {client['why']}", pytrace=False)
        return outcome

    def _compare(self, point: Point, outcome: PointOutcome) -> None:
        s = self.session.settings
        if not s.compare_to:
            return
        old = self.session.compared_run().get(point.id)
        if old is None:
            self.session.progress.line(f"inferencemax: {point.id}: not in {s.compare_to}, nothing to compare")
            return
        changes = compare(outcome.record, old, s.compare_tolerance / 100.0)
        text = "; ".join(c.describe() for c in changes)
        self.session.progress.line(f"inferencemax: {point.id} vs {s.compare_to}: {text}")
        regressed = [c for c in changes if c.regressed]
        if regressed:
            self._node.user_properties.append((FAILURE, (point.id, f"regressed vs {s.compare_to}: " + "; ".join(
                c.describe() for c in regressed))))
            if s.compare_fail:
                pytest.fail(f"{point.id} regressed against {s.compare_to}: {text}", pytrace=False)

    def _record_hook(self, point: Point, record: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for fields in self._config.hook.pytest_inferencemax_record(point=point, record=record):
            if fields:
                extra.update(fields)
        return extra


@pytest.fixture
def inferencemax(request: pytest.FixtureRequest) -> SuiteBench:
    """The benchmark session bound to the suite of the requesting test's directory."""
    session = _session(request.config)
    suite = _suite_of(request.path, session)
    if suite is None:
        raise SuiteError(f"{request.path}: no {SUITE_FILE} beside this test")
    return SuiteBench(session, suite, request.node)


class ReportCollector:
    """Collects each point's record and failure from test reports: this process's own, or, on the
    xdist controller, the workers' (user_properties travel with the reports)."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == RECORD and Path(value) not in self.bench.record_paths:
                self.bench.record_paths.append(Path(value))
            elif key == FAILURE and tuple(value) not in self.bench.failures:
                self.bench.failures.append(tuple(value))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bench = session.config.stash.get(SESSION, None)
    if bench is None:
        return
    bench.close()  # also on Ctrl-C and internal errors: no server is left behind
    if bench.record_paths or bench.failures:
        session.config.hook.pytest_inferencemax_manifest(manifest=bench.manifest.extra)
        bench.manifest.write(finished=True)
        if not _is_worker(session.config):
            records = load_records(bench.record_paths)
            s = bench.settings
            submit = (SubmitOptions(team=s.submit_team, dry_run=s.submit_dry_run, force=s.submit_force,
                                    unqualified=s.submit_unqualified, url_override=s.leaderboard_url)
                      if s.submit_team else None)
            conclusion = conclude(bench.run_dir, records, bench.verdict_rules(), bench.baselines_dir(), submit,
                                  echo=bench.progress.line)
            session.config.stash[CONCLUSION] = conclusion
            write_summary(records, bench.failures, bench.run_dir, conclusion.lines())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    bench = config.stash.get(SESSION, None)
    if bench is None or not (bench.record_paths or bench.failures) or config.get_verbosity() < 0:
        return
    terminalreporter.section("inferencemax summary")
    for line in summary_lines(load_records(bench.record_paths), bench.failures, bench.run_dir):
        terminalreporter.write_line(line)
    conclusion = config.stash.get(CONCLUSION, None)
    for line in conclusion.lines() if conclusion else []:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(SESSION, None)
    if bench is not None:
        bench.close()

