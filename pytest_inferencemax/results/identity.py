"""What a point measured, as one comparable value: two records with equal identities are rounds of
one measurement (merge pools them) and a record with the identity a point would have can stand
for it (variants reuse it instead of running it again)."""
from __future__ import annotations

from typing import Any

from pytest_inferencemax.results.record import PointRecord

EXTERNAL = "external server"


def configuration(rec: PointRecord) -> dict[str, Any]:
    """The recipe (its hash; ``external server`` when the run did not launch it), model and workload."""
    a, o = rec.benchmark_args, rec.ours
    return {"recipe": o.server.recipe_key if o.server and o.server.launched else EXTERNAL,
            "model": rec.model_id, "isl": o.isl, "osl": o.osl, "conc": o.conc, "num_prompts": rec.num_prompts,
            "num_warmups": a.num_warmups, "range_ratio": float(a.random_range_ratio), "seed": a.seed,
            "tput_per_gpu_divisor": o.tput_per_gpu_divisor}
