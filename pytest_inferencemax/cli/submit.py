"""Re-submit a saved results folder to the bounty leaderboard.

    python -m pytest_inferencemax.cli.submit results/<run-id> --team "My Team" [--dry-run] [--force]
        [--unqualified] [--baselines DIR] [--leaderboard-url URL] [--layout s1|s2] [--points ID,ID]
        [--retries N] [--backoff S] [--sig-digits N]

Only the points of curves that qualified are sent, as with ``pytest --submit-team``: the run's curves are
judged again from its records (publish/submit_select.py says how, and why not from saved verdicts); the
others are held back, each curve named with its verdict and why. ``--unqualified`` sends them anyway,
``--force`` also points whose accuracy gate was skipped or whose requests failed. The pytest option
names work too (``--submit-team``, ``--submit-dry-run``, ``--submit-force``, ``--submit-unqualified``).
``--dry-run`` needs no team: its payloads say ``DRY RUN: no team given``.

Payloads are saved to ``<run-id>/submissions/<point>.json`` before they are sent (a dry run's to
``<point>.dry-run.json``), and every outcome, held-back points too, is appended to
``submissions/log.jsonl``. The URL comes from ``--leaderboard-url``, else ``$LB_URL_OVERRIDE``, else the
record's ``inferencemax.leaderboard_url`` (``${isl}``/``${osl}`` are filled in). ``$HF_TOKEN``, when set,
is sent as a bearer token and never written. Before a point is sent, the Space's ``submit_results``
inputs (``/gradio_api/info``) are compared with its payload (docs/submission.md). Exit status: 0 every
qualifying point sent (or shown, with --dry-run); 1 some point refused or failed; 2 bad arguments (all
of them named in one message), or nothing to submit.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_inferencemax.errors import ResultsWriteError
from pytest_inferencemax.publish.submission import LAYOUTS, SubmissionError
from pytest_inferencemax.publish.submit_log import LOG_NAME, SUBMISSIONS_DIR
from pytest_inferencemax.publish.submit_select import (
    DRY_RUN_TEAM, SubmitOptions, judge_saved_run, select_points, submit_selected,
)
from pytest_inferencemax.results.record import RecordError
from pytest_inferencemax.results.store import RunFolder


def _parser() -> argparse.ArgumentParser:
    # no required=, type= or choices=: argparse would stop at the first bad one; _problems() names them all
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.submit",
                                description="Submit the qualifying points of a saved results folder to the bounty "
                                            "leaderboard.")
    p.add_argument("results_dir", nargs="?", metavar="RESULTS_DIR", help="a run folder: results/<run-id>")
    p.add_argument("--team", "--submit-team", dest="team",
                   help="team name shown on the leaderboard (required, except with --dry-run)")
    p.add_argument("--dry-run", "--submit-dry-run", dest="dry_run", action="store_true",
                   help=f"build, save and print the payloads, send nothing (no --team: '{DRY_RUN_TEAM}')")
    p.add_argument("--force", "--submit-force", dest="force", action="store_true",
                   help="also send points whose accuracy gate did not pass (e.g. --skip-accuracy runs) "
                        "or that had failed requests")
    p.add_argument("--unqualified", "--submit-unqualified", dest="unqualified", action="store_true",
                   help="also send curves that did not qualify (not applicable, not qualified, inconclusive, "
                        "incomplete) and variants that are not their curve's best")
    p.add_argument("--baselines", metavar="DIR",
                   help="folder of the AMD tables the verdict rules name (default: ./baselines)")
    p.add_argument("--leaderboard-url", metavar="URL",
                   help="the Space's URL, may use ${isl} ${osl} (default: the record's, or $LB_URL_OVERRIDE)")
    p.add_argument("--layout", metavar="{s1,s2}", help="payload layout (default: the record's, else its stage)")
    p.add_argument("--points", metavar="IDS", help="comma-separated point ids to send (default: all that qualify)")
    p.add_argument("--retries", metavar="N", default="4", help="retries on connection errors and 5xx (default 4)")
    p.add_argument("--backoff", metavar="S", default="1", help="first retry wait in seconds, doubling (default 1)")
    p.add_argument("--sig-digits", metavar="N",
                   help="round numbers to N significant digits as the original runner did (6); default: full")
    return p


def _number(value: str | None, name: str, kind: type, low: float, problems: list[str]) -> int | float | None:
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not number >= low:  # NaN too
        problems.append(f"{name} {value!r}: must be {'a whole number' if kind is int else 'a number'} >= {low:g}")
        return None
    return number


def _problems(args: argparse.Namespace, unknown: list[str]) -> list[str]:
    """Every missing or invalid argument, each with its fix."""
    problems = [f"unrecognized argument(s): {' '.join(unknown)} (see --help)"] if unknown else []
    if args.results_dir is None:
        problems.append("RESULTS_DIR is missing: pass a run folder, results/<run-id>")
    elif not Path(args.results_dir).is_dir():
        problems.append(f"RESULTS_DIR {args.results_dir} is not a folder: pass a run folder, results/<run-id>")
    if args.team is None and not args.dry_run:
        problems.append(f"--team is missing: name the team to submit as (a --dry-run may go without one: its "
                        f"payloads say {DRY_RUN_TEAM!r})")
    elif args.team is not None and not args.team.strip():
        problems.append("--team is empty: name the team to submit as")
    args.retries = _number(args.retries, "--retries", int, 0, problems)
    args.backoff = _number(args.backoff, "--backoff", float, 0, problems)
    args.sig_digits = _number(args.sig_digits, "--sig-digits", int, 1, problems)
    if args.layout is not None and args.layout not in LAYOUTS:
        problems.append(f"--layout {args.layout!r}: use one of {', '.join(LAYOUTS)}")
    if args.points is not None and not [p for p in args.points.split(",") if p.strip()]:
        problems.append("--points names no point: give comma-separated point ids, or leave it out for all")
    if args.baselines is not None and not Path(args.baselines).is_dir():
        problems.append(f"--baselines {args.baselines} is not a folder: pass the baselines/ folder the run used")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if problems := _problems(args, unknown):
        parser.error(problems[0] if len(problems) == 1 else
                     f"{len(problems)} problems with the arguments:\n" + "\n".join(f"  - {p}" for p in problems))
    run_dir = Path(args.results_dir)
    opts = SubmitOptions(team=args.team, dry_run=args.dry_run, force=args.force, unqualified=args.unqualified,
                         url_override=args.leaderboard_url)
    try:
        records = RunFolder(run_dir).points()
        if not records:
            raise SubmissionError(f"no point records in {run_dir} (<point>.json files with an 'inferencemax' key); "
                                  "pass the run folder, results/<run-id>")
        points = {p.strip() for p in args.points.split(",") if p.strip()} if args.points else None
        if missing := sorted((points or set()) - {r.point_id for r in records}):
            raise SubmissionError(f"--points: {', '.join(missing)} not in {run_dir} (it has: "
                                  f"{', '.join(r.point_id for r in records)})")
        verdicts, ranking = judge_saved_run(run_dir, records, Path(args.baselines or "baselines"))
        for key, v in verdicts.items():
            print(f"verdict {key.title}: {v.label.upper()}")
            for note in (n for n in v.notes if n.startswith("AMD table ")):  # the rule names a table not found
                print(f"  note: {note} (pass the folder that holds it with --baselines)")
        selection = select_points(records, verdicts, ranking, unqualified=opts.unqualified, among=points)
        if opts.dry_run and opts.team is None:
            print(f"inferencemax: dry run without --team: the payloads' team is {DRY_RUN_TEAM!r}")
        outcomes = submit_selected(run_dir, opts, selection, layout=args.layout, sig_digits=args.sig_digits,
                                   retries=args.retries, backoff=args.backoff)
    except (SubmissionError, RecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ResultsWriteError as exc:  # the log or a payload file: the disk said no
        print(f"error: {exc}: free space or make the run folder writable, then submit again", file=sys.stderr)
        return 1
    held = sum(len(h.points) for h in selection.held_back)
    if not outcomes:
        print(f"error: nothing to submit: the {held} point(s) asked for were held back (above); "
              "--unqualified (--submit-unqualified) sends them anyway", file=sys.stderr)
        return 2
    good = {"dry-run"} if args.dry_run else {"submitted"}
    bad = [o for o in outcomes if o.status not in good]
    held_words = (f"; {held} point(s) held back" if held and not opts.unqualified
                  else f"; {held} of them did not qualify" if held else "")
    print(f"{len(outcomes) - len(bad)}/{len(outcomes)} point(s) "
          f"{'ready (dry run, nothing sent)' if args.dry_run else 'submitted'}{held_words}; payloads and log "
          f"in {run_dir / SUBMISSIONS_DIR} ({LOG_NAME})")
    for o in bad:  # a first line: a signature mismatch's side-by-side lists were printed above
        print(f"  {o.status}: {o.point}: {o.message.splitlines()[0] if o.message else ''}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
