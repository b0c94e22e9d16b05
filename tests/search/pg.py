"""A throwaway PostgreSQL server for the tests: initdb/pg_ctl in a temporary folder.

Never the machine's default cluster: its own data folder, a free localhost port and a unix
socket in that folder; stopped and removed afterwards. As root (CI) the server runs as the
`postgres` user (`runuser -u postgres --`), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "odyssey"
PASSWORD = "s3cret-Pa55word"  # a string the tests look for in every file written


def pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (newest), None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running throwaway server; `url(db)` is an SQLAlchemy URL with the password."""

    root: Path
    port: int
    bin: Path
    as_postgres: bool

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def url(self, db: str, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql+psycopg2://{USER}{secret}@127.0.0.1:{self.port}/{db}"

    def create_db(self, db: str) -> str:
        """A fresh, empty database; returns its URL (with the password)."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", USER, db], check=True, capture_output=True, env=env, timeout=60)
        return self.url(db)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def psql(self, db: str, sql: str) -> str:
        """Run `sql` as the superuser `odyssey` on database `db`; its output."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        return subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", USER, "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                              check=True, capture_output=True, text=True, env=env,
                              timeout=60).stdout

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "start")

    def halt(self, mode: str = "fast") -> None:
        """pg_ctl stop -m `mode` (smart, fast or immediate); `start` brings it back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """pg_ctl restart -m `mode`, waiting until it accepts connections again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-l", str(self.root / "log"),
                  "-w", "restart")

    def pids(self) -> list[int]:
        """The postmaster and all its children (backends, background processes)."""
        main = int((self.data / "postmaster.pid").read_text().split()[0])
        kids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and _ppid(p) == main]
        return [main, *kids]

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def start_server() -> Server:
    """initdb + pg_ctl start on a free port, password authentication for user `odyssey`."""
    bindir = pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found")
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="odyssey-pg-"))
    root.chmod(0o755)
    (root / "pw").write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    server = Server(root, _free_port(), bindir, as_postgres)
    server._run("initdb", "-D", str(root / "data"), "-U", USER, f"--pwfile={root / 'pw'}",
                "--auth=scram-sha-256", "-E", "UTF8")
    server.start()
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", server.port)) == 0:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"PostgreSQL did not listen on port {server.port}")


def open_and_create(url: str, name: str) -> None:
    """Child-process entry for start-up races: open the store and create one study."""
    import optuna

    from odyssey.store.storage import open_storage

    optuna.create_study(storage=open_storage(url, heartbeat_interval=1, grace_period=2)
                        if not url.startswith("journal") else open_storage(url),
                        study_name=name, load_if_exists=True)


def run_remote_worker(tmp: str, overrides: list[str], worker: int, sleep: float) -> None:
    """Child-process entry: a toy sweep worker that poses as another host (own host id)."""
    import socket as socket_module

    from tests.search.helpers import run_toy_worker

    socket_module.gethostname = lambda: "remote-host"
    run_toy_worker(tmp, overrides, worker, sleep)


def run_app_worker(tmp: str, overrides: list[str], worker: int, sleep: float) -> None:
    """Child-process entry: one toy sweep worker through odyssey-sweep's task function (its
    exit status and messages)."""
    import logging
    from pathlib import Path

    from odyssey.search import app
    from tests.search.helpers import toy_config

    logging.basicConfig(level=logging.INFO)
    app.sweep(toy_config(Path(tmp), *overrides, f"worker={worker}", sleep=sleep))
