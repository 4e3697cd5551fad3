"""Publish: the report, plots, leaderboard submission and its log, parity's table; ``finish.py`` ends a run.
"""
