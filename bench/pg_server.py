"""A throwaway PostgreSQL for the benches and tests: ``initdb`` in a temp dir, stopped by pid.

The server is Debian's ``postgresql`` (``/usr/lib/postgresql/<version>/bin``;
``make system-deps`` installs it). PostgreSQL refuses to run as root, so when
this process is root the cluster directory is handed to the ``postgres``
system user (which the Debian package creates) and every server command runs
as that user (``subprocess``'s ``user=``: no ``runuser`` in between, so the
pid this module holds is the postmaster's own). The server listens on 127.0.0.1 on a free
port and on a Unix socket inside the temp dir, trusts local connections (it
is reachable from this machine only, and lives for one run), and is started
with ``fsync`` on: the benches measure what a real deployment pays.
Nothing is looked up or stopped by name: the postmaster is stopped by its pid.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 30.0
SERVER_USER = "postgres"
"""The unprivileged user the server runs as when this process is root."""
DATABASE = "tether"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder; ``RuntimeError`` if there is none."""

    def version(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path is not None:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")


@dataclass
class PgServer:
    """One running postmaster: its process, its folder and where to reach it."""

    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    @property
    def url(self) -> str:
        """A libpq URL of the server's ``tether`` database."""
        return self.url_of(DATABASE)

    def url_of(self, database: str) -> str:
        """A libpq URL of ``database`` on this server."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """A fast shutdown (SIGINT) by pid, then wait (SIGKILL if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()

    def kill(self) -> None:
        """Kill the postmaster at once, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _as_server_user() -> dict[str, Any]:
    """``subprocess`` arguments that run a command as :data:`SERVER_USER` when we are root."""
    if os.geteuid() != 0:
        return {}
    owner = pwd.getpwnam(SERVER_USER)
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _run(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, **_as_server_user()
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch(directory: Path, *, timeout: float = START_TIMEOUT_S) -> PgServer:
    """``initdb`` into ``directory``/data, start the server, create the ``tether`` database.

    Raises ``RuntimeError`` with the server's log if it does not come up.
    """
    bins = bin_dir()
    data, sockets, log = directory / "data", directory / "sock", directory / "server.log"
    sockets.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVER_USER)
        for path in (directory, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    init = [str(bins / "initdb"), "-D", str(data), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8"]
    init += ["--no-locale", "--no-sync"]
    done = _run(init, directory)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        argv = [str(bins / "postgres"), "-D", str(data), "-k", str(sockets), "-p", str(port)]
        argv += ["-h", "127.0.0.1", "-c", "max_connections=100", "-c", "logging_collector=off"]
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                **_as_server_user(),
            )
        server = PgServer(process, directory, port)
        if _wait_ready(server, bins, sockets, timeout):
            createdb = [str(bins / "createdb"), "-h", str(sockets), "-p", str(port), DATABASE]
            created = _run(createdb, directory)
            if created.returncode != 0:
                server.stop()
                raise RuntimeError(f"createdb failed: {created.stderr}")
            return server
        server.stop()
    raise RuntimeError("postgres did not start:\n" + log.read_text(errors="replace")[-3000:])


def _wait_ready(server: PgServer, bins: Path, sockets: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    probe = [str(bins / "pg_isready"), "-q", "-h", str(sockets), "-p", str(server.port)]
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if subprocess.run(probe, check=False).returncode == 0:
            return True
        time.sleep(0.05)
    return False


@contextmanager
def pg_server() -> Iterator[PgServer]:
    """A fresh server in its own temp dir for the block, stopped by pid afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="tether-pg-"))
    try:
        server = launch(directory)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
