"""Leaderboard submission: the bounty's Gradio REST call (semantics reference section 9), made checkable.

``POST <LB>/gradio_api/call/submit_results {"data": [...]}`` answers ``{"event_id": ...}``; ``GET
.../<event_id>`` streams SSE (``generating``, ``heartbeat``, then ``complete`` or ``error``). The
original runner never read that stream and always reported success; we do. Payloads are saved under
``<run_dir>/submissions/`` before sending, outcomes logged (submit_log.py); ``$HF_TOKEN`` only in a header."""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import requests
import tenacity

from pytest_inferencemax.errors import ResultsError
from pytest_inferencemax.publish import space_signature as sig
from pytest_inferencemax.publish.space_signature import Field, SpaceSignature
from pytest_inferencemax.publish.submit_log import LogEntry, append_entry, now, payload_file
from pytest_inferencemax.results.record import PointRecord, RecordError
from pytest_inferencemax.results.redact import scrub as _scrub
from pytest_inferencemax.results.store import RunFolder, write_json_atomic

ENDPOINT = "/gradio_api/call/submit_results"
_COMMON = ("max_concurrency", "median_e2el_ms", "tput_per_gpu", "baseline_e2e_ms", "baseline_tput_per_gpu",
           "e2e_ratio", "tput_ratio", "interactivity", "baseline_interactivity", "interactivity_ratio")
# s1 (14 items): the stage-1 parse script's CSV order, "most likely" (reference section 9; stage 1.5's
# gpqa_metric is not supported); s2 (12 items): the runner's source. The names after _COMMON are the
# record's accuracy keys. Before sending, each is checked against the Space's inputs (space_signature.py).
LAYOUT_FIELDS: dict[str, tuple[Field, ...]] = {
    layout: (Field("team", "string"), *(Field(name, "number") for name in _COMMON + accuracy))
    for layout, accuracy in {"s1": ("bits_per_byte", "byte_perplexity", "word_perplexity"),
                             "s2": ("gsm8k_metric",)}.items()}
LAYOUTS = tuple(LAYOUT_FIELDS)


class SubmissionError(ResultsError):
    """A submission that could not be made or was refused; the message says what to check."""


class _Transient(Exception):
    """A connection error or a 5xx answer: worth another try."""


class _SpaceUnreadable(SubmissionError):
    """The Space's API description could not be read (a dry run notes it and goes on)."""


@dataclass
class SubmitResult:
    url: str
    status: str  # "complete" | "error" (the Space's job failed) | "unconfirmed" (no final event read)
    event_id: str | None
    data: Any = None  # the final event's data (JSON-decoded when possible)
    attempts: int = 1  # POSTs made (1 + retries)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "complete"


@dataclass
class PointSubmission:
    point: str
    status: str  # "submitted" | "failed" | "refused" | "dry-run"
    url: str | None = None
    payload: list | None = None
    saved: Path | None = None
    result: SubmitResult | None = None
    message: str = ""
    signature: SpaceSignature | None = None  # the Space's submit_results inputs, as read before sending
    signature_check: str = ""  # what became of the check: "fits ...", "mismatch", "not checked ..."


# --- payload ------------------------------------------------------------------------------------

