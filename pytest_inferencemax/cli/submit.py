"""Re-submit a saved results folder to the bounty leaderboard.

    python -m pytest_inferencemax.cli.submit results/<run-id> --team "My Team" [--dry-run] [--force]
        [--leaderboard-url URL] [--layout s1|s2] [--points ID,ID] [--retries N] [--backoff S]

Payloads are saved to ``<run-id>/submissions/<point>.json`` before they are sent. The URL comes
from ``--leaderboard-url``, else ``$LB_URL_OVERRIDE``, else the record's ``inferencemax.leaderboard_url``
(``${isl}``/``${osl}`` are filled in). ``$HF_TOKEN``, when set, is sent as a bearer token and
never written. Before a point is sent, the Space's ``submit_results`` inputs (``/gradio_api/info``)
are compared with its payload: a Space that takes other inputs (another stage's layout: fix it
with --layout) or whose description cannot be read gets nothing; the two lists are shown side by
side. --dry-run checks only if the Space answers at once. Exit status: 0 all sent (or shown, with
--dry-run), 1 some point refused or failed, 2 bad arguments or nothing to submit.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_inferencemax.publish.submission import LAYOUTS, SubmissionError, submit_run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.submit",
                                description="Submit the points of a saved results folder to the bounty leaderboard.")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a run folder: results/<run-id>")
    p.add_argument("--team", required=True, help="team name shown on the leaderboard")
    p.add_argument("--dry-run", action="store_true", help="build and save the payloads, print them, send nothing")
    p.add_argument("--force", action="store_true",
                   help="also send points whose accuracy gate did not pass (e.g. --skip-accuracy runs) "
                        "or that had failed requests")
    p.add_argument("--leaderboard-url", metavar="URL",
                   help="the Space's URL, may use ${isl} ${osl} (default: the record's, or $LB_URL_OVERRIDE)")
    p.add_argument("--layout", choices=LAYOUTS, help="payload layout (default: the record's, else its stage)")
    p.add_argument("--points", metavar="IDS", help="comma-separated point ids to send (default: all)")
    p.add_argument("--retries", type=int, default=4, help="retries on connection errors and 5xx (default 4)")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubling (default 1)")
    p.add_argument("--sig-digits", type=int, metavar="N",
                   help="round numbers to N significant digits as the original runner did (6); default: full")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.team.strip():
        parser.error("--team must not be empty")
    if not args.results_dir.is_dir():
        parser.error(f"{args.results_dir} is not a folder")
    if args.retries < 0 or args.backoff < 0:
        parser.error("--retries and --backoff must not be negative")
    points = {p.strip() for p in args.points.split(",") if p.strip()} if args.points else None
    try:
        outcomes = submit_run(args.results_dir, args.team, dry_run=args.dry_run, force=args.force,
                              url_override=args.leaderboard_url, only_qualified=points, layout=args.layout,
                              sig_digits=args.sig_digits, retries=args.retries, backoff=args.backoff)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not outcomes:
        print(f"error: none of the points {sorted(points or ())} is in {args.results_dir}", file=sys.stderr)
        return 2
    good = {"dry-run"} if args.dry_run else {"submitted"}
    bad = [o for o in outcomes if o.status not in good]
    print(f"{len(outcomes) - len(bad)}/{len(outcomes)} point(s) "
          f"{'ready (dry run, nothing sent)' if args.dry_run else 'submitted'}; payloads in "
          f"{args.results_dir / 'submissions'}")
    for o in bad:  # a first line: a signature mismatch's side-by-side lists were printed above
        print(f"  {o.status}: {o.point}: {o.message.splitlines()[0] if o.message else ''}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
