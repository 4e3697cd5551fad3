"""Serve: the inference server's life (launch, readiness, death, supervisor, pool), its OpenAI API and ``/metrics``,
and what observes it during a point: telemetry and GPU samples, the prefix-cache probe.
"""
