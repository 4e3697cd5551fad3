"""The pytest plugin: options and ``Settings`` (``options.py``, from ``plan.options``), hooks, the ``inferencemax``
fixture, and the session (``session.py``) with its parts: the suite catalog, the servers, the accuracy gates and
the ledger of points.
"""
