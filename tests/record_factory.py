"""Point records for tests, made from a real one (tests/golden/records/quickstart-c4.json, written by a
run of the embedded suite) with the fields a test cares about replaced: typed, like the plugin's."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pytest_inferencemax.judge.baseline import BaselineTable
from pytest_inferencemax.results.record import AccuracyValidation, PointRecord

GOLDEN_RECORDS = Path(__file__).resolve().parent / "golden" / "records"
_BASE = (GOLDEN_RECORDS / "quickstart-c4.json").read_text(encoding="utf-8")


def point_record(conc: int = 4, tput: float = 400.0, e2e_ms: float = 1000.0, intvty: float = 100.0, *,
                 isl: int = 1024, osl: int = 1024, suite: str = "gptoss", stage: str = "s1", divisor: int = 8,
                 status: str = "PASSED", failed: int = 0, invalid: Iterable[str] = (),
                 accuracy: dict[str, Any] | None = None, ours: dict[str, Any] | None = None,
                 **fields: Any) -> PointRecord:
    """A record of ``suite``'s point (ISL, OSL, CONC) with these figures; ``ours`` and ``fields``
    replace further fields of the ``inferencemax`` section and of the record."""
    rec = PointRecord.from_json(_BASE)
    token_check = rec.ours.token_check.model_copy(update={"failures": list(invalid)})
    section = rec.ours.model_copy(update={
        "point": f"{suite}-{isl}-{osl}-c{conc}", "suite": suite, "stage": stage, "isl": isl, "osl": osl,
        "conc": conc, "tput_per_gpu_divisor": divisor, "failed": failed, "token_check": token_check,
        **(ours or {})})
    validation = (AccuracyValidation(status=status, task="wikitext") if status != "SKIPPED"
                  else AccuracyValidation(status="SKIPPED", reason="--skip-accuracy"))
    return rec.model_copy(update={
        "total_token_throughput": tput * divisor, "tput_per_gpu": tput, "median_e2el_ms": e2e_ms,
        "interactivity": intvty, "max_concurrency": conc, "completed": rec.num_prompts - failed, "ours": section,
        "accuracy": accuracy if accuracy is not None else ({"bits_per_byte": 0.5} if status != "SKIPPED" else None),
        "accuracy_validation": validation, **fields})


def record_dict(partial: dict[str, Any]) -> dict[str, Any]:
    """A whole record's JSON object: the golden record with ``partial``'s keys put over it (its
    ``inferencemax`` merged key by key), for tests that shape a record as JSON."""
    data = PointRecord.from_json(_BASE).to_dict()
    data.pop("baseline_note", None)
    ours = {**data.pop("inferencemax"), **partial.get("inferencemax", {})}
    data.update({k: v for k, v in partial.items() if k != "inferencemax"})
    data["inferencemax"] = ours
    return data


def record_from(partial: dict[str, Any]) -> PointRecord:
    """:func:`record_dict` as a typed record (validated as a record read from a file is)."""
    return PointRecord.from_dict(record_dict(partial), "test record")


def baseline_table(points: dict[int, float], model: str = "gptoss") -> BaselineTable:
    """A baseline table of ``model`` at ISL/OSL 1024 with these tput/GPU figures by CONC (E2E 1000 ms,
    interactivity 100), under the stage-1 B200 group's names."""
    return BaselineTable.model_validate({
        "source": {"title": "synthetic", "origin": "test", "recorded": "2026", "group": "b200_baseline_nv1126",
                   "prefix": "b200", "tag": "1126"},
        "models": {model: [{"isl": 1024, "osl": 1024, "conc": c, "median_e2e_ms": 1000.0, "median_intvty": 100.0,
                            "tput_per_gpu": t} for c, t in points.items()]},
        "path": Path("synthetic.toml")})
