"""A real one-node Slurm for the tests: Debian's ``munge`` and ``slurm-wlm`` (``scripts/test.sh`` installs them as
root when they are missing), each daemon started on its own key, socket, ports and folders under a temporary
directory, and stopped by its PID. Nothing of the machine's own Slurm or munge configuration is used."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


def missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"local Slurm: {what} not within {timeout:g} s")
        time.sleep(0.1)


class LocalSlurm:
    """munged, slurmctld and slurmd for one node (this host) under ``root``; ``env`` points Slurm's commands at it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: dict[str, Path] = {}

    def _conf(self) -> str:
        r, host = self.root, socket.gethostname().split(".")[0]
        return "\n".join([
            "ClusterName=inferencemax-tests", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={r}/munge.socket", "CredType=cred/munge",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}", f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool", f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/slurmctld.log", f"SlurmdLogFile={r}/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "MpiDefault=none", "ReturnToService=2", "MinJobAge=600",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "SchedulerParameters=sched_interval=1", "SlurmctldTimeout=10", "SlurmdTimeout=10",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN",
            "PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4", ""])

    def start(self) -> "LocalSlurm":
        r = self.root
        for d in ("state", "spool"):
            (r / d).mkdir(parents=True, exist_ok=True)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.conf.write_text(self._conf())
        subprocess.run(["munged", "--force", f"--socket={r}/munge.socket", f"--key-file={key}",
                        f"--log-file={r}/munged.log", f"--pid-file={r}/munged.pid", f"--seed-file={r}/munged.seed"],
                       check=True, capture_output=True, timeout=30)
        self.pids["munged"] = r / "munged.pid"
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], check=True, capture_output=True, env=self.env, timeout=30)
            self.pids[daemon] = r / f"{daemon}.pid"
        _wait(lambda: self.sinfo() == "idle", 30, "the node idle in sinfo")
        return self

    def sinfo(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env, timeout=10)
        return done.stdout.strip()

    def jobs(self) -> list[str]:
        """The jobs (and array tasks) the controller still runs or holds pending."""
        done = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=self.env,
                              timeout=10)
        return [line for line in done.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel what runs, then end the daemons: SIGTERM to all at once, SIGKILL to any still there after 3 s."""
        subprocess.run(["scancel", "--user=root"], capture_output=True, env=self.env, timeout=10)
        pids = []
        for name in ("slurmd", "slurmctld", "munged"):
            try:
                pids.append(int(self.pids[name].read_text().split()[0]))
            except (KeyError, OSError, ValueError, IndexError):
                continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 3, "the daemons gone")
                return
            except RuntimeError:
                continue
