"""``--accuracy-at``: which points also run their stage's accuracy task at their own concurrency, after their timed
run, on the same server (the gate runs once per server at the stage's ``num_concurrent``; a kernel can be exact at
batch 10 and wrong at batch 128).

A selection is a tuple of terms, each chosen per curve (the points of one suite, stage, variant, ISL and OSL that
this session plans, whatever ``-k`` selects):

- ``max``: the curve's highest CONC; ``median``: InferenceX's median, ``sorted(CONCs)[n // 2]`` (the upper one of
  an even count); ``all``: every point; a number: the point at that CONC;
- ``inferencex``: InferenceX's own selection (``utils/matrix_logic/generate_sweep_configs.py::mark_eval_entries``):
  on 8192/1024 curves only, among CONCs of at least 16, the median and the highest.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable

Term = str | int
NAMED = ("max", "median", "all", "inferencex")
INFERENCEX_MIN_CONC = 16  # InferenceX's MIN_EVAL_CONC
INFERENCEX_SHAPE = (8192, 1024)  # InferenceX evaluates its 8k/1k configurations only


def accuracy_at(text: str) -> tuple[Term, ...]:
    """``max``, ``median,max``, ``4,32``, ``all``, ``inferencex`` -> the terms; ``off`` or ``gate`` -> () (the gate
    alone, the default)."""
    terms: list[Term] = []
    for word in text.replace(",", " ").split():
        word = word.strip().lower()
        if word in ("off", "gate", "none"):
            continue
        if word.isdigit() and int(word) > 0:
            terms.append(int(word))
        elif word in NAMED:
            terms.append(word)
        else:
            raise argparse.ArgumentTypeError(
                f"{word!r} is not a point selection: write max, median, all, inferencex or a CONC (comma-separated, "
                "e.g. 'median,max' or '4,32'), or off")
    return tuple(dict.fromkeys(terms))


def select(terms: Iterable[Term], concs: Iterable[int], isl: int, osl: int) -> dict[int, str]:
    """The CONCs of one curve that ``terms`` select, each with the term(s) that chose it (e.g. ``{128: "max"}``)."""
    ordered = sorted(set(concs))
    chosen: dict[int, list[str]] = {}

    def pick(conc: int, why: str) -> None:
        chosen.setdefault(conc, []).append(why)

    if not ordered:
        return {}
    for term in terms:
        if term == "max":
            pick(ordered[-1], "max")
        elif term == "median":
            pick(ordered[len(ordered) // 2], "median")
        elif term == "all":
            for conc in ordered:
                pick(conc, "all")
        elif term == "inferencex":
            eligible = [c for c in ordered if c >= INFERENCEX_MIN_CONC]
            if (isl, osl) == INFERENCEX_SHAPE and eligible:
                for conc in {eligible[len(eligible) // 2], eligible[-1]}:
                    pick(conc, "inferencex")
        elif isinstance(term, int) and term in ordered:
            pick(term, f"conc {term}")
    return {conc: ", ".join(dict.fromkeys(why)) for conc, why in sorted(chosen.items())}
