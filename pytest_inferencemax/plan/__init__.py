"""Plan: what a run will do, decided before anything starts. Suites and their rule tables, typed as they load
(``suite.py``, ``rules.py``), points (``points.py``), launch recipes and variants, GPU placement, the one option table
(``options.py``), value parsers and the ``Word`` enums every status is (``values.py``), the record parts' base.
Imports nothing else of the package.
"""
