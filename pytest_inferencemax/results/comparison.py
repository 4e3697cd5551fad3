"""The bounty's baseline comparison in a point record: the baseline's figures at the point and three
ratios, written under key names that carry the baseline's prefix and tag (``b200_baseline_nv1126``,
``tput_per_gpu_ratio_vs_b200_1126``; stage 2 ``baseline_nv1126``, ``*_ratio_vs_baseline_1126``),
as the bounty's runners name them. Parsed here from those names, once, so that no reader scans keys.
"""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel

Number = Union[int, float]

# The three ratio keys of a baseline comparison: <prefix>_<tag> follows, e.g. b200_1126.
TPUT_RATIO = "tput_per_gpu_ratio_vs_"
E2E_RATIO = "median_e2e_ratio_vs_"
INTVTY_RATIO = "interactivity_ratio_vs_"


class BaselineFigures(BaseModel):
    """The baseline's figures at the point's (ISL, OSL, CONC)."""

    median_e2e_ms: Number
    tput_per_gpu: Number
    median_intvty: Number


class BaselineComparison(BaseModel):
    """The bounty's baseline group and ratios, e.g. ``b200_baseline_nv1126`` with ``b200_median_e2e_1126``
    … and ``tput_per_gpu_ratio_vs_b200_1126`` …. ``figures`` and the ratios are None when the baseline
    has no point at this (ISL, OSL, CONC): the JSON then holds the group and ratios as null."""

    group: str
    prefix: str
    tag: str
    figures: Optional[BaselineFigures] = None
    tput_ratio: Optional[Number] = None
    e2e_ratio: Optional[Number] = None
    intvty_ratio: Optional[Number] = None

    @property
    def suffix(self) -> str:
        return f"{self.prefix}_{self.tag}"

    def field_names(self) -> tuple[str, str, str]:
        """The group's inner keys for (median E2E, tput per GPU, median interactivity)."""
        p, t = self.prefix, self.tag
        return f"{p}_median_e2e_{t}", f"{p}_tput_pergpu_{t}", f"{p}_median_intvty_{t}"

    def to_items(self) -> list[tuple[str, Any]]:
        e2e, tput, intvty = self.field_names()
        group = None if self.figures is None else {
            e2e: self.figures.median_e2e_ms, tput: self.figures.tput_per_gpu, intvty: self.figures.median_intvty}
        return [(self.group, group), (TPUT_RATIO + self.suffix, self.tput_ratio),
                (E2E_RATIO + self.suffix, self.e2e_ratio), (INTVTY_RATIO + self.suffix, self.intvty_ratio)]

    @classmethod
    def pop_from(cls, data: dict[str, Any]) -> BaselineComparison | None:
        """Take the comparison's keys out of a record's JSON object (found by the ratio key's suffix)."""
        suffixes = [k[len(TPUT_RATIO):] for k in data if k.startswith(TPUT_RATIO)]
        if not suffixes:
            return None
        if len(suffixes) > 1:
            raise ValueError(f"the record compares with several baselines ({', '.join(suffixes)}); one is allowed")
        prefix, _, tag = suffixes[0].rpartition("_")
        e2e_key = f"{prefix}_median_e2e_{tag}"
        group = next((k for k, v in data.items() if isinstance(v, dict) and e2e_key in v), None)
        if group is None:  # no baseline point: the group is the null key that names a baseline
            group = next((k for k, v in data.items() if v is None and "baseline" in k and k != "baseline_note"), None)
        if group is None:
            raise ValueError(f"the record has {TPUT_RATIO}{suffixes[0]} but no baseline group holding {e2e_key}")
        fields = data.pop(group)
        ratios = [data.pop(p + suffixes[0], None) for p in (TPUT_RATIO, E2E_RATIO, INTVTY_RATIO)]
        figures = None
        if fields is not None:
            figures = BaselineFigures(median_e2e_ms=fields[e2e_key], tput_per_gpu=fields[f"{prefix}_tput_pergpu_{tag}"],
                                      median_intvty=fields[f"{prefix}_median_intvty_{tag}"])
        return cls(group=group, prefix=prefix, tag=tag, figures=figures, tput_ratio=ratios[0], e2e_ratio=ratios[1],
                   intvty_ratio=ratios[2])
