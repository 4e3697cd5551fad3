"""Signals that end a run: SIGTERM and SIGHUP end it as Ctrl-C does, and a signal pytest was started with ignored
stays ignored (said once). pytest's hooks install the handlers at configure and restore them at unconfigure."""
from __future__ import annotations

import signal
import threading
from typing import Callable

INTERRUPTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def ignored_signals() -> list[signal.Signals]:
    """The interrupting signals this process was started with ignored: a shell starts a background job
    (``cmd &``, some CI runners) with SIGINT ignored, ``nohup`` with SIGHUP ignored. They stay ignored
    (Python itself leaves an ignored SIGINT alone): whoever started the run chose that it outlives them."""
    if threading.current_thread() is not threading.main_thread():
        return []
    return [sig for sig in INTERRUPTING if signal.getsignal(sig) == signal.SIG_IGN]


def ignored_signals_line(ignored: list[signal.Signals]) -> str:
    """The one line that says which signals stay ignored and what still stops the run."""
    names = ", ".join(SIGNAL_NAMES[s] for s in ignored)
    stops = [SIGNAL_NAMES[s] for s in INTERRUPTING if s not in ignored]
    how = f"{' or '.join(stops)} does" if stops else "only SIGKILL does (the watchdog then ends the servers)"
    return (f"inferencemax: {names} left ignored, as pytest was started (a background job, nohup): "
            f"{'it does' if len(ignored) == 1 else 'they do'} not stop this run; {how}")


class EndLikeCtrlC:
    """SIGTERM (``timeout``, a CI job cancelled, ``kill``) and SIGHUP (a closed terminal) end the run as Ctrl-C
    does: pytest unwinds, the session tears the server's process group down and says what was interrupted.
    ``interrupted(name)`` is told the signal's name and answers whether it is the first (only the first raises
    KeyboardInterrupt: a second signal during the teardown is ignored, so that the teardown finishes). A signal the
    process was started with ignored (``nohup``'s SIGHUP) stays ignored. Not installed off the main thread."""

    def __init__(self, interrupted: Callable[[str], bool],
                 signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)) -> None:
        self._previous: dict[signal.Signals, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: object) -> None:
            name = signal.Signals(signum).name
            if interrupted(name):
                raise KeyboardInterrupt(name)

        ignored = ignored_signals()
        self._previous = {sig: signal.signal(sig, handler) for sig in signals if sig not in ignored}

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
