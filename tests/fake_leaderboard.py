"""A stand-in for the bounty's Gradio leaderboard Space (``submit_results``), for submission tests.

``POST /gradio_api/call/submit_results`` with ``{"data": [...]}`` answers ``{"event_id": ...}``;
``GET /gradio_api/call/submit_results/<event_id>`` streams SSE the way Gradio does: a
``heartbeat`` event, then ``event: complete`` with ``data: [...]`` (or ``event: error``).
Every payload that reached the POST handler is kept in ``received`` (also those answered with an
error status), every request's method, path and headers in ``requests``.

``GET /gradio_api/info`` describes the endpoint the way Gradio 6 does (``named_endpoints`` ->
``/submit_results`` -> ``parameters``), with the inputs of payload ``layout`` (``s1``, ``s2``: a Textbox
for the team, Numbers for the rest), or ``inputs``: (name, component) pairs, component one of
``COMPONENTS``, to describe another signature.

Knobs: ``fail_first`` answers that many POSTs with 503 first; ``post_status`` answers every POST
with that status (e.g. 400); ``outcome`` is ``complete``, ``error`` or ``none`` (the stream ends
without a final event); ``on_post`` is called with the payload in the server thread before answering.
For the description: ``api_name`` names the endpoint in it (another name: ``submit_results`` is
missing); ``info_fail_first`` answers that many GETs with 503 first; ``info_status`` answers every
GET with that status; ``info_text`` answers with that text instead (not JSON).
Runs in a background thread on 127.0.0.1 with a free port.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from loopback_server import LoopbackServer
from pytest_inferencemax.publish.submission import LAYOUT_FIELDS

PATH = "/gradio_api/call/submit_results"
INFO = "/gradio_api/info"
# component -> (JSON schema, python_type), as gradio 6.31's get_api_info describes them
COMPONENTS = {"Textbox": ({"type": "string"}, "str"), "Number": ({"type": "number"}, "float"),
              "Checkbox": ({"type": "boolean"}, "bool"),
              "Json": ({"type": {}, "description": "any valid json"}, "str | float | bool | list | dict")}


def gradio_info(inputs: list[tuple[str, str]], api_name: str = "/submit_results") -> dict[str, Any]:
    """What gradio's ``/gradio_api/info`` answers for one endpoint with these (name, component) inputs."""
    params = [{"label": name, "parameter_name": name, "parameter_has_default": False, "parameter_default": None,
               "type": COMPONENTS[comp][0], "python_type": {"type": COMPONENTS[comp][1], "description": ""},
               "component": comp, "example_input": None} for name, comp in inputs]
    returns = [{"label": "output", "type": {"type": "string"}, "python_type": {"type": "str", "description": ""},
                "component": "Textbox"}]
    return {"named_endpoints": {api_name: {"parameters": params, "returns": returns, "api_visibility": "public",
                                           "description": ""}}, "unnamed_endpoints": {}}


def layout_inputs(layout: str) -> list[tuple[str, str]]:
    return [(f.name, "Textbox" if f.kind == "string" else "Number") for f in LAYOUT_FIELDS[layout]]


class FakeLeaderboard(LoopbackServer):
    def __init__(self, *, fail_first: int = 0, post_status: int | None = None, outcome: str = "complete",
                 answer: Any = ("Submitted!",), on_post: Callable[[list], None] | None = None, layout: str = "s2",
                 inputs: list[tuple[str, str]] | None = None, api_name: str = "/submit_results",
                 info_fail_first: int = 0, info_status: int | None = None, info_text: str | None = None) -> None:
        super().__init__()
        self.info = gradio_info(inputs if inputs is not None else layout_inputs(layout), api_name)
        self.info_fail_first = info_fail_first
        self.info_status = info_status
        self.info_text = info_text
        self.fail_first = fail_first
        self.post_status = post_status
        self.outcome = outcome
        self.answer = list(answer) if isinstance(answer, tuple) else answer
        self.on_post = on_post
        self.received: list[list] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.events: dict[str, list] = {}

    def posts(self) -> int:
        return sum(1 for m, _, _ in self.requests if m == "POST")

    def info_reads(self) -> int:
        return sum(1 for _, path, _ in self.requests if path == INFO)

    def routes(self, app: web.Application) -> None:
        app.router.add_get(INFO, self._info)
        app.router.add_post(PATH, self._post)
        app.router.add_get(PATH + "/{event_id}", self._get)

    def _log(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, dict(request.headers)))

    async def _info(self, request: web.Request) -> web.Response:
        self._log(request)
        if self.info_fail_first > 0:
            self.info_fail_first -= 1
            return web.Response(status=503, text="Service Unavailable (Space waking up)")
        if self.info_status is not None:
            return web.json_response({"detail": "Not Found"}, status=self.info_status)
        if self.info_text is not None:
            return web.Response(text=self.info_text, content_type="text/html")
        return web.json_response(self.info)

    async def _post(self, request: web.Request) -> web.Response:
        self._log(request)
        body = await request.json()
        payload = body["data"]
        self.received.append(payload)
        if self.on_post is not None:
            self.on_post(payload)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503, text="Service Unavailable (Space waking up)")
        if self.post_status is not None:
            return web.json_response({"detail": "bad request: wrong number of inputs"}, status=self.post_status)
        event_id = uuid.uuid4().hex
        self.events[event_id] = payload
        return web.json_response({"event_id": event_id})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self._log(request)
        if request.match_info["event_id"] not in self.events:
            return web.json_response({"detail": "Event not found"}, status=404)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: heartbeat\ndata: null\n\n")
        await asyncio.sleep(0.01)
        await resp.write(b"event: generating\ndata: null\n\n")
        if self.outcome == "complete":
            await resp.write(b"event: complete\ndata: " + json.dumps(self.answer).encode() + b"\n\n")
        elif self.outcome == "error":
            await resp.write(b"event: error\ndata: \"submit_results: invalid submission\"\n\n")
        await resp.write_eof()
        return resp
