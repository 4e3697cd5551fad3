"""The rounds of one point (``--repeat``): what the point's record says about them.

A point run ``N`` times keeps every round's record under ``rounds/<point>.r<k>.json``; the point's
own ``<point>.json`` is the record of its median round (by tput/GPU, so every reference key still
holds one real run's figure, as the bounty's runner writes it) with this summary under
``inferencemax.rounds``: each judged figure per round, its mean and 95 % interval, the same as
ratios to the baseline point, and why no more rounds were run.
"""
from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field

Number = Union[int, float]

ROUNDS_DIR = "rounds"


class FigureStats(BaseModel):
    """One figure over the rounds: each round's value, their mean and its confidence interval."""

    model_config = ConfigDict(extra="allow")

    values: list[Number]
    mean: Number
    low: Number
    high: Number
    stdev: Optional[Number] = None


class RoundsSummary(BaseModel):
    """``inferencemax.rounds`` of a point run more than once (docs/verdict.md)."""

    model_config = ConfigDict(extra="allow")

    n: int
    method: str
    confidence: Number
    representative: int  # the round (1-based) whose record gives the top-level figures
    files: list[str]  # each round's record, relative to the run folder
    durations_s: list[Number] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)  # each round's status (ok, partial, invalid, aborted)
    failed: list[int] = Field(default_factory=list)  # each round's failed requests
    figures: dict[str, FigureStats] = Field(default_factory=dict)  # JUDGED figures (and output_throughput)
    ratios: Optional[dict[str, FigureStats]] = None  # the same divided by the baseline point's figures
    stopped: Optional[str] = None  # why no more rounds were run (--repeat auto)
    sources: Optional[list[str]] = None  # merged: the runs whose rounds were pooled

    def stats(self, figure: str) -> FigureStats | None:
        return self.figures.get(figure)

    def ratio(self, figure: str) -> FigureStats | None:
        return (self.ratios or {}).get(figure)

    @property
    def not_ok(self) -> list[int]:
        """Rounds (1-based) that were not clean (failed requests, an invalid workload, cut short)."""
        return [i + 1 for i, s in enumerate(self.statuses) if s != "ok"]
