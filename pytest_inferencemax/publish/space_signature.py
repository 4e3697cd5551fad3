"""Does the Space's ``submit_results`` take the payload we are about to send? (issue 25, item 5)

Gradio feeds a ``/call`` request's values to the function's inputs by position and drops what is
left over: a 14-item stage-1 payload sent to a 12-input stage-2 Space is accepted and confirmed,
with bits_per_byte stored as the gsm8k metric and the perplexities lost. So before a point is
sent, the Space's own description of its API, ``GET <space>/gradio_api/info?all_endpoints=true``
(gradio ``Blocks.get_api_info``: ``named_endpoints`` -> ``"/submit_results"`` -> ``parameters``,
each with ``label``, ``parameter_name``, ``type`` (the JSON schema of the value), ``python_type``
and ``component``), is compared with the payload: the number of inputs, and the kind of each
(number, string). ``all_endpoints``: an endpoint marked ``api_visibility="undocumented"`` is
still callable, and listed only then.

This module only parses and compares (no HTTP, no error classes): ``publish/submission.py`` reads
the description and turns what is found here into a ``SubmissionError``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

INFO_PATH = "/gradio_api/info?all_endpoints=true"
API_NAME = "/submit_results"

Kind = Literal["number", "string", "any", "other"]
_SCHEMA_KINDS: dict[str, Kind] = {"number": "number", "integer": "number", "string": "string"}


class SignatureUnreadable(ValueError):
    """The Space's API description is not Gradio's (internal: submission.py says what to do)."""


class EndpointMissing(LookupError):
    """The Space describes its API, and ``submit_results`` is not in it (internal, like the above)."""


@dataclass(frozen=True)
class Field:
    """One item of a payload layout: its name and the kind of value it carries."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Parameter:
    """One input of the Space's endpoint, as its API description shows it."""

    name: str  # the function's parameter name, else the component's label
    component: str  # "Number", "Textbox", ...
    python_type: str  # "float", "str", ...
    kind: Kind

    def shown(self) -> str:
        return f"{self.python_type} ({self.component})"


@dataclass(frozen=True)
class SpaceSignature:
    """The inputs of the Space's ``submit_results``, in order."""

    info_url: str
    endpoint: str
    parameters: tuple[Parameter, ...]

    def summary(self) -> str:
        return (f"{self.endpoint} takes {len(self.parameters)} inputs: "
                + ", ".join(f"{p.name} ({p.python_type})" for p in self.parameters))

    def fits(self, fields: Sequence[Field]) -> bool:
        return len(fields) == len(self.parameters) and all(map(_compatible, self.parameters, fields))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _PythonType(BaseModel):
    type: str = "?"


class _InfoParameter(BaseModel):
    label: str | None = None
    parameter_name: str | None = None
    type: Any = None
    python_type: _PythonType | str | None = None
    component: str = "?"


class _Endpoint(BaseModel):
    parameters: list[_InfoParameter]


class _Info(BaseModel):
    named_endpoints: dict[str, Any]


def kind_of_value(value: Any) -> Kind:
    if isinstance(value, str):
        return "string"
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else "other"


def _kind(schema: Any, python_type: str) -> Kind:
    """The JSON type an input accepts: its schema's ``type``, else read from ``python_type``."""
    if isinstance(schema, dict) and isinstance(schema.get("type"), str):
        return _SCHEMA_KINDS.get(schema["type"], "other")
    names = set(re.split(r"\s*\|\s*", python_type))
    if "Any" in names or ("str" in names and names & {"float", "int"}):  # gr.JSON: "str | float | bool | ..."
        return "any"
    return "number" if names <= {"float", "int"} else "string" if names == {"str"} else "other"


def _compatible(param: Parameter, field: Field) -> bool:
    return param.kind == "any" or param.kind == field.kind


def parse_info(info: Any, info_url: str) -> SpaceSignature:
    """The ``submit_results`` inputs in a ``/gradio_api/info`` answer (its text, or decoded). Raises
    :class:`SignatureUnreadable` when it is not Gradio's format, :class:`EndpointMissing` when the endpoint
    is not in it."""
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            raise SignatureUnreadable(f"GET {info_url} answered something else than JSON: {info[:200]!r}") from None
    try:
        endpoints = _Info.model_validate(info).named_endpoints
    except ValidationError:
        raise SignatureUnreadable(f"{info_url} is not Gradio's API description (no named_endpoints): "
                                  f"{str(info)[:200]!r}") from None
    if API_NAME not in endpoints:
        raise EndpointMissing(f"the Space has no {API_NAME} endpoint (its API lists: "
                              f"{', '.join(sorted(endpoints)) or 'none'}): check that the URL is the leaderboard "
                              "Space of this stage and ISL/OSL")
    try:
        endpoint = _Endpoint.model_validate(endpoints[API_NAME])
    except ValidationError as exc:
        raise SignatureUnreadable(f"{info_url}: {API_NAME} has no readable parameters list ({exc.errors()[0]['msg']})"
                                  ) from None
    params = []
    for i, p in enumerate(endpoint.parameters):
        py = p.python_type.type if isinstance(p.python_type, _PythonType) else str(p.python_type or "?")
        name = p.parameter_name if p.parameter_name and not re.fullmatch(r"param_\d+", p.parameter_name) else None
        params.append(Parameter(name=name or p.label or f"input {i + 1}", component=p.component, python_type=py,
                                kind=_kind(p.type, py)))
    return SpaceSignature(info_url=info_url, endpoint=API_NAME, parameters=tuple(params))


