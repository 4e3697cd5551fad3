"""Judge: baselines, the throughput-vs-latency curve, verdicts under a stage's rule, noise of repeated rounds,
pruning, variant ranking, parity's judgement.
"""
