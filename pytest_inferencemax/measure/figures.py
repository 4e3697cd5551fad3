"""The one table of a point's figures: each figure's record key, unit, which way is better, the baseline's
attribute and the verdict rules' name for it, and how parity judges it. Compare, rounds, noise, the summary,
the CI's test view and parity read their lists from here (docs/metrics.md defines each figure)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Mapping


class ParityJudgement(str, Enum):
    """How parity (judge/parity.py) judges a figure between the two clients; figures without one are shown."""

    IDENTICAL = "identical"  # the same in every run of both clients
    WITHIN_SPREAD = "within spread"  # the means' difference within the larger run-to-run spread


@dataclass(frozen=True)
class Figure:
    key: str  # the record's key (the reference client's JSON key where it has one)
    unit: str
    higher_is_better: bool | None = None  # None: a count, neither way better
    baseline_attr: str | None = None  # the baseline point's attribute (judge/baseline.py) it is judged against
    rule_metric: str | None = None  # the verdict rules' name for it (plan/rules.py): a judged figure
    parity: ParityJudgement | None = None


FIGURES: tuple[Figure, ...] = (
    Figure("completed", "requests", parity=ParityJudgement.IDENTICAL),
    Figure("num_prompts", "requests"),
    Figure("max_concurrency", "requests"),
    Figure("total_input_tokens", "tokens", parity=ParityJudgement.IDENTICAL),
    Figure("total_output_tokens", "tokens", parity=ParityJudgement.IDENTICAL),
    Figure("request_throughput", "req/s", True, parity=ParityJudgement.WITHIN_SPREAD),
    Figure("output_throughput", "tok/s", True, parity=ParityJudgement.WITHIN_SPREAD),
    Figure("total_token_throughput", "tok/s", True, parity=ParityJudgement.WITHIN_SPREAD),
    Figure("tput_per_gpu", "tok/s/GPU", True, baseline_attr="tput_per_gpu", rule_metric="tput_per_gpu"),
    Figure("median_e2el_ms", "ms", False, baseline_attr="median_e2e_ms", rule_metric="median_e2e"),
    Figure("interactivity", "tok/s/user", True, baseline_attr="median_intvty", rule_metric="interactivity"),
    Figure("median_ttft_ms", "ms", False),
    Figure("mean_tpot_ms", "ms", False, parity=ParityJudgement.WITHIN_SPREAD),
    Figure("median_tpot_ms", "ms", False, parity=ParityJudgement.WITHIN_SPREAD),
    Figure("median_itl_ms", "ms", False),
    Figure("p99_e2el_ms", "ms", False),
)
BY_KEY: Mapping[str, Figure] = MappingProxyType({f.key: f for f in FIGURES})


def keys(*names: str) -> tuple[str, ...]:
    """A view's figures, in its order; each must be in the table (a typo fails at import)."""
    missing = [n for n in names if n not in BY_KEY]
    if missing:
        raise KeyError(f"figures not in measure/figures.py's table: {missing}")
    return names


# The figures a verdict judges (and --compare-to compares, and rounds carry intervals for), in the table's order
JUDGED: tuple[str, ...] = tuple(f.key for f in FIGURES if f.rule_metric)
# a verdict rule's metric -> the figure it names
BY_RULE_METRIC: Mapping[str, Figure] = MappingProxyType({f.rule_metric: f for f in FIGURES if f.rule_metric})
# Parity's judged figures: identical counts, and rates/TPOT within the clients' spread
PARITY_IDENTICAL: tuple[str, ...] = tuple(f.key for f in FIGURES if f.parity is ParityJudgement.IDENTICAL)
PARITY_WITHIN_SPREAD: tuple[str, ...] = tuple(f.key for f in FIGURES if f.parity is ParityJudgement.WITHIN_SPREAD)
# a point's figures in summary.json, and in the CI's test view (pytest --junitxml <property>)
SUMMARY: tuple[str, ...] = keys("completed", "num_prompts", "request_throughput", "output_throughput",
                                "total_token_throughput", "tput_per_gpu", "median_ttft_ms", "median_tpot_ms",
                                "median_e2el_ms", "interactivity")
JUNIT: tuple[str, ...] = keys("completed", "num_prompts", "max_concurrency", "output_throughput",
                              "total_token_throughput", "tput_per_gpu", "interactivity", "median_ttft_ms",
                              "median_tpot_ms", "median_itl_ms", "median_e2el_ms", "p99_e2el_ms")


def judged_by(rule_metric: str) -> tuple[str, str, bool]:
    """A verdict rule's metric as (our figure's record key, the baseline point's attribute, higher is better)."""
    figure = BY_RULE_METRIC[rule_metric]
    assert figure.baseline_attr is not None and figure.higher_is_better is not None
    return figure.key, figure.baseline_attr, figure.higher_is_better
