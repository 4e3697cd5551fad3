"""The watchdog (serve/supervisor.py) that ends a runner's servers when the runner dies, and the client
processes (measure/multiclient.py) that end with theirs. Each "runner" here is a small Python process that
the test drives through its stdin and kills; the "servers" are groups of sleeping processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e_support import process_group

if not Path("/proc").is_dir():
    pytest.skip("reads processes from /proc", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]

# A runner: each line on its stdin is a command, each answer one JSON line on its stdout.
OWNER = r'''
import json, os, subprocess, sys
from pytest_inferencemax.serve import supervisor

GROUP = ["sh", "-c", "sleep 300 & sleep 300 & wait"]  # a group of three: the leader and two children
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "guarded":  # registered by the runner once Popen returned
        p = subprocess.Popen(GROUP, start_new_session=True)
        supervisor.guard(p.pid, arg or None)
        out = p.pid
    elif cmd == "preexec":  # registered by the child itself, before exec (as a launched server is)
        out = subprocess.Popen(GROUP, preexec_fn=supervisor.session_guard(arg or None)).pid
    elif cmd == "free":  # a group of its own that nobody guards
        out = subprocess.Popen(GROUP, start_new_session=True).pid
    elif cmd == "release":
        supervisor.release(int(arg))
        out = int(arg)
    elif cmd == "watchdog":
        out = supervisor.watchdog_pid()
    elif cmd == "exit":
        print(json.dumps(None), flush=True)
        sys.exit(0)
    print(json.dumps(out), flush=True)
'''


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _wait(condition, timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout:g} s"
        time.sleep(0.05)
    return time.monotonic() - t0


class Owner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", OWNER], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.groups: list[int] = []

    def ask(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if command.split()[0] in ("guarded", "preexec", "free"):
            self.groups.append(answer)
            _wait(lambda: len(process_group(answer)) == 3, 10, f"group {answer} started")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def owner():
    o = Owner()
    yield o
    o.close()


def test_guarded_groups_end_when_the_runner_is_killed_and_others_are_left_alone(owner, tmp_path):
    log = tmp_path / "server.log"
    guarded = owner.ask(f"guarded {log}")
    early = owner.ask("preexec")
    free = owner.ask("free")
    watchdog = owner.ask("watchdog")
    assert watchdog and _alive(watchdog)
    assert os.getpgid(watchdog) != os.getpgid(owner.proc.pid)  # a signal to the runner's group spares it
    owner.proc.kill()  # SIGKILL: no exit handler runs
    took = _wait(lambda: not process_group(guarded) and not process_group(early), 10, "the guarded groups ended")
    assert took < 10
    _wait(lambda: not _alive(watchdog), 10, "the watchdog exited once it had acted")
    assert len(process_group(free)) == 3  # never registered: not the watchdog's business
    note = log.read_text()
    assert f"the runner (pid {owner.proc.pid}) ended without stopping its server(s): SIGTERM sent" in note
    assert "ended" in note.splitlines()[-1]  # sleep and sh end on SIGTERM: no SIGKILL needed


def test_a_normal_exit_after_release_ends_nothing(owner):
    kept = owner.ask("guarded")
    owner.ask(f"release {kept}")
    watchdog = owner.ask("watchdog")
    owner.ask("exit")
    assert owner.proc.wait(10) == 0
    _wait(lambda: not _alive(watchdog), 10, "the watchdog exited with its runner")
    assert len(process_group(kept)) == 3


def test_a_runner_that_exits_while_still_guarding_ends_the_group(owner):
    group = owner.ask("preexec")
    owner.ask("exit")
    _wait(lambda: not process_group(group), 10, "the group ended")


def test_a_killed_watchdog_is_replaced_and_the_new_one_guards_the_earlier_groups(owner):
    first = owner.ask("guarded")
    old = owner.ask("watchdog")
    os.kill(old, signal.SIGKILL)
    _wait(lambda: not _alive(old), 10, "the watchdog died")
    second = owner.ask("guarded")  # started again here, told about both groups
    new = owner.ask("watchdog")
    assert new != old and _alive(new)
    owner.proc.kill()
    _wait(lambda: not process_group(first) and not process_group(second), 10, "both groups ended")


def test_a_stale_group_id_reaches_no_unrelated_process(tmp_path):
    """A group that ended, whose id a process outside any such session now has, is not signalled."""
    from pytest_inferencemax.serve.supervisor import end_groups

    bystander = subprocess.Popen(["sleep", "300"])  # in our session: its pid is not a session of its own
    try:
        end_groups({bystander.pid: str(tmp_path / "log")}, "test", grace=0.1, kill_wait=0.1)
        assert bystander.poll() is None and not (tmp_path / "log").exists()
    finally:
        bystander.kill()
        bystander.wait()


CLIENTS = r'''
import multiprocessing as mp, sys, time
from pytest_inferencemax.measure.multiclient import end_with_parent

def child():
    end_with_parent()
    time.sleep(300)

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=child, daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    print(" ".join(str(p.pid) for p in procs), flush=True)
    time.sleep(300)
'''


def test_client_processes_end_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "clients.py"
    script.write_text(CLIENTS)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    pids = [int(p) for p in proc.stdout.readline().split()]
    try:
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.kill()
        _wait(lambda: not any(_alive(p) for p in pids), 10, "the client processes ended")
    finally:
        proc.kill()
        proc.wait()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
