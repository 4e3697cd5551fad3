"""Results: the typed point record (``record.py``) built purely from a measurement (``build.py``), one point run
start to end (``point_pipeline.py``: measure -> build -> write), the run folder every file goes through
(``store.py``), rounds and their pooling, merging runs, summary.json.
"""
