"""What a point measured, as one comparable value: two records with equal identities are rounds of
one measurement (merge pools them) and a record with the identity a point would have can stand
for it (variants reuse it instead of running it again)."""
from __future__ import annotations

from typing import Any

from pytest_inferencemax.plan.recipe import KEY_SCHEME
from pytest_inferencemax.results.record import PointRecord

EXTERNAL = "external server"
OLDER_KEY = "hash of an older version"
"""How a record's recipe hash from before ``r2-`` keys reads (that scheme hashed the run folder, port and machine
paths, so it matches no hash of this version; kept short: compare messages cut values at 60 characters)."""


def current_key(key: str | None) -> bool:
    """Whether ``key`` is a recipe hash of this version's scheme (plan/recipe.py, ``Recipe.key``)."""
    return bool(key) and str(key).startswith(f"{KEY_SCHEME}-")


def recipe_identity(key: str | None) -> str:
    """A launched server's recipe hash as it compares: this version's key as it is; an older version's (12 hex
    digits, which changed with the run folder) or none, named so that a mismatch explains itself (merge's
    "measured different things (recipe 'c777fe3b23ff (hash of an older version)' vs 'r2-...')")."""
    if current_key(key):
        return str(key)
    return f"{key} ({OLDER_KEY})" if key else "no recipe hash (record of an older version)"


def configuration(rec: PointRecord) -> dict[str, Any]:
    """The recipe (its hash; ``external server`` when the run did not launch it), model, workload and the bounty
    client version it mirrored (its prompt builder and initial request; None in records from before it was kept)."""
    a, o = rec.benchmark_args, rec.ours
    return {"recipe": recipe_identity(o.server.recipe_key) if o.server and o.server.launched else EXTERNAL,
            "model": rec.model_id, "isl": o.isl, "osl": o.osl, "conc": o.conc, "num_prompts": rec.num_prompts,
            "num_warmups": a.num_warmups, "range_ratio": float(a.random_range_ratio), "seed": a.seed,
            "tput_per_gpu_divisor": o.tput_per_gpu_divisor,
            "client": o.client_version.model_dump(include=CLIENT_FIELDS) if o.client_version else None}


CLIENT_FIELDS = {"source", "initial_test_request", "warmups_per_conc", "prompt_builder"}
