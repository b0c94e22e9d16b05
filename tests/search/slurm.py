"""A throwaway single-node SLURM cluster for the tests, with real accounting.

Debian's SLURM 22.05 (slurmctld, slurmd, slurmdbd) and a MariaDB server for slurmdbd, all
started from one temporary folder on free localhost ports: `SLURM_CONF` points the daemons
and the client commands (sbatch, squeue, sacct, scancel, scontrol) at a generated
slurm.conf there, so the machine's own /etc/slurm and MariaDB are never read or touched.
No munge (auth/none, cred/none) and no cgroups (proctrack/linuxproc, task/none); the node
is `localhost` (`slurmd -N localhost`) whatever the host is called.

Accounting matters to submitit: it reads job states with `sacct`, and without accounting a
job killed hard (no result file) leaves `job.result()` waiting forever.

Every daemon runs in the foreground as a child of the test process (its pid is known); `stop`
cancels every job, waits for an empty queue (else slurmstepd and the job outlive the
daemons), then ends the daemons and MariaDB by pid and removes the folder. Every wait has a
timeout whose error names what it waited for, and the daemon's log.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.search.pg import _free_port

T = TypeVar("T")

CLUSTER = "odysseytest"
NODE = "localhost"
PARTITION = "debug"
DB_USER, DB_PASSWORD = "slurm", "slurmdb-pw"  # the throwaway MariaDB's, never a real one
# Debian packages holding what the cluster needs (Makefile system-deps installs them)
BINARIES = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "mariadbd",
            "mariadb-install-db", "mariadb")


class SlurmClusterError(RuntimeError):
    """The test cluster did not start or stop; the message says which wait failed."""


def missing_binaries() -> list[str]:
    """The programs the cluster needs that are not installed."""
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin"
    return [b for b in BINARIES if shutil.which(b, path=path) is None]


def wait_for(check: Callable[[], T], what: str, timeout: float, interval: float = 0.2,
             log: Path | None = None) -> T:
    """Poll `check` until it returns something true; SlurmClusterError naming `what` (and the
    tail of `log`) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SlurmClusterError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(interval)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


@dataclass
class Cluster:
    """A running test cluster; `env` is the environment its client commands need."""

    root: Path
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "")
        extra = [p for p in ("/usr/sbin", "/usr/bin") if p not in path.split(":")]
        return {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf"),
                "PATH": ":".join([path, *extra])}

    def log(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    def run(self, *cmd: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        """A SLURM client command (sbatch, squeue, scontrol, ...) against this cluster."""
        r = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode:
            raise SlurmClusterError(f"{' '.join(cmd)} exited {r.returncode}: "
                                    f"{(r.stderr or r.stdout).strip()}")
        return r

    # -- the queue -------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, str]]:
        """The queue: one dict per job (array tasks one by one): id, state, reason, name."""
        out = self.run("squeue", "-h", "-r", "-o", "%i|%T|%r|%j").stdout
        return [dict(zip(("id", "state", "reason", "name"), line.split("|"), strict=True))
                for line in out.splitlines() if line.strip()]

    def accounting(self, job_id: str) -> dict[str, str]:
        """sacct's State per job step of `job_id` (what submitit reads)."""
        out = self.run("sacct", "-n", "-P", "-j", job_id, "-o", "JobID,State").stdout
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-n", NODE, "-o", "%T").stdout.strip()

    def cancel_all(self, timeout: float = 60) -> None:
        """scancel every job, then wait for an empty queue (their slurmstepd gone too)."""
        ids = sorted({j["id"].split("_")[0] for j in self.jobs()})
        if ids:
            self.run("scancel", *ids, check=False)
        wait_for(lambda: not self.jobs(), f"an empty queue after scancel {' '.join(ids)}",
                 timeout, 0.5, self.log("slurmctld"))
        wait_for(lambda: not self.job_processes(),
                 "the jobs' processes (slurmstepd, the job scripts) to exit",
                 timeout, 0.5, self.log("slurmd"))

    def job_processes(self) -> list[str]:
        """'pid name' of every process started under this cluster besides its daemons: the
        job steps (slurmstepd) and what they run (all carry its SLURM_CONF)."""
        marker = f"SLURM_CONF={self.root / 'slurm.conf'}".encode()
        daemons = {p.pid for p in self.procs.values()} | {os.getpid()}
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) in daemons:
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    name = (proc / "comm").read_text().strip()
                    if name != "slurmscriptd":  # slurmctld's own helper, ends with it
                        found.append(f"{proc.name} {name}")
            except OSError:  # ended meanwhile, or not ours to read
                continue
        return found

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel every job, stop the daemons then MariaDB (by pid), remove the folder."""
        try:
            if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
                self.cancel_all()
        finally:
            for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd"):
                _end(self.procs.get(name))
            shutil.rmtree(self.root, ignore_errors=True)


def _end(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM a daemon, SIGKILL it if it has not exited after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


SLURM_CONF = """\
ClusterName={cluster}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={slurmctld}
SlurmdPort={slurmd}
AuthType=auth/none
CredType=cred/none
SlurmUser={user}
SlurmdUser={user}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=2
MinJobAge=600
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={slurmdbd}
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""

SLURMDBD_CONF = """\
AuthType=auth/none
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={slurmdbd}
SlurmUser={user}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={mariadb}
StorageUser={db_user}
StoragePass={db_password}
StorageLoc=slurm_acct_db
PidFile={root}/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
DebugLevel=info
"""


def _start_mariadb(cluster: Cluster, user: str) -> None:
    """A fresh MariaDB data folder, the server on its own port and socket, and the
    database user slurmdbd connects as."""
    root, port = cluster.root, cluster.ports["mariadb"]
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={root / 'db'}",
                    f"--user={user}", "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, capture_output=True, timeout=180)
    log = cluster.log("mariadbd")
    cluster.procs["mariadbd"] = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={root / 'db'}", f"--user={user}",
         f"--socket={root / 'mysql.sock'}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--pid-file={root / 'mariadb.pid'}", f"--log-error={log}", "--skip-name-resolve",
         "--skip-log-bin", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cluster.env)
    wait_for(lambda: _listening(port), f"MariaDB to listen on 127.0.0.1:{port}", 120, log=log)
    sql = (f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
           f"GRANT ALL ON *.* TO '{DB_USER}'@'127.0.0.1';")
    subprocess.run(["mariadb", "--no-defaults", f"--socket={root / 'mysql.sock'}", "-u", "root",
                    "-e", sql], check=True, capture_output=True, timeout=60)


