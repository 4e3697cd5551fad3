"""Measure: one point's load and what it measured. The workload; the clients as peers behind one protocol
(``loadtypes.Sender``; ``precise_client``, ``refclient``; chosen in ``clients.py``); the schedule (``loadgen``) and
its processes (``multiclient``); the figures (``metrics``, the figure table ``figures``); the self-checks as models
(``checks``, ``token_check``); ``runner.measure_point`` returns a typed ``Measurement``; parity's runs.
"""
