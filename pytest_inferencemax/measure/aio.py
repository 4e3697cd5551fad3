"""The event loop the load generators run on: uvloop when it is installed (the precise client), asyncio's
own loop for the reference client (the bounty client runs on ``asyncio.run``); quiet when interrupted."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], *, uvloop: bool = True) -> T:
    """Run ``coro`` on uvloop when it is installed and ``uvloop`` is true (its I/O path costs the client
    less), else on ``asyncio.run``'s default loop.

    An interruption (Ctrl-C, SIGTERM) cancels the run's tasks; the loop then stays quiet about the
    cancelled futures nobody awaited any more, which asyncio would otherwise print, one traceback
    each, long after pytest has said the run was interrupted."""
    if uvloop:
        try:
            import uvloop as fast
        except ImportError:
            pass
        else:
            return fast.run(_quiet_when_cancelled(coro))
    return asyncio.run(_quiet_when_cancelled(coro))


async def _quiet_when_cancelled(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    default = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), (asyncio.CancelledError, KeyboardInterrupt)):
            return  # a task or future cancelled by the interruption: nothing to report
        if default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return await coro
