"""The accuracy gates of a session (a part of :class:`~pytest_inferencemax.plugin.session.BenchSession`):
the check before any server starts that a gate's task inputs can be had, one gate run per server instance,
and a point's accuracy fields. Each stage's gate spec, as this session fills it, is the catalog's."""
from __future__ import annotations

from dataclasses import dataclass, field

from pytest_inferencemax.gate.accuracy import AccuracyError, GateResult, gate_sources, run_gate, task_label
from pytest_inferencemax.gate.at_load import AccuracyAtLoad, AtLoadStatus, at_load_record
from pytest_inferencemax.gate.hub_access import hub_problem
from pytest_inferencemax.plan import accuracy_at
from pytest_inferencemax.plan.points import Point
from pytest_inferencemax.plan.rules import BOUNTY_S1, GateSpec
from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.plugin.catalog import SuiteCatalog
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.plugin.servers import Servers
from pytest_inferencemax.progress import Progress
from pytest_inferencemax.results.build import accuracy_fields
from pytest_inferencemax.results.manifest import Manifest
from pytest_inferencemax.results.record import PointRecord


def could_not_run(exc: AccuracyError) -> str:
    """The one-line cause of a gate that could not run: the same words for its gate test and every point of
    its server, so that the summary and the report show them as one failed group."""
    return f"the accuracy gate could not run: {(str(exc).splitlines() or [type(exc).__name__])[0]}"


def gate_failed(gate: GateResult) -> str:
    """The one-line cause of a gate that ran and failed: its headline and each metric beyond its limit."""
    beyond = "; ".join(f"{v.metric} {v.value:.4f}, limit {v.op} {v.limit:.4f}" for v in gate.verdicts if not v.ok)
    return gate.message().splitlines()[0] + (f" ({beyond})" if beyond else "")


