"""What a point measured, as one comparable value: two records with equal identities are rounds of
one measurement (merge pools them) and a record with the identity a point would have can stand
for it (variants reuse it instead of running it again)."""
from __future__ import annotations

from typing import Any

from pytest_inferencemax.results.record import PointRecord

EXTERNAL = "external server"


def configuration(rec: PointRecord) -> dict[str, Any]:
    """The recipe (its hash; ``external server`` when the run did not launch it), model, workload and the bounty
    client version it mirrored (its prompt builder and initial request; None in records from before it was kept)."""
    a, o = rec.benchmark_args, rec.ours
    return {"recipe": o.server.recipe_key if o.server and o.server.launched else EXTERNAL,
            "model": rec.model_id, "isl": o.isl, "osl": o.osl, "conc": o.conc, "num_prompts": rec.num_prompts,
            "num_warmups": a.num_warmups, "range_ratio": float(a.random_range_ratio), "seed": a.seed,
            "tput_per_gpu_divisor": o.tput_per_gpu_divisor,
            "client": o.client_version.model_dump(include=CLIENT_FIELDS) if o.client_version else None}


CLIENT_FIELDS = {"source", "initial_test_request", "warmups_per_conc", "prompt_builder"}