def _daemon(cluster: Cluster, name: str, *args: str) -> None:
    """Start a SLURM daemon in the foreground (-D), its output into log/<name>.out."""
    out = (cluster.root / "log" / f"{name}.out").open("w")
    cluster.procs[name] = subprocess.Popen([name, "-D", *args], env=cluster.env, stdout=out,
                                           stderr=subprocess.STDOUT,
                                           cwd=cluster.root)


def _alive(cluster: Cluster, name: str) -> None:
    proc = cluster.procs[name]
    if proc.poll() is not None:
        log = cluster.root / "log" / f"{name}.out"
        raise SlurmClusterError(f"{name} exited with status {proc.returncode}:\n"
                                + log.read_text(errors="replace")[-2000:])


def start_cluster(timeout: float = 180) -> Cluster:
    """MariaDB, slurmdbd, slurmctld and slurmd in a new temporary folder, ready for sbatch
    and sacct; SlurmClusterError (after stopping what had started) if one does not come up."""
    missing = missing_binaries()
    if missing:
        raise FileNotFoundError(f"SLURM test cluster: {', '.join(missing)} not installed "
                                "(make system-deps: slurmctld slurmd slurm-client slurmdbd "
                                "mariadb-server)")
    root = Path(tempfile.mkdtemp(prefix="odyssey-slurm-"))
    for folder in ("state", "spool", "log"):
        (root / folder).mkdir()
    ports = {k: _free_port() for k in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
    cluster = Cluster(root, ports)
    user = getpass.getuser()
    values = dict(cluster=CLUSTER, host=socket.gethostname().split(".")[0], user=user,
                  root=root, node=NODE, partition=PARTITION, cpus=os.cpu_count() or 1,
                  memory=int(_memory_mb() * 0.9), db_user=DB_USER, db_password=DB_PASSWORD,
                  **ports)
    (root / "slurm.conf").write_text(SLURM_CONF.format(**values))
    dbd = root / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf; it must be 0600
    dbd.write_text(SLURMDBD_CONF.format(**values))
    dbd.chmod(0o600)
    try:
        _start_mariadb(cluster, user)
        _daemon(cluster, "slurmdbd")
        wait_for(lambda: _alive(cluster, "slurmdbd") or _listening(ports["slurmdbd"]),
                 f"slurmdbd to listen on 127.0.0.1:{ports['slurmdbd']}", timeout,
                 log=cluster.log("slurmdbd"))
        _daemon(cluster, "slurmctld", "-i")
        wait_for(lambda: _alive(cluster, "slurmctld") or _listening(ports["slurmctld"]),
                 f"slurmctld to listen on 127.0.0.1:{ports['slurmctld']}", timeout,
                 log=cluster.log("slurmctld"))
        _daemon(cluster, "slurmd", "-N", NODE)
        wait_for(lambda: _alive(cluster, "slurmd") or cluster.node_state() == "idle",
                 f"node {NODE} to be idle (sinfo)", timeout, 0.5, cluster.log("slurmd"))
        wait_for(lambda: CLUSTER in cluster.run("sacctmgr", "-n", "-P", "list", "cluster",
                                                "format=cluster", check=False).stdout,
                 f"cluster {CLUSTER} to be registered with slurmdbd (sacctmgr)", timeout,
                 0.5, cluster.log("slurmctld"))
    except BaseException:
        cluster.stop()
        raise
    return cluster
