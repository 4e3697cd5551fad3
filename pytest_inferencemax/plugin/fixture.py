"""The ``inferencemax`` fixture: what a suite's test calls to run its gate and its point.

The fixture runs a point through the session, records it for pytest-benchmark and the JUnit XML,
compares it with ``--compare-to``, runs ``--parity``, and fails the test for what makes a point
unusable (failed requests, an invalid workload, a regression with ``--compare-fail``, a
client-bound point with ``--fail-client-bound``). What the summary needs travels in the test
report's ``user_properties`` (``RECORD``, ``FAILURE``), so it reaches the xdist controller too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

from pytest_inferencemax.errors import InferenceMaxError
from pytest_inferencemax.judge.decided import open_question
from pytest_inferencemax.gate.accuracy import AccuracyError, GateResult
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import SUITE_FILE, Suite, SuiteError
from pytest_inferencemax.plugin.compare_to import compare_point
from pytest_inferencemax.plugin.gates import could_not_run, gate_failed
from pytest_inferencemax.plugin.session import SESSION, BenchSession
from pytest_inferencemax.measure.figures import JUNIT
from pytest_inferencemax.plan.values import Word
from pytest_inferencemax.plugin.variant_runs import all_reusable, find_reusable, prune_check, reuse
from pytest_inferencemax.results.point_pipeline import PointOutcome
from pytest_inferencemax.results.pool import representative
from pytest_inferencemax.results.record import PointRecord

RECORD, FAILURE, PRUNED = "inferencemax_record", "inferencemax_failure", "inferencemax_pruned"



def junit_properties(record: PointRecord) -> list[tuple[str, Any]]:
    """A point's key figures, its baseline ratios, accuracy status and self-check flags, as
    (name, value) pairs for the JUnit XML of the CI's test view."""
    props: list[tuple[str, Any]] = [(k, getattr(record, k)) for k in JUNIT]  # the CI's test view (pytest --junitxml <property>)
    if record.comparison is not None:
        props += [(k, v) for k, v in record.comparison.to_items()[1:] if v is not None]
    if record.ours.rounds is not None:  # --repeat: the rounds and each judged figure's interval
        r = record.ours.rounds
        props.append(("rounds", r.n))
        props += [(f"{name}_{part}", getattr(st, part)) for name, st in r.figures.items() if name != "output_throughput"
                  for part in ("mean", "low", "high")]
    props.append(("accuracy", record.accuracy_status))
    props.append(("failed_requests", record.failed))
    props.append(("client_bound", record.client_bound))
    props += [("warning", w) for w in record.warnings()]
    # plain values only: xdist's channel (execnet) carries builtin types, not our Word enums
    return [(k, str(v) if isinstance(v, Word) else v) for k, v in props]


def benchmark_extra_info(record: PointRecord) -> dict[str, Any]:
    """The point's figures for pytest-benchmark's ``extra_info``: every number at the top level
    (throughputs, latency statistics, tput_per_gpu, interactivity, baseline ratios) and the verdicts."""
    data = record.to_dict()
    info = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in ("accuracy", "accuracy_validation", "benchmark_args", "baseline_note"):
        info[key] = data.get(key)
    if record.ours.accuracy_at_load is not None:
        info["accuracy_at_load"] = data["inferencemax"]["accuracy_at_load"]
    info["point"] = record.point_id
    info["tput_per_gpu_divisor"] = record.ours.tput_per_gpu_divisor
    if record.ours.rounds is not None:
        info["rounds"] = record.ours.rounds.model_dump(include={"n", "confidence", "representative", "figures",
                                                                "ratios", "stopped"})
    return info


def benchmark_rounds(benchmark: Any) -> Callable[[float], None]:
    """Where each round's wall time goes in pytest-benchmark's table (a no-op without the fixture).

    ``benchmark.pedantic()`` needs its round count up front, but ``--repeat auto`` decides it round by
    round. So the rounds are fed into the fixture's statistics the way pedantic() feeds them
    (pytest-benchmark 5: ``_make_stats`` then ``Metadata.update`` per round); tests/e2e checks the
    table's rounds column, so a pytest-benchmark that changes this fails there, not silently.

    A disabled fixture (``--benchmark-disable``, or pytest-xdist's ``-n``, which disables it) is marked as used
    too: else every such point, failed or not, ends with "Benchmark fixture was not used at all"."""
    if benchmark is None:
        return lambda seconds: None
    benchmark._mode = "benchmark.pedantic(...)"  # used once: pytest-benchmark would warn "not used at all"
    if getattr(benchmark, "disabled", False):
        return lambda seconds: None
    return benchmark._make_stats(1).update


