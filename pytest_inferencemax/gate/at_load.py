"""Accuracy at load (``--accuracy-at``): the stage's accuracy task run again after a point's timed run, on the same
server, with lm-eval's ``num_concurrent`` set to the point's CONC, and judged by the same limits as the gate.
:class:`AccuracyAtLoad` is what a point's record keeps of it (``inferencemax.accuracy_at_load``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pytest_inferencemax.plan.part import Part
from pytest_inferencemax.plan.values import Word

if TYPE_CHECKING:  # the record reads this module: it must not load lm-eval's side
    from pytest_inferencemax.gate.accuracy import GateResult


# lm-eval 0.4's TemplateAPI.loglikelihood_rolling sends a task's documents one after another, each as its rolling
# windows of max_length tokens at once: num_concurrent only reaches the server within one document (docs/accuracy.md)
ROLLING_NOTE = ("a rolling-loglikelihood task: lm-eval sends one document at a time, its windows together, so at most "
                "min({conc}, windows per document) requests were in flight")


class AtLoadStatus(Word):
    PASSED = "PASSED"
    FAILED = "FAILED"  # a metric beyond its limit at this point's concurrency
    ERROR = "ERROR"  # the task could not run (the point does not count either)
    SKIPPED = "SKIPPED"  # selected, but the stage has no gate or --skip-accuracy was given

    @property
    def failed(self) -> bool:
        return self in (AtLoadStatus.FAILED, AtLoadStatus.ERROR)


class AccuracyAtLoad(Part):
    """The stage's accuracy task at one point's own concurrency (docs/metrics.md, ``inferencemax.accuracy_at_load``)."""

    num_concurrent: int  # lm-eval's concurrent requests: the point's CONC
    selected_by: str  # the --accuracy-at term(s) that chose this point, e.g. "max" or "median, max"
    status: AtLoadStatus
    task: Optional[str] = None
    values: Optional[dict[str, float]] = None  # the task's metrics at this concurrency
    limits: Optional[dict[str, dict[str, object]]] = None  # metric -> {op, limit, margin}: the gate's limits
    gate_num_concurrent: Optional[int] = None  # the gate's (the stage's model_args, else lm-eval's default 1)
    vs_gate: Optional[dict[str, float]] = None  # metric -> value here / the gate's value - 1 (0: identical)
    elapsed_s: Optional[float] = None
    load_note: Optional[str] = None  # what bounds the load the task really puts on the server, when not the CONC
    reason: Optional[str] = None  # why it failed, could not run or was skipped

    @property
    def failed(self) -> bool:
        return AtLoadStatus(self.status).failed

    def words(self) -> str:
        """One line: ``PASSED at CONC 4 (bits_per_byte 0.8324, ...)`` or the reason."""
        head = f"{self.status} at CONC {self.num_concurrent}"
        if self.values:
            head += " (" + ", ".join(f"{k} {v:.4g}" for k, v in self.values.items()) + ")"
        return head + (f": {self.reason}" if self.reason else "")


def at_load_record(result: GateResult, gate: GateResult | None, conc: int, selected_by: str) -> AccuracyAtLoad:
    """The record part of one run of the task at ``conc``, beside the server's gate (``gate``) it repeats."""
    values = {v.metric: v.value for v in result.verdicts}
    beyond = [f"{v.metric} {v.value:.4f}, limit {v.op} {v.limit:.4f}" for v in result.verdicts if not v.ok]
    vs_gate = None
    if gate is not None:
        gate_values = {v.metric: v.value for v in gate.verdicts}
        vs_gate = {m: (v / gate_values[m] - 1.0 if gate_values.get(m) else 0.0) for m, v in values.items()
                   if m in gate_values}
    load_note = None
    if result.task_config.get("output_type") == "loglikelihood_rolling":
        load_note = ROLLING_NOTE.format(conc=conc)
    return AccuracyAtLoad(
        num_concurrent=conc, selected_by=selected_by,
        status=AtLoadStatus.PASSED if result.passed else AtLoadStatus.FAILED, task=result.spec.task, values=values,
        limits={v.metric: {"op": v.op, "limit": v.limit, "margin": v.margin} for v in result.verdicts},
        gate_num_concurrent=int(gate.model_args.get("num_concurrent", 1)) if gate is not None else None,
        vs_gate=vs_gate, elapsed_s=round(result.elapsed_s, 3), load_note=load_note,
        reason=f"beyond the gate's limits at its own load: {'; '.join(beyond)}" if beyond else None)