def _number(value: Any, what: str, sig_digits: int | None) -> int | float:
    if value is None:  # a null ratio (no baseline point): 0.0, as the original sent it
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SubmissionError(f"{what} is {value!r}, not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SubmissionError(f"{what} is {value}: not sendable")
        if sig_digits:  # what C++ ostream's default (precision 6) made of the value
            value = float(f"{value:.{sig_digits}g}")
    return value


def baseline_fields(record: PointRecord) -> tuple[Any, ...]:
    """(base e2e, base tput, e2e ratio, tput ratio, base intvty, intvty ratio) of the record's baseline
    comparison; Nones without a baseline point (sent as 0.0)."""
    cmp = record.comparison
    if cmp is None:
        return (None,) * 6
    f = cmp.figures
    return (f and f.median_e2e_ms, f and f.tput_per_gpu, cmp.e2e_ratio, cmp.tput_ratio, f and f.median_intvty,
            cmp.intvty_ratio)


def check_submittable(record: PointRecord) -> list[str]:
    problems = []  # why this record is not for the leaderboard
    val = record.accuracy_validation
    if (status := record.accuracy_status) != "PASSED":
        why = f" ({val.reason})" if val and val.reason else ""
        problems.append(f"accuracy_validation.status is {status}{why}: only results that passed the accuracy "
                        "gate count (--skip-accuracy runs are for development)")
    problems += [f"its accuracy at its own load failed (--accuracy-at): {record.ours.accuracy_at_load.words()}"
                 ] if record.accuracy_failed_at_load else []
    problems += [f"the point was cut short ({record.ours.aborted.splitlines()[0]})"] if record.ours.aborted else []
    problems += [f"{record.failed} request(s) failed ({record.failed_share:.1%}, failure_rule "
                 f"{record.ours.failure_rule or 'any'})"] if record.failures_count else []
    return problems + [f"the point did not run the workload it names: {why}" for why in record.invalid]


def build_payload(record: PointRecord, team: str, stage_layout: str, *, force: bool = False,
                  sig_digits: int | None = None) -> list:
    """The ``data`` list of ``submit_results``, in the order the bounty runner posts it.
    Numbers go out at full precision by default: the original printed them through C++ ostream
    (6 significant digits, 12345.678 -> 12345.7), which only throws information away, and the
    Space parses JSON numbers either way; ``sig_digits=6`` reproduces the original's values.
    The team name is JSON-escaped when sent (the original pasted it into the JSON text raw).
    """
    if stage_layout not in LAYOUTS:
        raise SubmissionError(f"payload layout {stage_layout!r} unknown: use one of {', '.join(LAYOUTS)}")
    if not isinstance(team, str) or not team.strip():
        raise SubmissionError("team name is empty")
    if not force and (problems := check_submittable(record)):
        raise SubmissionError(f"{record.point_id} is not submittable: {'; '.join(problems)}. Re-run it properly, "
                              "or pass --force (force=True) to send it anyway")
    b_e2e, b_tput, e2e_ratio, tput_ratio, b_intvty, intvty_ratio = baseline_fields(record)
    values = [record.max_concurrency, record.median_e2el_ms, record.tput_per_gpu, b_e2e, b_tput, e2e_ratio,
              tput_ratio, record.interactivity, b_intvty, intvty_ratio]
    names = [f.name for f in LAYOUT_FIELDS[stage_layout][1:]]
    acc = record.accuracy or {}  # None only when forced past a skipped gate: 0.0 is sent
    values += [acc.get(k) for k in names[len(values):]]
    return [team.strip()] + [_number(v, k, sig_digits) for k, v in zip(names, values, strict=True)]


def leaderboard_url(template: str | None, isl: int, osl: int, override: str | None = None) -> str:
    """``override``, else ``$LB_URL_OVERRIDE``, else the stage's template; ``${isl}``/``${osl}`` filled in."""
    chosen = override or os.environ.get("LB_URL_OVERRIDE") or template
    if not chosen:
        raise SubmissionError("no leaderboard URL: the record has no inferencemax.leaderboard_url; pass "
                              "--leaderboard-url or set LB_URL_OVERRIDE")
    try:
        url = Template(chosen).substitute(isl=isl, osl=osl)
    except (KeyError, ValueError) as exc:
        raise SubmissionError(f"leaderboard URL {chosen!r}: only ${{isl}} and ${{osl}} can be filled ({exc})") from None
    if not url.startswith(("http://", "https://")):
        raise SubmissionError(f"leaderboard URL {url!r} is not an http(s) URL")
    return url.rstrip("/")


# --- sending ------------------------------------------------------------------------------------

def _retrying(retries: int, backoff: float) -> tenacity.Retrying:
    # tenacity rather than urllib3's Retry: urllib3 does not retry POST unless told to, keeps the
    # attempt count inside the adapter, and would apply one policy to the streaming GET too. Here
    # the POST and the GET each get an explicit policy (5xx and connection errors only, never 4xx).
    return tenacity.Retrying(stop=tenacity.stop_after_attempt(retries + 1), reraise=True,
                             wait=tenacity.wait_exponential(multiplier=backoff, max=60),
                             retry=tenacity.retry_if_exception_type(_Transient))


def _request(sess: requests.Session, method: str, url: str, token: str | None, **kw: Any) -> requests.Response:
    try:
        resp = sess.request(method, url, **kw)
    except requests.ConnectionError as exc:  # includes ConnectTimeout: nothing was received
        raise _Transient(f"{method} {url}: connection failed: {_scrub(str(exc), token)}") from None
    except requests.Timeout:  # a read timeout: the POST may have arrived, so no blind retry
        raise SubmissionError(f"{method} {url}: no answer in time. The Space may have received it: check the "
                              "leaderboard before submitting again") from None
    if resp.status_code >= 500:
        raise _Transient(f"{method} {url}: HTTP {resp.status_code}: {_scrub(resp.text[:300], token)}")
    if resp.status_code >= 400:
        hint = {401: "HF_TOKEN (a private Space needs one)", 403: "that HF_TOKEN may access the Space",
                404: "the URL (ISL/OSL in the Space name) and that the Space has the submit_results API"
                }.get(resp.status_code, "the payload: its length and order must match submit_results' inputs")
        raise SubmissionError(f"{method} {url}: HTTP {resp.status_code}: {_scrub(resp.text[:500], token)!r}. "
                              f"Check {hint}. Not retried.")
    return resp


def _sse_events(resp: requests.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an event stream (a blank line dispatches; data lines joined by LF)."""
    event, data = "message", []
    for raw in resp.iter_lines(chunk_size=None):  # None: lines as they arrive, not 512-byte blocks
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if data or event != "message":
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def submit(url: str, payload: list, *, session: requests.Session | None = None, retries: int = 4,
           backoff: float = 1.0, timeout: float = 30, confirm_timeout: float = 120,
           token: str | None = None) -> SubmitResult:
    """POST ``payload``, then read the event stream for the outcome. Connection errors and 5xx are
    retried (waits ``backoff`` x 1, 2, 4... s); 4xx raises at once. ``token`` defaults to ``$HF_TOKEN``."""
    token = token if token is not None else os.environ.get("HF_TOKEN") or None
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    post_url = url.rstrip("/") + ENDPOINT
    attempts = 0
    with requests.Session() if session is None else nullcontext(session) as sess:
        try:
            for attempt in _retrying(retries, backoff):
                with attempt:
                    attempts += 1
                    resp = _request(sess, "POST", post_url, token, json={"data": payload}, timeout=timeout,
                                    headers={"Content-Type": "application/json", **auth})
        except _Transient as exc:
            raise SubmissionError(f"{exc} (gave up after {attempts} attempts)") from None
        try:
            event_id = resp.json()["event_id"]
        except (ValueError, KeyError, TypeError):
            raise SubmissionError(f"POST {post_url}: the answer is not Gradio's {{\"event_id\": ...}}: "
                                  f"{_scrub(resp.text[:300], token)!r}") from None
        result = SubmitResult(url=url, status="unconfirmed", event_id=str(event_id), attempts=attempts)
        deadline = time.monotonic() + confirm_timeout
        try:
            for attempt in _retrying(retries, backoff):
                with attempt:
                    resp = _request(sess, "GET", f"{post_url}/{event_id}", token, headers=auth, stream=True,
                                    timeout=(timeout, confirm_timeout))
            with resp:
                for event, data in _sse_events(resp):
                    if event in ("complete", "error"):
                        try:
                            result.data = json.loads(data := _scrub(data, token)) if data else None
                        except ValueError:
                            result.data = data
                        result.status = event
                        result.message = ("accepted" if event == "complete"
                                          else f"the Space reported an error: {result.data!r}")
                        return result
                    if time.monotonic() > deadline:
                        break
            result.message = f"no final event within {confirm_timeout:g} s; event {event_id} may still complete"
        except (_Transient, SubmissionError, requests.RequestException) as exc:
            result.message = f"queued as event {event_id}, but its outcome could not be read: {_scrub(str(exc), token)}"
        return result


def read_signature(url: str, *, session: requests.Session | None = None, retries: int = 4, backoff: float = 1.0,
                   timeout: float = 30, token: str | None = None) -> SpaceSignature:
    """The inputs of ``url``'s ``submit_results``, from ``GET <url>/gradio_api/info`` (retried like the
    POST). Raises SubmissionError when the endpoint is missing or the description cannot be read."""
    token = token if token is not None else os.environ.get("HF_TOKEN") or None
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    info_url = url.rstrip("/") + sig.INFO_PATH
    with requests.Session() if session is None else nullcontext(session) as sess:
        try:
            for attempt in _retrying(retries, backoff):
                with attempt:
                    resp = _request(sess, "GET", info_url, token, headers=auth, timeout=timeout)
            return sig.parse_info(resp.text, info_url)
        except (_Transient, SubmissionError, ValueError) as exc:  # 5xx or no connection, 4xx, not JSON or Gradio's
            tries = f" (gave up after {retries + 1} attempts)" if isinstance(exc, _Transient) and retries else ""
            raise _SpaceUnreadable(f"cannot read the Space's API description: {_scrub(str(exc), token)[:400]}{tries}"
                                   ) from None
        except sig.EndpointMissing as exc:
            raise SubmissionError(f"{url}: {exc}") from None


def _check_space(out: PointSubmission, layout: str, have: Collection[str], seen: dict[str, SpaceSignature |
                 SubmissionError], dry_run: bool, echo: Callable[[str], None], submit_kw: dict[str, Any]) -> None:
    """Compare ``out.payload`` with the Space's ``submit_results`` inputs (read once per URL); raise SubmissionError
    if they differ or cannot be read. A dry run tries once, briefly, and goes on unchecked if that fails."""
    if out.url not in seen:
        kw = {k: submit_kw[k] for k in ("session", "retries", "backoff", "timeout", "token") if k in submit_kw}
        if dry_run:
            kw.update(retries=0, timeout=min(kw.get("timeout", 30), 5))
        try:
            found = seen[out.url] = read_signature(out.url, **kw)
            echo(f"inferencemax: {out.url}: {found.summary()}")
        except SubmissionError as exc:
            seen[out.url] = exc
    if isinstance(found := seen[out.url], _SpaceUnreadable) and dry_run:
        out.signature_check = f"not checked (dry run): {found}"
        return
    if isinstance(found, SubmissionError):
        out.signature_check = "not read"
        raise SubmissionError(f"{str(found).rstrip('.')}. Nothing was sent: a point goes only to a Space whose "
                              "submit_results inputs were read and fit it")
    out.signature = found
    problem = sig.mismatch(found, layout, out.payload, LAYOUT_FIELDS, have)
    out.signature_check = "mismatch" if problem else f"fits the {layout} payload"
    if problem:
        raise SubmissionError(problem)


# --- results folders ----------------------------------------------------------------------------

def save_payload(run_dir: Path, point_id: str, url: str, payload: list, dry_run: bool = False) -> Path:
    """``<run_dir>/submissions/<point>.json`` (a dry run's after a real attempt: ``<point>.dry-run.json``) with the
    URL, payload and time, written atomically; every outcome is also logged (submit_log.py)."""
    if not point_id or "/" in point_id or point_id.startswith("."):
        raise SubmissionError(f"point id {point_id!r} cannot name a file")
    data = {"point": point_id, "url": url, "endpoint": url + ENDPOINT, "payload": payload, "time": now()}
    token = os.environ.get("HF_TOKEN")
    if token and token in json.dumps(data):
        raise SubmissionError(f"{point_id}: the HF_TOKEN value appears in the payload (team name?): refusing")
    return write_json_atomic(payload_file(run_dir, point_id, dry_run), data)


def _save_outcome(run_dir: Path, team: str, out: PointSubmission, dry_run: bool) -> None:
    """The outcome appended to the log and, when the payload was saved, joined to it; the token scrubbed."""
    res = {k: getattr(out.result, k) for k in ("event_id", "attempts", "data")} if out.result else {}
    append_entry(run_dir, LogEntry(team=team.strip(), point=out.point, status=out.status, url=out.url,
                                   message=out.message, payload=out.payload, event_id=res.get("event_id"),
                                   attempts=res.get("attempts"), space_check=out.signature_check, dry_run=dry_run))
    if out.saved is None:
        return
    data = json.loads(out.saved.read_text(encoding="utf-8"))
    data["result"] = {"status": out.status, "message": out.message, "time": now(), "dry_run": dry_run, **res}
    if out.signature_check:  # what the Space's submit_results takes, as read before sending
        data["space_signature"] = {"check": out.signature_check, **(out.signature.to_json() if out.signature else {})}
    write_json_atomic(out.saved, json.loads(_scrub(json.dumps(data, default=str), os.environ.get("HF_TOKEN"))))


def _layout(record: PointRecord, layout: str | None) -> str:
    stage = record.ours.stage
    if chosen := layout or record.ours.payload_layout or (stage if stage in LAYOUTS else None):
        return chosen
    raise SubmissionError(f"no payload layout (no inferencemax.payload_layout, and stage {stage!r} is "
                          "not s1/s2): pass --layout s1|s2")


def submit_run(run_dir: Path, team: str, *, dry_run: bool = False, force: bool = False,
               url_override: str | None = None,
               only_qualified: Callable[[PointRecord], bool] | Collection[str] | None = None,
               layout: str | None = None, sig_digits: int | None = None, echo: Callable[[str], None] = print,
               **submit_kw: Any) -> list[PointSubmission]:
    """Build, save, check against the Space (:func:`_check_space`: a mismatch or an unreadable signature
    refuses the point; a dry run checks only when the Space answers at once) and, unless ``dry_run``,
    send every point of ``run_dir``; one outcome per point, saved and logged with the Space's signature seen.
    ``only_qualified``: a predicate on the record, or the point ids to send (the caller judges the curves:
    submit_select.py). ``layout`` (s1/s2) wins over ``inferencemax.payload_layout``, then the stage name.
    ``submit_kw`` goes to :func:`submit`."""
    run_dir = Path(run_dir)
    try:
        records = RunFolder(run_dir).points()
    except RecordError as exc:
        raise SubmissionError(str(exc)) from None
    if not records:
        raise SubmissionError(f"no point records in {run_dir} (<point>.json files with an 'inferencemax' key); "
                              "pass the run folder, results/<run-id>")
    wanted = None if only_qualified is None or callable(only_qualified) else set(only_qualified)
    outcomes: list[PointSubmission] = []
    signatures: dict[str, SpaceSignature | SubmissionError] = {}  # per URL, read once
    shown: set[str] = set()  # refusals echoed in full: a mismatch's lists once, not for every point
    for rec in records:
        point = rec.point_id
        if (wanted is not None and point not in wanted) or (callable(only_qualified) and not only_qualified(rec)):
            continue
        out = PointSubmission(point=point, status="refused")
        outcomes.append(out)
        try:
            out.url = leaderboard_url(rec.ours.leaderboard_url, rec.ours.isl, rec.ours.osl, url_override)
            out.payload = build_payload(rec, team, chosen := _layout(rec, layout), force=force, sig_digits=sig_digits)
            out.saved = save_payload(run_dir, point, out.url, out.payload, dry_run)
            _check_space(out, chosen, rec.accuracy or {}, signatures, dry_run, echo, submit_kw)
        except SubmissionError as exc:
            out.message, first = str(exc), str(exc).split("\n", 1)[0]
            echo(f"inferencemax: not submitting {point}: {first + ' (as above)' if first in shown else exc}")
            shown.add(first)
            _save_outcome(run_dir, team, out, dry_run)  # refused by the Space's signature: the payload stays, with why
            continue
        if dry_run:
            out.status, out.message = "dry-run", "not sent (dry run)"
            echo(f"inferencemax: dry run, would POST {out.url}{ENDPOINT} {json.dumps({'data': out.payload})}; "
                 f"the Space's signature: {out.signature_check}")
        else:
            try:
                out.result = submit(out.url, out.payload, **submit_kw)
                out.status, out.message = ("submitted" if out.result.ok else "failed"), out.result.message
            except SubmissionError as exc:
                out.status, out.message = "failed", str(exc)
            echo(f"inferencemax: {point} -> {out.url}: {out.status}: {out.message}")
        _save_outcome(run_dir, team, out, dry_run)
    return outcomes
