"""Commands: ``bench`` (one point, no suite), ``parity``, ``merge``, ``submit``, ``matrix``, ``baseline_import``; their
shared options come from ``plan.options``, as pytest's do.
"""
