"""Secrets out of what a run writes: environment variables and command-line flags that carry them."""
from __future__ import annotations

import re
from typing import Iterable, Sequence

SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
SECRET_FLAGS = ("--api-key", "--hf-token", "--token")
REDACTED = "***"


def redact_env(env: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The variables, with the value of any whose name says it is a secret replaced by ``***``."""
    return {k: (REDACTED if SECRET_NAME.search(k) else v) for k, v in env}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line, with the values of secret-carrying flags (``--api-key X``, ``--token=X``) hidden."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced (for server answers echoed into files)."""
    return text.replace(secret, REDACTED) if secret else text
