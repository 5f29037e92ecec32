"""A real tether server in a child process for ``make fuzz`` and ``make soak``.

:func:`serve` starts ``python -m bench.fuzz_server FD`` (the real service,
``create_app`` from ``TETHER_*``, under tether's own ``TetherServer`` and uvicorn options)
on a listening socket bound here to a free loopback port and passed down, so
there is no race for the port. Its stdout and stderr go to a log file, which
:func:`scan_log` reads back: the bytes written, ERROR and WARNING lines, and
tracebacks, with the most frequent messages for the report.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "fuzz-admin-" + secrets.token_hex(8)


@dataclass
class Server:
    """A running server: where it listens, its process, its log."""

    port: int
    proc: subprocess.Popen[bytes]
    secret: str
    admin_token: str
    log_path: Path
    data_dir: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_size(self) -> int:
        return self.log_path.stat().st_size


@contextmanager
def serve(env_overrides: dict[str, str], *, keep_dir: bool = False) -> Iterator[Server]:
    """A tether server with ``TETHER_*`` = ``env_overrides`` over fixed test secrets."""
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="tether-fuzz-") as tmp:
        data_dir = Path(tmp) / "data"
        log_path = Path(tmp) / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.update(
            TETHER_SECRET=secret,
            TETHER_ADMIN_TOKEN=ADMIN_TOKEN,
            TETHER_DATA_DIR=str(data_dir),
            TETHER_FSYNC="no",
        )
        env.update(env_overrides)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.fuzz_server", str(fd)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                pass_fds=[fd],
            )
        listener.close()
        server = Server(port, proc, secret, ADMIN_TOKEN, log_path, data_dir)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # "ready", or EOF if it died
            if line.strip() != b"ready":
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
            # uvicorn's access log goes to stdout: copy it to the log, or the pipe fills
            # and the server blocks on its next log line.
            threading.Thread(target=_copy, args=(proc.stdout, log_path), daemon=True).start()
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if keep_dir:
                kept = Path(tempfile.mkdtemp(prefix="tether-fuzz-log-"))
                (kept / "server.log").write_bytes(log_path.read_bytes())


def _copy(stream: IO[bytes], path: Path) -> None:
    with open(path, "ab", buffering=0) as out, contextlib.suppress(ValueError, OSError):
        for line in stream:
            out.write(line)


def token(server: Server, user: str, ttl: float = 86400.0, now: float | None = None) -> str:
    """A bearer token ``server`` accepts for ``user``."""
    from tether.service.auth import TokenAuthority

    return TokenAuthority(server.secret).mint(user, ttl=ttl, now=now)


def mint(secret: str, user: str, ttl: float = 86400.0, now: float | None = None) -> str:
    """A bearer token for ``user`` signed with ``secret`` (for worker processes)."""
    from tether.service.auth import TokenAuthority

    return TokenAuthority(secret).mint(user, ttl=ttl, now=now)


def metrics(server: Server) -> dict[str, float]:
    """``/metrics`` as ``{name{labels}: value}``."""
    text = httpx.get(f"{server.http}/metrics", timeout=30).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def health(server: Server) -> dict[str, Any]:
    """``/health``, decoded."""
    data: dict[str, Any] = httpx.get(f"{server.http}/health", timeout=30).json()
    return data


def wait_idle(server: Server, within: float) -> bool:
    """Wait until the server holds no live session and no connection; whether it did."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        m = metrics(server)
        live = sum(v for k, v in m.items() if k.startswith("tether_sessions_active"))
        conns = sum(v for k, v in m.items() if k.startswith("tether_connections"))
        if live == 0 and conns == 0:
            return True
        time.sleep(0.5)
    return False


_NOISE = re.compile(r"\b[0-9a-f]{8,}\b|\d+")
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_RAW_ID = re.compile(rb"(?<![0-9A-Za-z])[0-9a-fA-F]{31,33}(?![0-9A-Za-z])")


@dataclass
class LogScan:
    """What a stretch of the server log holds."""

    bytes: int
    lines: int
    errors: int  # ERROR/CRITICAL lines
    warnings: int
    tracebacks: int
    top: list[tuple[str, int]]
    secrets: int  # bearer tokens (any JWT, the admin token) written in clear
    raw_ids: int  # session-id-shaped hex strings (31-33 characters, any case) in clear

    def as_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "lines": self.lines,
            "error_lines": self.errors,
            "warning_lines": self.warnings,
            "tracebacks": self.tracebacks,
            "secrets_in_clear": self.secrets,
            "raw_id_like": self.raw_ids,
            "top_messages": [{"message": m, "count": n} for m, n in self.top],
        }


def scan_log(path: Path, start: int = 0, end: int | None = None) -> LogScan:
    """Scan bytes ``start:end`` of the log at ``path`` (the admin token counts as a secret)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(max(0, end - start))
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    errors = warnings = tracebacks = 0
    shapes: Counter[str] = Counter()
    for line in lines:
        head = line.lstrip()
        if head.startswith(("ERROR", "CRITICAL")) or " ERROR " in line:
            errors += 1
        elif head.startswith("WARNING") or " WARNING " in line:
            warnings += 1
        if head.startswith("Traceback (most recent call last)"):
            tracebacks += 1
        if not line.startswith((" ", "\t")) and "INFO:" not in line[:12]:
            shapes[_NOISE.sub("#", line)[:160]] += 1
    secrets = len(_JWT.findall(data)) + data.count(ADMIN_TOKEN.encode())
    raw_ids = len(_RAW_ID.findall(data))
    top = shapes.most_common(8)
    return LogScan(len(data), len(lines), errors, warnings, tracebacks, top, secrets, raw_ids)


TRACEMALLOC_ENV = "BENCH_TRACEMALLOC"
"""A directory: the server runs under :mod:`tracemalloc` and, at each ``SIGUSR1``, writes a
snapshot there as ``snap-N.tm`` (after a full collection; N counts from 0). For finding leaks
(``python -m bench.soak --tracemalloc DIR``); never on in a figure that counts."""


def _tracemalloc_on_signal(directory: str) -> None:
    import gc
    import itertools
    import signal
    import tracemalloc

    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "15")))
    numbers = itertools.count()

    def dump(_signum: int, _frame: object) -> None:
        gc.collect()
        n = next(numbers)
        path = Path(directory) / f"snap-{n}.tm"
        tracemalloc.take_snapshot().dump(str(path) + ".part")
        os.replace(str(path) + ".part", path)  # whole, or not there

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    """The child: serve on the inherited listening socket, print ``ready`` once started."""
    from bench.ws_idle_server import raise_nofile

    if directory := os.environ.get(TRACEMALLOC_ENV):
        _tracemalloc_on_signal(directory)
    from tether.service import create_app, load_settings
    from tether.service.server import TetherServer, server_config

    raise_nofile()
    sock = socket.socket(fileno=int(sys.argv[1]))
    settings = load_settings()
    app = create_app(settings)

    class Server(TetherServer):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            print("ready", flush=True)

    config = server_config(app, settings)
    Server(config, app.state.tether, grace=settings.shutdown_grace).run(sockets=[sock])


if __name__ == "__main__":
    main()
