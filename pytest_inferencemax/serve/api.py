"""The inference server's HTTP API, as this package calls it outside a point's load: one place for
the auth header and for the endpoints the server stage reads (``/health``, ``/v1/models``,
``/v1/completions``, ``/metrics``, ``/version``).

The load generators build their own requests (they time them); they take the header from
:func:`auth_headers` too, except the reference client, which sends ``Bearer None`` without a key
as the bounty's client does (``measure/refclient.py``).
"""
from __future__ import annotations

from typing import Any

import requests


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when there is a key (``--api-key-env``), else nothing."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def root(base_url: str) -> str:
    """The server's root from a base URL that may end in ``/``, ``/v1`` or ``/v1/completions``."""
    return base_url.rstrip("/").removesuffix("/v1/completions").removesuffix("/v1")


def get(base_url: str, path: str, *, api_key: str | None = None, timeout: float = 10.0) -> requests.Response:
    """GET ``path`` of the server (raises ``requests.RequestException`` when it cannot be reached)."""
    return requests.get(root(base_url) + path, headers=auth_headers(api_key), timeout=timeout)


def post(base_url: str, path: str, payload: dict[str, Any], *, api_key: str | None = None,
         timeout: float = 60.0) -> requests.Response:
    """POST ``payload`` as JSON to ``path`` of the server."""
    return requests.post(root(base_url) + path, json=payload, headers=auth_headers(api_key), timeout=timeout)


def one_token_completion(base_url: str, model: str, timeout: float = 60.0, api_key: str | None = None) -> str | None:
    """Ask for one token; ``None`` when it works, else what went wrong."""
    try:
        r = post(base_url, "/v1/completions", {"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0.0},
                 api_key=api_key, timeout=timeout)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text[:300]}"
    try:
        choices = r.json().get("choices")
    except ValueError:
        return f"answer is not JSON: {r.text[:200]}"
    return None if choices else f"answer has no choices: {r.text[:200]}"


def engine_version(base_url: str, *, api_key: str | None = None) -> Any:
    """What the server says about its version (vLLM: ``/version``; SGLang: ``/get_server_info``), or None."""
    for path in ("/version", "/get_server_info"):
        try:
            r = get(base_url, path, api_key=api_key, timeout=5)
        except requests.RequestException:
            continue
        if r.status_code == 200:
            try:
                data = r.json()
            except ValueError:
                continue
            return data.get("version", data) if isinstance(data, dict) else data
    return None
