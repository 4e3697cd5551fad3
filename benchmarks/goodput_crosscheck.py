"""request_goodput: against the bounty client's own calculate_metrics, on the same random per-request data.

    .venv/bin/python benchmarks/goodput_crosscheck.py --kbs /work/scratch/kbs-ee86723 [--trials 200]

``--kbs``: a checkout of kimbochen/bench_serving (any commit with ``--goodput``: 499c0b1, ee86723), fetched
into a scratch folder, never committed. Exit 1 at the first trial whose figures differ."""
import argparse
import random
import sys

args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
args.add_argument("--kbs", required=True, help="a checkout of kimbochen/bench_serving")
args.add_argument("--trials", type=int, default=200)
opts = args.parse_args()
sys.path.insert(0, opts.kbs)
import benchmark_serving as ref  # noqa: E402
from backend_request_func import RequestFuncOutput  # noqa: E402
from pytest_inferencemax.measure.loadtypes import RequestResult  # noqa: E402
from pytest_inferencemax.measure.metrics import compute_metrics  # noqa: E402

class Tok:  # the reference re-tokenizes only when output_tokens is None; every request here carries a count
    def __call__(self, text, add_special_tokens=False):
        class R: input_ids = text.split()
        return R()

rng = random.Random(0)
checked = 0
for trial in range(opts.trials):
    ours, theirs, inputs = [], [], []
    for i in range(rng.randint(1, 30)):
        ok = rng.random() > 0.1
        n = rng.choice([1, 2, 5, 17, 64])
        ttft = rng.uniform(0.001, 2.0)
        lat = ttft + rng.uniform(0.0, 3.0)
        ours.append(RequestResult(prompt_len=10, output_len_requested=n, success=ok, ttft=ttft, latency=lat, itl=[],
                                  output_tokens=n, reference_output_tokens=n, generated_text=""))
        o = RequestFuncOutput(); o.success = ok; o.ttft = ttft; o.latency = lat; o.itl = []; o.output_tokens = n
        o.generated_text = ""; o.prompt_len = 10
        theirs.append(o); inputs.append(("p", 10, n, None))
    slos = {k: rng.choice([50, 200, 800, 1500, 3000]) for k in rng.sample(["ttft", "tpot", "e2el"], rng.randint(1, 3))}
    dur = rng.uniform(1, 20)
    m = compute_metrics(ours, dur, tput_per_gpu_divisor=1, goodput=slos)
    r, _ = ref.calculate_metrics(inputs, theirs, dur, Tok(), ["ttft"], [99], slos)
    if m["request_goodput:"] != r.request_goodput:
        sys.exit(f"trial {trial}, SLOs {slos}: ours {m['request_goodput:']}, the reference's {r.request_goodput}")
    checked += 1
print(f"{checked} random trials: request_goodput: equal to the reference's calculate_metrics in every one")
