"""A watchdog that ends the servers a runner launched when the runner dies, however it dies.

A launched server runs in a session of its own (``setsid``: its process group, so that teardown can
signal the API server and its engine processes together). Nothing else ties its life to the runner's:
when the runner is killed with SIGKILL (the OOM killer, a CI job killed hard) no teardown runs and the
server, its EngineCore and its workers keep serving with parent 1. ``PR_SET_PDEATHSIG`` is no answer:
it is set on one process (the engine processes, grandchildren of the runner, would not get it) and it
fires when the *thread* that forked the server ends, not the process.

So each runner process starts, on its first launch, one small watchdog process:

- in a session of its own, so that a signal to the runner's process group (Ctrl-C in a terminal, a CI
  runner's ``killpg``) does not end it before it acts; Ctrl-C and SIGHUP are ignored there too;
- holding, as its stdin, one end of a socket pair whose other end only the runner holds. That end is
  non-inheritable (closed at ``exec``): subprocesses and ``multiprocessing`` spawn children never hold
  it, so it closes exactly when the runner process ends, by any signal or by exit;
- told which process groups to guard by lines ``add <pgid> [<log path>]`` and ``remove <pgid>``, and
  blocked in ``read`` until then: nothing polls while the runner lives;
- on end of file (the runner ended), it SIGTERMs every group still guarded, gives them ``GRACE_S``
  seconds, SIGKILLs what is left, notes both in the server's log and on the runner's stderr as it was
  when this module was imported (the terminal, not pytest's capture file), and exits.

A runner that tears its servers down itself (``ServingExecutor.stop_within``) removes each group once
it is gone, so a normal exit ends nothing. A group is registered by the server's own process *before*
it runs a single instruction of the server (:func:`session_guard` is its ``preexec_fn``: ``setsid``,
then ``add``), so no moment exists when a server runs unguarded; the runner registers it again once
``Popen`` returned (:func:`guard`), which is harmless and lets it re-register its groups with a new
watchdog should the first one have been killed. The socket pair is ``SOCK_SEQPACKET``: one line per
message, atomic whichever thread or process sends it, and ``MSG_NOSIGNAL`` so that a dead watchdog
can never kill a server's process with SIGPIPE between ``fork`` and ``exec``.

A process id can be reused once its process is gone; before signalling a group the watchdog checks that
it is still a session led by that id (every guarded group was made by ``setsid``), so a stale entry
never reaches an unrelated process.

Limits: a child that the runner ``fork``\\ s without ``exec`` (none in this package: its client processes
are spawned) holds a copy of the runner's end until it exits, and delays the watchdog until then; such a
child that launches servers itself gets a watchdog of its own. A failure to start the watchdog is raised
(the launch fails) rather than leaving a server silently unguarded.

This file runs as the watchdog itself (``python -I -S supervisor.py <runner pid>``): it imports the
standard library only.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

GRACE_S = 3.0  # SIGTERM to SIGKILL, once the runner has died
KILL_WAIT_S = 5.0  # then how long the watchdog waits for SIGKILLed processes to be gone before it exits

_lock = threading.Lock()
_watchdog: subprocess.Popen | None = None
_sock: socket.socket | None = None
_owner = 0  # the process that started the watchdog: a forked child must start its own
_guarded: dict[int, str] = {}  # pgid -> its log (what this runner told the watchdog)
try:  # the runner's stderr as it is at import (the plugin's load), before pytest's capture takes fd 2 over
    _STDERR: int | None = os.dup(2)  # non-inheritable; the watchdog reports there, so a terminal shows it
except OSError:
    _STDERR = None


# -- the runner's side ---------------------------------------------------------------------------------

def _line(verb: str, pgid: int, note: str = "") -> bytes:
    text = f"{verb} {pgid} {note}".rstrip() + "\n"
    return text.encode("utf-8", "surrogateescape")[:4000]


def _ensure() -> socket.socket:
    """The socket to this process's watchdog, which is started (or started again) if need be. Under ``_lock``."""
    global _watchdog, _sock, _owner
    if _owner != os.getpid():  # never started, or inherited through a fork: that watchdog is the parent's
        if _sock is not None:
            _sock.close()  # this process's copy only
        _watchdog, _sock, _owner = None, None, os.getpid()
        _guarded.clear()
    if _watchdog is not None and _watchdog.poll() is None and _sock is not None:
        return _sock
    if _sock is not None:
        _sock.close()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # both non-inheritable
    try:
        _watchdog = subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(os.getpid())], stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL, stderr=_STDERR, start_new_session=True, close_fds=True)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    _sock = ours
    for pgid, note in _guarded.items():  # a watchdog that was killed: the new one guards what it guarded
        _sock.send(_line("add", pgid, note))
    return _sock