@dataclass
class Gates:
    """The session's accuracy gates: one run per server instance, its result kept for every point of that server."""

    settings: Settings
    progress: Progress
    catalog: SuiteCatalog
    servers: Servers
    manifest: Manifest | None = None
    _gates: dict[int, GateResult | str] = field(default_factory=dict)  # per server instance: result or error

    def _gate_inputs(self, spec: GateSpec) -> dict[str, str | None]:
        """The options' local copies that replace the table's dataset / chunk tokenizer, by task."""
        if spec.task == BOUNTY_S1:
            return {"dataset": self.settings.accuracy_wikitext, "chunk_tokenizer": self.settings.accuracy_chunk_tokenizer}
        return {"dataset": self.settings.accuracy_dataset if spec.task == "wikitext" else None}

    def check_gate_access(self, suite: Suite, point: Point) -> None:
        """Before any server starts: what the bounty task of ``point``'s gate takes from the Hugging Face hub
        (the gated Llama-2 tokenizer, the dataset) is cached or reachable with this machine's token, and the
        local copies named exist. Raises :class:`AccuracyError` (a usage error) saying what is missing."""
        spec = self.catalog.gate_spec(suite, point.stage)
        if spec is None or self.settings.skip_accuracy or spec.task != BOUNTY_S1:
            return
        sources = gate_sources(spec, **self._gate_inputs(spec))
        problems = sources.local_problems() + [p for res in sources.hub_resources() if (p := hub_problem(res))]
        if problems:
            raise AccuracyError(f"{suite.path} [stages.{point.stage}.accuracy] ({task_label(spec)}): "
                                + "; ".join(problems))

    def gate(self, suite: Suite, point: Point) -> GateResult | None:
        """The accuracy gate of the server this point runs on: run once per server instance.

        ``None`` when the stage has no gate or --skip-accuracy is given. Raises
        :class:`AccuracyError` when the gate cannot run (then for every point of that server).
        """
        spec = self.catalog.gate_spec(suite, point.stage)
        if spec is None or self.settings.skip_accuracy:
            return None
        server = self.servers.server(suite, point)
        key = id(server)
        if key not in self._gates:
            self.progress.line(f"inferencemax: accuracy gate ({spec.task}, {spec.rule.value}) on {server.base_url}")
            try:
                result: GateResult | str = run_gate(
                    spec, server.base_url, server.model, self.catalog.tokenizer_id(suite), **self._gate_inputs(spec),
                    api_key=self.settings.api_key)
            except AccuracyError as exc:
                result = str(exc)
            self._gates[key] = result
            if self.manifest is not None:
                entry = result.to_dict() if isinstance(result, GateResult) else {"error": result}
                self.manifest.extra.setdefault("accuracy_gates", []).append(
                    {"server": server.base_url, "pid": server.pid, **entry})
            if isinstance(result, GateResult):
                self.progress.line(result.message())
        result = self._gates[key]
        if isinstance(result, str):
            raise AccuracyError(result)
        return result

    def gate_problem(self, suite: Suite, point: Point) -> str | None:
        """Why ``point`` may not be measured: its server's gate failed or could not run (one line, the gate
        test's own cause). None when the gate passed, the stage has none or --skip-accuracy is given.
        Starts the server for the gate; raises what starting it raises (a server that does not come up)."""
        try:
            gate = self.gate(suite, point)
        except AccuracyError as exc:
            return could_not_run(exc)
        return None if gate is None or gate.passed else gate_failed(gate)

    def add_accuracy(self, suite: Suite, point: Point, record: PointRecord) -> None:
        """The record's accuracy fields; call after the point's gate passed (or was skipped)."""
        if self.settings.skip_accuracy:
            gate, why = None, "--skip-accuracy: run without the accuracy gate (development only)"
        else:
            gate = self.gate(suite, point)
            why = None if gate else "this stage defines no accuracy gate"
        record.accuracy, record.accuracy_validation = accuracy_fields(gate, why)

    def at_load_selection(self, suite: Suite, point: Point) -> str | None:
        """--accuracy-at: the term(s) that choose ``point`` for the task at its own load, or None. Chosen per curve
        among the points this session plans (``-k`` does not move a curve's median or max)."""
        if not self.settings.accuracy_at:
            return None
        concs = [p.conc for p in self.catalog.plan(suite) if (p.stage, p.variant, p.isl, p.osl)
                 == (point.stage, point.variant, point.isl, point.osl)]
        return accuracy_at.select(self.settings.accuracy_at, concs, point.isl, point.osl).get(point.conc)

    def at_load(self, suite: Suite, point: Point) -> AccuracyAtLoad | None:
        """After ``point``'s timed run: the stage's accuracy task on the same server with lm-eval's num_concurrent at
        the point's CONC, judged by the gate's limits (None: --accuracy-at does not choose this point)."""
        if (chosen := self.at_load_selection(suite, point)) is None:
            return None
        spec = self.catalog.gate_spec(suite, point.stage)
        if spec is None or self.settings.skip_accuracy:
            why = "--skip-accuracy" if spec is not None else "this stage defines no accuracy gate"
            return AccuracyAtLoad(num_concurrent=point.conc, selected_by=chosen, status=AtLoadStatus.SKIPPED,
                                  reason=why)
        server = self.servers.server(suite, point)
        gate = self._gates.get(id(server))
        self.progress.line(f"inferencemax: {point.id}: accuracy at load ({spec.task}, num_concurrent={point.conc}, "
                           f"--accuracy-at {chosen})")
        try:
            result = run_gate(spec, server.base_url, server.model, self.catalog.tokenizer_id(suite), point.conc,
                              **self._gate_inputs(spec), api_key=self.settings.api_key)
        except AccuracyError as exc:
            return AccuracyAtLoad(num_concurrent=point.conc, selected_by=chosen, status=AtLoadStatus.ERROR,
                                  task=spec.task, reason=(str(exc).splitlines() or [type(exc).__name__])[0])
        found = at_load_record(result, gate if isinstance(gate, GateResult) else None, point.conc, chosen)
        self.progress.line(f"inferencemax: {point.id}: accuracy at load {found.words()}")
        return found
