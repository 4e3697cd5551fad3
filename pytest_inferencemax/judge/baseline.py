"""Baseline tables (``baselines/*.toml``): the reference points a result is compared with."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_inferencemax.errors import ConfigError, validation_problems
from pytest_inferencemax.plan.suite import read_toml
from pytest_inferencemax.results.record import BaselineComparison, BaselineFigures, PointRecord


class BaselineError(ConfigError):
    """A baseline file that cannot be used; the message names the file and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaselinePoint(_Strict):
    isl: int = Field(gt=0)
    osl: int = Field(gt=0)
    conc: int = Field(gt=0)
    median_e2e_ms: float = Field(gt=0)
    median_intvty: float = Field(gt=0)
    tput_per_gpu: float = Field(gt=0)


class Source(_Strict):
    title: str
    origin: str
    recorded: str
    group: str
    prefix: str
    tag: str


class BaselineTable(_Strict):
    source: Source
    models: dict[str, tuple[BaselinePoint, ...]]
    path: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> "BaselineTable":
        for model, points in self.models.items():
            keys = [(p.isl, p.osl, p.conc) for p in points]
            dupes = {k for k in keys if keys.count(k) > 1}
            if dupes:
                raise ValueError(f"model {model!r} lists (isl, osl, conc) {sorted(dupes)} more than once")
        return self

    def lookup(self, model: str, isl: int, osl: int, conc: int) -> BaselinePoint | None:
        for p in self.models.get(model, ()):
            if (p.isl, p.osl, p.conc) == (isl, osl, conc):
                return p
        return None


def find_baseline(suite_dir: Path, name: str) -> Path:
    """``baselines/<name>.toml`` in the suite's folder or the nearest one above it (the repo's)."""
    for folder in (suite_dir, *Path(suite_dir).resolve().parents):
        candidate = folder / "baselines" / f"{name}.toml"
        if candidate.is_file():
            return candidate
    raise BaselineError(f"baseline {name!r}: no baselines/{name}.toml in {suite_dir} or above it; check the "
                        "stage's 'baseline' (a file name under baselines/, without .toml)")


def load_baseline(path: Path) -> BaselineTable:
    path = Path(path)
    raw = read_toml(path, BaselineError, "baseline file not found: check the suite's stage 'baseline'")
    try:
        return BaselineTable.model_validate({**raw, "path": path})
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise BaselineError(f"{path}: {problems}. Fix the file (format: docs/baselines.md).") from None


def comparison(table: BaselineTable | None, model_key: str | None, record: PointRecord) -> None:
    """Set the record's baseline comparison and ``baseline_note`` (the bounty's group and three ratios);
    without a baseline point the group and ratios are null and the note says why: nothing is invented."""
    if table is None or model_key is None:
        record.baseline_note = "this stage names no baseline"
        return
    src, o = table.source, record.ours
    point = table.lookup(model_key, o.isl, o.osl, o.conc)
    if point is None:
        record.comparison = BaselineComparison(group=src.group, prefix=src.prefix, tag=src.tag)
        record.baseline_note = (f"no {src.title} point for {model_key} ISL {o.isl} OSL {o.osl} CONC {o.conc} "
                                f"in {table.path.name}: ratios are null, nothing is invented")
        return
    record.comparison = BaselineComparison(
        group=src.group, prefix=src.prefix, tag=src.tag,
        figures=BaselineFigures(median_e2e_ms=point.median_e2e_ms, tput_per_gpu=point.tput_per_gpu,
                                median_intvty=point.median_intvty),
        tput_ratio=record.tput_per_gpu / point.tput_per_gpu, e2e_ratio=record.median_e2el_ms / point.median_e2e_ms,
        intvty_ratio=record.interactivity / point.median_intvty)
    record.baseline_note = f"{src.title} ({table.path.name})"