def _send(data: bytes) -> None:
    """Under ``_lock``; a watchdog found dead is started again (with every guarded group) and told again."""
    try:
        _ensure().send(data, socket.MSG_NOSIGNAL)
    except OSError:
        if _watchdog is not None and _watchdog.poll() is None:
            raise
        _ensure().send(data, socket.MSG_NOSIGNAL)


def session_guard(note: str | os.PathLike | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child makes a session of its own (``setsid``, as
    ``start_new_session``) and registers its group with this process's watchdog before it ``exec``\\ s, so
    the group is guarded from its first instruction. ``note``: a file (the server's log) where the watchdog
    writes what it did. Starts the watchdog if need be (in the calling process, before the fork)."""
    with _lock:
        sock = _ensure()
    text = str(note) if note is not None else ""

    def preexec() -> None:  # in the child, between fork and exec: a setsid and one send
        os.setsid()
        try:
            sock.send(_line("add", os.getpid(), text), socket.MSG_NOSIGNAL)
        except OSError:
            pass  # a watchdog killed a moment ago: guard() registers the group again with a new one

    return preexec


def guard(pgid: int, note: str | os.PathLike | None = None) -> None:
    """Have the watchdog end process group ``pgid`` if this process dies before :func:`release` of it."""
    text = str(note) if note is not None else ""
    with _lock:
        _ensure()
        _guarded[pgid] = text
        _send(_line("add", pgid, text))


def release(pgid: int) -> None:
    """Stop guarding ``pgid`` (its processes have been stopped, or are no longer this process's business)."""
    with _lock:
        if _owner != os.getpid() or _watchdog is None:
            return  # nothing was guarded by this process
        _guarded.pop(pgid, None)
        _send(_line("remove", pgid))


def watchdog_pid() -> int | None:
    """This process's watchdog, if it started one (for tests and diagnostics)."""
    with _lock:
        return _watchdog.pid if _watchdog is not None and _owner == os.getpid() else None


# -- the watchdog's side -------------------------------------------------------------------------------

def _members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid`` that are in session ``pgid``, i.e. still the group that
    ``setsid`` made, not a reused id."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group exists
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [pgid]
    found = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid and int(fields[3]) == pgid:
            found.append(int(stat.parent.name))
    return found


def _say(message: str, notes: list[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for note in notes:
        try:
            with open(note, "a", encoding="utf-8") as f:
                f.write(f"\n[{stamp}] inferencemax watchdog: {message}\n")
        except OSError:
            pass
    try:
        sys.stderr.write(f"inferencemax watchdog: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _signal_groups(groups: dict[int, str], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass


def end_groups(groups: dict[int, str], why: str, grace: float = GRACE_S, kill_wait: float = KILL_WAIT_S) -> None:
    """SIGTERM each group (pgid -> log) that still exists, SIGKILL what is left after ``grace`` seconds."""
    live = {g: note for g, note in groups.items() if _members(g)}
    if not live:
        return
    t0 = time.monotonic()
    _signal_groups(live, signal.SIGTERM)
    names = ", ".join(str(g) for g in live)
    notes = [n for n in live.values() if n]
    _say(f"{why}: SIGTERM sent to the process group(s) {names} of the server(s) it launched", notes)
    while any(_members(g) for g in live) and time.monotonic() - t0 < grace:
        time.sleep(0.05)
    left = {g: note for g, note in live.items() if _members(g)}
    if not left:
        _say(f"process group(s) {names} ended {time.monotonic() - t0:.1f} s after SIGTERM", notes)
        return
    _signal_groups(left, signal.SIGKILL)
    _say(f"process group(s) {', '.join(str(g) for g in left)} still ran {grace:g} s after SIGTERM: SIGKILL sent",
         [n for n in left.values() if n])
    deadline = time.monotonic() + kill_wait
    while any(_members(g) for g in left) and time.monotonic() < deadline:
        time.sleep(0.05)


def watch(fd: int, runner: int) -> None:
    """Read ``add``/``remove`` lines from ``fd`` until end of file, then end every group still guarded."""
    groups: dict[int, str] = {}
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            verb, _, rest = line.partition(" ")
            pgid_text, _, note = rest.partition(" ")
            try:
                pgid = int(pgid_text)
            except ValueError:
                continue
            if verb == "add" and pgid > 1:
                groups[pgid] = note
            elif verb == "remove":
                groups.pop(pgid, None)
    end_groups(groups, f"the runner (pid {runner}) ended without stopping its server(s)")


def main(argv: list[str]) -> None:
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    watch(0, int(argv[0]) if argv else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