def _cell(text: str, width: int) -> str:
    return (text if len(text) <= width else text[:width - 1] + "~").ljust(width)


def side_by_side(signature: SpaceSignature, layout: str, fields: Sequence[Field], values: Sequence[Any]) -> str:
    """The Space's inputs beside the payload's items, one row each; ``<-`` marks the rows that differ."""
    rows = [f"  {'#':>3}  {_cell('Space ' + signature.endpoint, 24)} {_cell('type', 18)} "
            f"{_cell(f'payload ({layout})', 24)} {_cell('type', 7)} value"]
    for i in range(max(len(signature.parameters), len(fields))):
        p = signature.parameters[i] if i < len(signature.parameters) else None
        f = fields[i] if i < len(fields) else None
        value = repr(values[i]) if f is not None and i < len(values) else ""
        if p and f:
            mark = "" if _compatible(p, f) else f"  <- takes {p.python_type}, not a {f.kind}"
        else:
            mark = "  <- no such input: Gradio drops it" if f else "  <- no payload item"
        rows.append(f"  {i + 1:>3}  {_cell(p.name if p else '-', 24)} {_cell(p.shown() if p else '-', 18)} "
                    f"{_cell(f.name if f else '-', 24)} {_cell(f.kind if f else '-', 7)} {_cell(value, 16)}{mark}"
                    .rstrip())
    return "\n".join(rows)


def mismatch(signature: SpaceSignature, layout: str, values: Sequence[Any],
             layouts: Mapping[str, Sequence[Field]], have: Collection[str] = ()) -> str | None:
    """None when ``values``, a payload of ``layout`` (one of ``layouts``, each layout's fields), fit the
    Space's inputs; else why not and the fix on the first line, the two lists side by side below it.
    Each value's kind is its own (a str is a string, an int or float a number), whatever the layout says.
    ``have``: the record's accuracy keys, to tell "pass another layout" from "wrong Space"."""
    names = [f.name for f in layouts[layout]] + [f"item {i + 1}" for i in range(len(layouts[layout]), len(values))]
    fields = [Field(name, kind_of_value(v)) for name, v in zip(names, values)]
    if signature.fits(fields):
        return None
    n, m = len(signature.parameters), len(fields)
    if m > n:
        cause = (f"the Space's {signature.endpoint} takes {n} inputs and the {layout} payload has {m} items: Gradio "
                 f"would keep the first {n} and drop the rest")
    elif m < n:
        cause = f"the Space's {signature.endpoint} takes {n} inputs and the {layout} payload has only {m} items"
    else:
        i, p, f = next((i, p, f) for i, (p, f) in enumerate(zip(signature.parameters, fields))
                       if not _compatible(p, f))
        cause = (f"the Space's {signature.endpoint} takes {n} inputs like the {layout} payload, but input {i + 1} "
                 f"({p.name}) takes {p.shown()}, not a {f.kind} like the payload's {f.name}")
    good = [name for name, fs in layouts.items() if signature.fits(fs)]
    lacks = [f.name for f in layouts[good[0]] if f.name not in names and f.name not in have] if good else []
    if good and not lacks:
        fix = (f"the {good[0]} layout fits it: re-submit with --layout {good[0]} (cli.submit), or set the stage's "
               f'payload_layout = "{good[0]}"')
    elif good:
        fix = (f"the {good[0]} layout fits it but this record has no {', '.join(lacks)}, so the URL is likely "
               "another stage's Space: check --leaderboard-url, $LB_URL_OVERRIDE or the stage's leaderboard_url")
    else:
        fix = (f"no layout this runner knows ({', '.join(layouts)}) fits it: check that the URL is this stage's Space "
               "(ISL/OSL, stage), or whether the Space changed its inputs")
    return f"{cause}; nothing was sent. Fix: {fix}.\n{side_by_side(signature, layout, fields, values)}"
