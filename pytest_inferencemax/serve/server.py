"""The inference server's lifecycle: launch a recipe, wait until it serves, watch it, stop it.

Process handling is mirakuru's (process group via setsid, SIGTERM then SIGKILL, leftover
children found by an environment marker, cleanup at exit), plus a watchdog (``supervisor``) that
ends the server's whole process group should the runner die without that cleanup (SIGKILL).
Readiness is one check class over mirakuru's HTTP executor: ``GET /health`` answers 2xx *and* a
one-token completion succeeds, with progress shown while a long first start compiles.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
from mirakuru import HTTPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

from pytest_inferencemax.progress import Progress, last_log_line, log_tail
from pytest_inferencemax.plan.recipe import Recipe
from pytest_inferencemax.errors import ServerError
from pytest_inferencemax.serve import api, supervisor
from pytest_inferencemax.serve.api import one_token_completion  # raised here; defined in the error tree (errors.py)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _port_busy(host: str, port: int) -> ServerError:
    return ServerError(f"port {port} on {host} is already in use: stop what listens there, "
                       "or drop --port to let a free port be chosen")


# mirakuru's poll period, both while the server starts (is it ready?) and while it stops (has it exited?): each
# start and each stop ends within this of the event, not a whole second later (1 s cost about 2 s a server).
POLL_S = 0.1


class ServingExecutor(HTTPExecutor):
    """Started when ``/health`` answers 2xx and a one-token completion succeeds."""

    def __init__(self, command: list[str], *, base_url: str, health_path: str, model: str,
                 env: dict[str, str], log_file: Path, timeout: float, api_key: str | None,
                 on_wait: Callable[[float, str], None] | None = None) -> None:
        self._pgid: int | None = None  # the server's process group, kept after mirakuru forgets the process
        self._log_path = log_file
        self._log = open(log_file, "a", encoding="utf-8")
        self._base_url = base_url
        self._model = model
        self._api_key = api_key
        self._on_wait = on_wait
        self._t0 = time.monotonic()
        self.not_ready_reason = "not started"
        super().__init__(command, url=base_url + health_path, method="GET", status=r"^2\d\d$",
                         envvars=env, timeout=timeout, sleep=POLL_S, request_timeout=10.0,
                         stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def process(self) -> subprocess.Popen | None:
        return self._process

    @process.setter
    def process(self, proc: subprocess.Popen | None) -> None:
        """mirakuru sets this once ``Popen`` returned: the group is guarded again from the runner's side (the
        child registered it already, see ``_popen_kwargs``), which keeps the runner's own list for a
        watchdog that has to be started again."""
        self._process = proc
        if proc is not None and self._pgid is None:
            self._pgid = proc.pid  # started with setsid: its own group
            supervisor.guard(proc.pid, self._log_path)

    @property
    def _popen_kwargs(self) -> dict:
        """mirakuru's, with its ``preexec_fn=os.setsid`` replaced by one that also registers the new group
        with this runner's watchdog before the server runs (``supervisor.session_guard``)."""
        kwargs = super()._popen_kwargs
        kwargs.pop("start_new_session", None)
        kwargs["preexec_fn"] = supervisor.session_guard(self._log_path)
        return kwargs

    def after_start_check(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ProcessExitedWithError(self, self.process.returncode)  # exit 0 counts as death too
        if self._on_wait is not None:
            self._on_wait(time.monotonic() - self._t0, last_log_line(self._log_path))
        if not super().after_start_check():
            self.not_ready_reason = "/health does not answer 2xx yet"
            return False
        problem = one_token_completion(self._base_url, self._model, api_key=self._api_key)
        self.not_ready_reason = f"one-token completion failed: {problem}" if problem else ""
        return problem is None

    def stop_within(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; close the log. Returns once no
        process of the group is left: mirakuru waits for the server's main process only, and its
        engine processes may take a moment longer (or need the SIGKILL). The group is then no longer
        the watchdog's to end."""
        self._timeout = grace
        pgid = self._pgid  # also when mirakuru has dropped the process (it exited during start-up, a timeout)
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - a server that dies badly on SIGTERM is still stopped
            self.kill()
        finally:
            self._log.close()
        if pgid is not None:
            try:
                _reap_group(pgid, grace)
            finally:
                supervisor.release(pgid)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: a container's init may never
    reap the engine processes that a server's exit left to it."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel (a zombie counts there)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _reap_group(pgid: int, grace: float) -> None:
    """Wait up to ``grace`` seconds for every process of the group to end, then SIGKILL what is left."""
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5.0
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass
class Server:
    """A server the benchmark talks to: one we launched, or one given by URL."""

    base_url: str
    model: str
    recipe: Recipe | None = None
    log_path: Path | None = None
    executor: ServingExecutor | None = field(default=None, repr=False)
    started_in: float = 0.0
    broken: str | None = None  # set when a point found it hung: the next point gets a new server

    def command_for_record(self) -> list[str]:
        """The exact argv this server was launched with."""
        return list(self.executor.command_parts) if self.executor else []

    @property
    def pid(self) -> int | None:
        proc = self.executor.process if self.executor else None
        return proc.pid if proc else None

    def death_reason(self) -> str | None:
        """Why a launched server is no longer running, or ``None`` while it runs."""
        if self.broken:
            return self.broken
        if self.executor is None:
            return None
        proc = self.executor.process
        if proc is None:
            return "the server was stopped"
        code = proc.poll()
        if code is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"the server process (pid {proc.pid}) {how}"


class ServerPool:
    """Keeps at most one launched server per worker and swaps it when the recipe changes."""

    def __init__(self, *, log_dir: Path, progress: Progress, start_timeout: float, stop_grace: float = 30.0,
                 port: int | None = None, api_key: str | None = None,
                 on_launch: Callable[["Server"], None] | None = None) -> None:
        self.log_dir = log_dir
        self.progress = progress
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.port = port
        self.api_key = api_key
        self.current: Server | None = None
        self.launches = 0
        self.failed_starts: dict[str, str] = {}  # recipe key -> why it did not start
        self.on_launch = on_launch


    def acquire(self, recipe: Recipe, served_model_name: str) -> Server:
        cur = self.current
        if cur is not None and cur.recipe is not None and cur.recipe.key == recipe.key and cur.death_reason() is None:
            return cur
        if recipe.key in self.failed_starts:
            raise ServerError(f"not retried: this server configuration failed to start earlier in the session: "
                              f"{self.failed_starts[recipe.key].splitlines()[0]}")
        if cur is not None:
            why = "its configuration changed" if cur.recipe and cur.recipe.key != recipe.key else cur.death_reason()
            self.progress.line(f"inferencemax: restarting the server ({why})")
            self.release()
        try:
            self.current = self._launch(recipe, served_model_name)
        except ServerError as exc:
            self.failed_starts[recipe.key] = str(exc)
            raise
        if self.on_launch is not None:
            self.on_launch(self.current)
        return self.current

    def _launch(self, recipe: Recipe, served_model_name: str) -> Server:
        port = self.port or free_port(recipe.host)
        if port_in_use(recipe.host, port):
            raise _port_busy(recipe.host, port)
        self.launches += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"server-{recipe.suite}-{recipe.key}-{self.launches}.log"
        recipe.write_files()
        base_url = f"http://{recipe.host}:{port}"
        cmd = recipe.command(port)
        self.progress.line(f"inferencemax: starting {recipe.engine} server on {base_url} (log: {log_path})")

        def on_wait(elapsed: float, log_line: str) -> None:
            m, s = divmod(int(elapsed), 60)
            self.progress.status(f"[server] starting {m}m{s:02d}s | {log_line}")

        executor = ServingExecutor(cmd, base_url=base_url, health_path=recipe.health_path,
                                   model=served_model_name, env=recipe.environment(port), log_file=log_path,
                                   timeout=self.start_timeout, api_key=self.api_key, on_wait=on_wait)
        t0 = time.monotonic()
        try:
            executor.start()
        except AlreadyRunning:
            executor.stop_within(self.stop_grace)
            raise _port_busy(recipe.host, port) from None
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            reason = executor.not_ready_reason
            executor.stop_within(self.stop_grace)
            self.progress.done()
            if isinstance(exc, ProcessExitedWithError):
                why = (f"the server exited during start-up ({exc.exit_code}) after {time.monotonic() - t0:.0f} s: "
                       f"command {' '.join(cmd)}")
            else:
                why = (f"the server was not ready within {self.start_timeout:g} s ({reason}); raise "
                       "--server-start-timeout if it is still compiling")
            raise ServerError(f"{why}\n--- last lines of {log_path} ---\n{log_tail(log_path)}") from None
        except BaseException:
            executor.stop_within(self.stop_grace)  # Ctrl-C during a long start: leave nothing behind
            raise
        elapsed = time.monotonic() - t0
        self.progress.done()
        self.progress.line(f"inferencemax: server ready in {elapsed:.0f} s (pid {executor.process.pid})")
        return Server(base_url=base_url, model=served_model_name, recipe=recipe, log_path=log_path,
                      executor=executor, started_in=elapsed)

    def release(self) -> None:
        cur, self.current = self.current, None
        if cur is not None and cur.executor is not None:
            cur.executor.stop_within(self.stop_grace)


def check_external(base_url: str, model: str, *, api_key: str | None = None, ready_timeout: float = 60.0,
                   pause: float = 2.0) -> Server:
    """A server someone else runs, once it is ready: ``/health`` answers 2xx (a server without a
    ``/health`` route may answer 404), ``/v1/models`` lists ``model``, and one token comes back.

    A server that is not ready yet (refused connections, ``/health`` 503, a failing completion) is
    asked again every ``pause`` seconds until ``ready_timeout`` has passed; a model it does not serve
    is refused at once with the names it lists."""
    deadline = time.monotonic() + ready_timeout
    while True:
        left = round(max(1.0, deadline - time.monotonic()), 1)  # a timeout in a message reads "read timeout=9.9"
        problem = _not_ready(base_url, model, api_key, timeout=min(10.0, left), completion_timeout=min(60.0, left))
        if problem is None:
            return Server(base_url=base_url, model=model)
        if time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
    raise ServerError(f"the server at {base_url} is not ready after {ready_timeout:g} s: {problem}. Check "
                      "--server-url, or raise --server-ready-timeout if it is still starting")


def _not_ready(base_url: str, model: str, api_key: str | None, *, timeout: float,
               completion_timeout: float) -> str | None:
    """Why the server is not ready to be measured, or None when it is; raises :class:`ServerError` for
    what waiting cannot fix (a model name it does not serve)."""
    try:
        health = api.get(base_url, "/health", api_key=api_key, timeout=timeout)
        if health.status_code != 404 and not 200 <= health.status_code < 300:
            return f"GET /health answered HTTP {health.status_code}"
        models = api.get(base_url, "/v1/models", api_key=api_key, timeout=timeout)
    except requests.RequestException as exc:
        return f"it does not answer ({type(exc).__name__}: {exc})"
    if models.status_code not in (200, 404):  # 404: a server without the route; the completion decides
        return f"GET /v1/models answered HTTP {models.status_code}"
    try:
        served = [str(m.get("id")) for m in models.json().get("data") or [] if isinstance(m, dict)] \
            if models.status_code == 200 else []
    except (ValueError, AttributeError):
        served = []  # not the OpenAI shape: the one-token request below decides
    if served and model not in served:
        raise ServerError(f"the server at {base_url} does not serve {model!r}: /v1/models lists "
                          f"{', '.join(repr(m) for m in served)}; pass one of them as --served-model-name")
    problem = one_token_completion(base_url, model, timeout=completion_timeout, api_key=api_key)
    return f"a one-token completion failed ({problem})" if problem else None
