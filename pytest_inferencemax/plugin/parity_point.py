"""``--parity``: a finished point's workload again with both clients, alternating, on its server."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_inferencemax.measure.runner import default_request_timeout
from pytest_inferencemax.measure.workload import token_counter
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.results.point_pipeline import PointOutcome

if TYPE_CHECKING:
    from pytest_inferencemax.plugin.session import BenchSession


def run_point_parity(session: BenchSession, suite: Suite, point: Point, outcome: PointOutcome) -> Any:
    """The parity report of ``point`` (run: measure/parity.py, judged: judge/parity.py), written beside its
    record (publish/parity_report.py)."""
    from pytest_inferencemax.judge.parity import judge
    from pytest_inferencemax.measure.parity import run_parity
    from pytest_inferencemax.publish.parity_report import write_parity
    server, tokenizer = session.servers.server(suite, point), session.catalog.tokenizer(suite)
    s, progress = session.settings, session.progress
    progress.line(f"inferencemax: {point.id}: parity, {s.parity_rounds} rounds of each client")
    runs = run_parity(point.id, server.base_url, server.model, outcome.workload.requests,
                      concurrency=point.conc, num_warmups=point.num_warmups, rounds=s.parity_rounds,
                      count_tokens=token_counter(tokenizer),
                      api_key=s.api_key, extra_body=s.extra_body, abort_check=server.death_reason,
                      stall_timeout=s.stall_timeout,
                      request_timeout=s.request_timeout or default_request_timeout(point.osl),
                      on_run=lambda run: progress.line(
                          f"inferencemax: {point.id}: parity round {run.round} {run.client}: "
                          f"{run.figures['output_throughput']:.1f} out tok/s, {run.failed} failed"))
    report = judge(point.id, runs)
    _, md = write_parity(session.folder, report, f"{point.id}.parity")
    progress.line(f"inferencemax: {point.id}: parity {'PASSED' if report.passed else 'FAILED'} -> {md}")
    return report
