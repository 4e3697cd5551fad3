"""Parsers of the values a user gives on a command line or in an ini file.

Each turns text into a value or raises ``argparse.ArgumentTypeError`` with a message that names
the rule; pytest's options (``plugin/options.py``) and every command (``cli/``) share them.
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Any
from enum import Enum
from urllib.parse import urlsplit

class Word(str, Enum):
    """An enum of words: each member is its value wherever it is printed, compared or written to JSON (as
    Python 3.11's StrEnum, on 3.10 too). Every status the package records is one (docs/results.md)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)


class ClientKind(Word):
    """The load generators a point can run with (docs/metrics.md); the value is what options, suites and records
    say (``--client precise``)."""

    PRECISE = "precise"  # ours: pooled keep-alive connections, reads stamped on arrival (measure/precise_client.py)
    REFERENCE = "reference"  # the bounty client's semantics on aiohttp (measure/refclient.py)


CLIENTS = tuple(kind.value for kind in ClientKind)


def _whole_number(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "0 or more")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number more than 0")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds, 0 or more")
    return value


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535, or 0 for a free one)")
    return value


def conc_list(text: str) -> tuple[int, ...]:
    """``4,8,16`` -> (4, 8, 16)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give concurrencies as a comma-separated list, e.g. 4,8,16")
    values = tuple(positive_int(p) for p in parts)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} lists a concurrency twice")
    return values


def id_list(text: str) -> tuple[str, ...]:
    """``0,1,2,3`` or ``0-7`` -> device ids."""
    ids: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, dash, hi = part.partition("-")
        if dash and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            ids += [str(i) for i in range(int(lo), int(hi) + 1)]
        elif not dash and part.replace("_", "").isalnum():
            ids.append(part)
        else:
            raise argparse.ArgumentTypeError(f"{part!r} in {text!r} is not a device id or a range like 0-7")
    if not ids or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct device ids, e.g. 0,1,2,3 or 0-7")
    return tuple(ids)


def name_list(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names or not all(n.replace("_", "").isalnum() for n in names):
        raise argparse.ArgumentTypeError(f"{text!r}: give environment variable names, e.g. HIP_VISIBLE_DEVICES")
    return names


def http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL like http://127.0.0.1:8888")
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has a bad port; use http://host:1-65535") from None
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: give the server's root (http://host:port) without ?query or #fragment")
    if parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the server's root (http://host:port), not an endpoint path such as /v1")
    return text.rstrip("/")


def percentage(text: str) -> float:
    """``5`` or ``5%`` -> 5.0 (percent)."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 5 or 5%") from None
    if not (math.isfinite(value) and 0 <= value < 100):
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}); e.g. '{{\"top_k\": 1}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"top_k\": 1}'")
    return value


GOODPUT_METRICS = ("ttft", "tpot", "e2el")  # the reference client's SLO names (benchmark_serving.py --goodput)


def goodput_slos(text: str) -> dict[str, float]:
    """``ttft:500 tpot:50`` (spaces or commas between pairs) -> {"ttft": 500.0, "tpot": 50.0}: service level
    objectives in milliseconds, as the reference client's ``--goodput KEY:VALUE ...`` takes them (a name given
    twice: the last wins, as there)."""
    slos: dict[str, float] = {}
    for pair in text.replace(",", " ").split():
        name, sep, value = pair.partition(":")
        try:
            number = float(value) if sep and ":" not in value else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{pair!r} is not KEY:VALUE; write SLOs in milliseconds, e.g. "
                                             "'ttft:500 tpot:50 e2el:10000'")
        if name not in GOODPUT_METRICS:
            raise argparse.ArgumentTypeError(f"{name!r} is not an SLO the reference client knows; use "
                                             f"{', '.join(GOODPUT_METRICS)}")
        if number < 0:
            raise argparse.ArgumentTypeError(f"{pair!r}: an SLO must be 0 or more milliseconds")
        slos[name] = number
    if not slos:
        raise argparse.ArgumentTypeError("no SLO given; write e.g. 'ttft:500 tpot:50 e2el:10000' (milliseconds)")
    return slos


def cache_reset_mode(text: str) -> str:
    """``auto``, ``on`` or ``off`` (--reset-prefix-cache)."""
    if text.strip() not in ("auto", "on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: write auto, on or off")
    return text.strip()


def at_least_two(text: str) -> int:
    return _whole_number(text, 2, "at least 2 (one run per client shows no run-to-run spread)")


def repeat_count(text: str) -> int | str:
    """``--repeat``: rounds per point, a whole number from 1, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _whole_number(text, 1, "at least 1")
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a round count: give a whole number from 1 (rounds per "
                                         "point) or 'auto' (rounds until the comparison with the baseline is "
                                         "decided, up to --repeat-max)") from None


def rounds_max(text: str) -> int:
    return _whole_number(text, 2, "at least 2 (--repeat auto starts with 2 rounds, the fewest that show a spread)")


def client_kind(text: str) -> str:
    if text not in CLIENTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a client: choose one of {', '.join(CLIENTS)} "
                                         "(precise is the default)")
    return text


def run_name(text: str) -> str:
    if not text or any(c in text for c in "/\\") or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} cannot name a folder; use letters, digits, - and _")
    return text


def boolean(text: str) -> bool:
    """An ini file's yes/no: true/false, yes/no, on/off, 1/0 (any case)."""
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a yes/no value: use true or false")