def not_measured(benchmark: Any) -> None:
    """Tell pytest-benchmark's fixture that nothing was timed on purpose (a point that failed before its
    measurement), so that it does not warn "Benchmark fixture was not used at all" over the real cause.
    (pytest-benchmark 5 warns when ``_mode`` is unset; its ``skipped`` flag is reset by its own report hook.)"""
    if benchmark is not None and not getattr(benchmark, "_mode", None):
        benchmark._mode = "not measured: the point failed before its measurement"


class SuiteBench:
    """What a suite's test uses to run its point (the ``inferencemax`` fixture)."""

    def __init__(self, session: BenchSession, suite: Suite, node: pytest.Item) -> None:
        self.session = session
        self.suite = suite
        self._node = node
        self._config = node.config
        self._cut: tuple[PointRecord, Path] | None = None  # a round cut short: its record, pooled with the others

    # What the summary needs travels in user_properties, so it reaches the xdist controller too.
    def _note_failure(self, point_id: str, why: str) -> None:
        """Record why ``point_id`` failed, in one line (the summary's, the report's and the controller's words)."""
        self._node.user_properties.append((FAILURE, (point_id, why)))

    def _fail(self, point_id: str, why: str, message: str | None = None) -> NoReturn:
        """Record the failure, then fail the test with ``message`` (default: ``why``) and no traceback."""
        self._note_failure(point_id, why)
        pytest.fail(message or why, pytrace=False)

    def _skip(self, point_id: str, why: str) -> NoReturn:
        """Record that --prune left ``point_id`` out, and skip its test saying why."""
        self._node.user_properties.append((PRUNED, (point_id, why)))
        pytest.skip(f"pruned: {why}")

    def gate(self, point: Point) -> GateResult | None:
        """Run (once per server instance) and return the accuracy gate of ``point``'s server."""
        if point.variant is not None and all_reusable(self.session, self.suite, point):
            pytest.skip("every point of this server is reused from an earlier run (--rerun measures them again)")
        try:
            gate = self.session.gates.gate(self.suite, point)
        except AccuracyError as exc:  # the words of its points' failures (one group in the summary and report)
            self._note_failure(self._node.callspec.id, could_not_run(exc))
            raise
        if gate is not None and not gate.passed:
            self._note_failure(self._node.callspec.id, gate_failed(gate))
        return gate

    def run(self, point: Point, benchmark: Any = None) -> PointOutcome:
        """Run ``point`` (``--repeat``: its rounds); with pytest-benchmark's ``benchmark`` fixture, record it
        there too (each round's wall time as a round's timing, every figure and ratio in ``extra_info``)."""
        if point.variant is not None:
            if found := find_reusable(self.session, self.suite, point):  # measured before: the same recipe hash
                outcome = reuse(self.session, point, found)
                benchmark_rounds(benchmark)  # no timing: nothing ran
                self._node.user_properties.append((RECORD, str(outcome.path)))
                self._node.user_properties.extend(junit_properties(outcome.record))
                return outcome
            if self.session.settings.prune and (why := prune_check(self.session, self.suite, point)):
                self._skip(point.id, why)
        try:
            self._start_server(point)  # fails the point when its server's accuracy gate failed or could not run
        except BaseException:
            not_measured(benchmark)  # nothing was timed: no "fixture was not used" warning on top of the cause
            raise
        if not self.session.rounds.single:
            outcome = self._rounds(point, benchmark_rounds(benchmark))
        elif benchmark is None:
            outcome = self._measure(point)
        else:
            outcome = benchmark.pedantic(lambda: self._measure(point), rounds=1, iterations=1)
        if (at_load := self.session.gates.at_load(self.suite, point)) is not None:  # --accuracy-at
            outcome = self.session.keep_at_load(outcome, at_load)
        if benchmark is not None:
            benchmark.extra_info.update(benchmark_extra_info(outcome.record))
        return self._check(point, outcome)

    def _start_server(self, point: Point) -> None:
        """The point's server and its gate before the clock starts (a round's time is its measurement).

        A point whose server failed its accuracy gate, or whose gate could not run, is not measured and
        FAILS with the gate's cause (never a skip: with ``-k`` selecting points only, as the CI's jobs do,
        a skip would leave a green run with its curve missing)."""
        failed: InferenceMaxError | None = None
        not_run: str | None = None
        self.session.points.current_point = point.id
        try:
            if (not_run := self.session.gates.gate_problem(self.suite, point)) is None:
                self.session.servers.server(self.suite, point)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP while its server starts: this point stopped
            self._note_failure(point.id, f"interrupted by {self.session.points.interrupted_by or 'Ctrl-C'}")
            raise
        except InferenceMaxError as exc:
            failed = exc
        self.session.points.current_point = None
        if failed is not None:  # outside the except block: the message alone, no chained exception
            self._fail(point.id, str(failed).splitlines()[0], str(failed))
        if not_run is not None:  # the gate's cause in its words: one failed group with the gate in the summary
            self._fail(point.id, not_run, f"{point.id} not run: {not_run}")

    def _rounds(self, point: Point, timed: Callable[[float], None]) -> PointOutcome:
        """The point's rounds until the rounds plan stops; the pooled outcome (``<point>.json``)."""
        plan, rounds, durations = self.session.rounds, [], []
        rule = self.session.catalog.verdict_rule(self.suite, point)
        def pooled(stopped: str | None = None, cut: tuple[PointRecord, Path] | None = None) -> PointOutcome:
            records, paths = [r.record for r in rounds], [r.path for r in rounds]
            if cut is not None:
                records, paths = records + [cut[0]], paths + [cut[1]]
            record, path = self.session.pool_rounds(records, paths, durations[:len(records)], stopped)
            pick = rounds[representative([r.record for r in rounds])] if rounds else None
            return PointOutcome(point, record, path, pick.load if pick else None, pick.workload if pick else None)

        while True:
            n = len(rounds) + 1
            self._config.hook.pytest_inferencemax_round(point=point, round=n)
            self.session.progress.line(f"inferencemax: {point.id}: round {n} ({plan.describe()})")
            started = time.perf_counter()
            self._cut = None
            try:
                outcome = self._measure(point, round_no=n)
            except BaseException:
                if rounds or self._cut:  # what finished is the point's record on disk though this round was cut short
                    durations.append(time.perf_counter() - started)
                    pooled(f"round {n} did not finish", self._cut)
                raise
            durations.append(time.perf_counter() - started)
            timed(durations[-1])
            rounds.append(outcome)
            if outcome.invalid:
                return outcome  # the check fails the point: its workload is not the one it names
            result = pooled()
            question = open_question(result.record, rule)
            stop, why = plan.stop(durations, question)
            if stop:
                if why:
                    result = pooled(why)
                    self.session.progress.line(f"inferencemax: {point.id}: {why}")
                return result
            if question:
                self.session.progress.line(f"inferencemax: {point.id}: undecided after {n} rounds: {question}")

    def _measure(self, point: Point, round_no: int | None = None) -> PointOutcome:
        """Run the point (or one round of it) once its server's gate passed (``_start_server``); fail the
        test with the cause when it cannot run."""
        props = self._node.user_properties
        if (not_run := self.session.gates.gate_problem(self.suite, point)) is not None:  # a server restarted mid-rounds
            self._fail(point.id, not_run, f"{point.id} not run: {not_run}")
        self.session.points.current_point = point.id
        failed: InferenceMaxError | None = None
        try:
            outcome = self.session.run(self.suite, point, record_hook=self._record_hook, round_no=round_no)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the session ends and says this point stopped
            self._note_failure(point.id, f"interrupted by {self.session.points.interrupted_by or 'Ctrl-C'}")
            raise
        except InferenceMaxError as exc:  # a cause we know and said in words: the message, no traceback
            self.session.points.current_point = None
            if record_path := getattr(exc, "record_path", None):  # an aborted point's record, with its cause
                if round_no:  # a round: pooled with the rounds before it into <point>.json
                    self._cut = (self.session.folder.read_point(record_path), Path(record_path))
                    record_path = self.session.folder.point_file(point.id)
                props.append((RECORD, str(record_path)))
            elif round_no and round_no > 1:
                props.append((RECORD, str(self.session.folder.point_file(point.id))))  # the rounds before
            failed = exc
        except BaseException as exc:
            self.session.points.current_point = None
            self._note_failure(point.id, (str(exc) or type(exc).__name__).splitlines()[0])
            raise
        if failed is not None:  # outside the except block: the message alone, no chained exception
            self._fail(point.id, str(failed).splitlines()[0], str(failed))
        self.session.points.current_point = None
        return outcome

    def _check(self, point: Point, outcome: PointOutcome) -> PointOutcome:
        """Record the finished point and fail the test for what makes it unusable: every reason, listed."""
        props = self._node.user_properties
        props.append((RECORD, str(outcome.path)))
        props.extend(junit_properties(outcome.record))  # --junitxml: the figures in the CI's test view
        record, s = outcome.record, self.session.settings
        reasons = [outcome.failure_cause()] if record.failures_count or (outcome.failed and record.ours.rounds) else []
        if outcome.failed and not reasons:  # within the stage's failure_rule (max_rate): counted, said, not failed
            self.session.progress.line(f"inferencemax: {point.id}: {outcome.failure_cause()}: within the stage's "
                                       f"failure_rule {record.ours.failure_rule} ({record.failed_share:.1%})")
        reasons += [f"invalid workload: {why}" for why in outcome.invalid]
        if record.accuracy_failed_at_load:
            reasons.append(f"accuracy at its own load: {record.ours.accuracy_at_load.words()}")
        if record.stream_errors and s.fail_on_stream_errors:
            reasons.append(f"stream errors: {record.ours.stream.warning if record.ours.stream else ''}")
        if record.client_bound and s.fail_client_bound:
            reasons.append(f"client-bound: {record.ours.client.why if record.ours.client else ''}")
        if (regressed := self._compare(point, outcome)) and s.compare_fail:
            reasons.append(regressed)
        if s.parity and reasons:
            self.session.progress.line(f"inferencemax: {point.id}: parity not run: the point failed")
        elif s.parity:
            reasons += self._parity(point, outcome)
        for why in reasons[:-1]:
            self._note_failure(point.id, why)
        if reasons:
            self._fail(point.id, reasons[-1], f"{point.id} failed:\n" + "".join(f"  - {why}\n" for why in reasons)
                       + f"record: {outcome.path}")
        return outcome

    def _parity(self, point: Point, outcome: PointOutcome) -> list[str]:
        """--parity: the point measured again by the other client; why the two disagree, if they do."""
        from pytest_inferencemax.measure.parity import ParityAborted
        from pytest_inferencemax.plugin.parity_point import run_point_parity
        try:
            report = run_point_parity(self.session, self.suite, point, outcome)
        except ParityAborted as exc:
            return [str(exc)]
        if report.passed:
            return []
        return ["parity: the two clients disagree: " + "; ".join(f"{r.key}: {r.why}" for r in report.rows if not r.ok)]

    def _compare(self, point: Point, outcome: PointOutcome) -> str | None:
        """--compare-to: the point against the earlier run's, kept on its record; what regressed, as the reason the
        point fails, only with --compare-fail (without it a regression is a warning: summary, summary.json, report)."""
        if not self.session.settings.compare_to or (result := compare_point(self.session, outcome)) is None:
            return None
        if result.regressed and not result.fail:
            self._node.user_properties.append(("warning", result.regression()))  # --junitxml
        return result.regression() if result.regressed and result.fail else None

    def _record_hook(self, point: Point, record: PointRecord) -> PointRecord:
        """The record with the fields of every ``pytest_inferencemax_record`` hook, re-validated."""
        extra: dict[str, Any] = {}
        for fields in self._config.hook.pytest_inferencemax_record(point=point, record=record.to_dict()):
            if fields:
                extra.update(fields)
        if not extra:
            return record
        return PointRecord.from_dict({**record.to_dict(), **extra},
                                     f"{point.id}: the record after the pytest_inferencemax_record hooks")



@pytest.fixture
def inferencemax(request: pytest.FixtureRequest) -> SuiteBench:
    """The benchmark session bound to the suite of the requesting test's directory."""
    session: BenchSession = request.config.stash[SESSION]
    suite = session.catalog.suite_of(request.path)
    if suite is None:
        raise SuiteError(f"{request.path}: no {SUITE_FILE} beside this test")
    return SuiteBench(session, suite, request.node)
