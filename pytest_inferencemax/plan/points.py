"""Points: the (model, ISL, OSL, CONC) runs a suite's stage asks for, one test each."""
from __future__ import annotations

from dataclasses import dataclass

from pytest_inferencemax.plan.suite import ClientVersion, Suite, SuiteError


@dataclass(frozen=True)
class Point:
    """One benchmark point and the run parameters the stage's rules give it."""

    suite: str
    stage: str
    isl: int
    osl: int
    conc: int
    num_prompts: int
    num_warmups: int
    range_ratio: float
    tp: int
    tput_per_gpu_divisor: int
    num_prompts_overridden: bool = False
    variant: str | None = None  # the recipe variant it runs on (plan/variants.py); None: the suite's recipe
    client: ClientVersion = ClientVersion()  # the bounty client the stage mirrors: initial request, prompt builder

    @property
    def id(self) -> str:
        """The test id: ``gptoss-1024-1024-c4`` (``gptoss-1024-1024-c4-bs32`` on variant ``bs32``), so
        ``-k 1024-1024`` and ``-k bs32`` select by substring; ``-k "c4]"`` (the id's end) is exact
        where ``-k c4`` would also match ``c48`` (README, Selecting points)."""
        base = f"{self.suite}-{self.isl}-{self.osl}-c{self.conc}"
        return f"{base}-{self.variant}" if self.variant else base


@dataclass(frozen=True)
class PlanOptions:
    """Command-line choices that change the plan."""

    stage: str | None = None
    conc: tuple[int, ...] | None = None  # replaces every workload's CONC list
    num_prompts: int | None = None  # replaces the NUM_PROMPTS rule (for quick looks; marked in results)
    num_gpus: int | None = None  # the server's GPU count (TP); default: the suite's
    variants: tuple[str, ...] = ()  # every point once per variant, variant after variant


def plan_points(suite: Suite, options: PlanOptions = PlanOptions()) -> list[Point]:
    """Expand a suite's stage into points, in file order."""
    stage_name, stage = suite.stage(options.stage)
    tp = options.num_gpus or suite.suite.tp
    divisor = tp if stage.tput_per_gpu_divisor == "tp" else stage.tput_per_gpu_divisor
    points: list[Point] = []
    seen: set[str] = set()
    for variant, w in ((v, w) for v in (options.variants or (None,)) for w in stage.workloads):
        for conc in options.conc or w.conc:
            point = Point(
                suite=suite.name, stage=stage_name, isl=w.isl, osl=w.osl, conc=conc,
                num_prompts=options.num_prompts or conc * w.prompts_per_conc,
                num_warmups=stage.client.warmups_per_conc * conc,
                range_ratio=stage.range_ratio, tp=tp, tput_per_gpu_divisor=divisor,
                num_prompts_overridden=options.num_prompts is not None, variant=variant, client=stage.client,
            )
            if point.id in seen:
                raise SuiteError(f"{suite.path}: stage {stage_name!r} lists {point.id} twice")
            seen.add(point.id)
            points.append(point)
    return points
