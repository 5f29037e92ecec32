"""The built-in responder: time from a user message to its first ``reply.delta``.

What tether adds between a user and an LLM: the time from sending a user
message to the first ``reply.delta`` at a WebSocket client, against a client
that talks to the same LLM server directly and times its first content chunk
(``bench/responder_client.py`` has both). p50 and p99 at 1 and 200
concurrent sessions; the target is tether's added p99 <= 5 ms at 200.

Three processes besides this one, each on a free loopback port:

* the fake LLM (``python -m bench.fake_llm``, ``bench/fake_llm.py``): model
  ``echo`` streams ``Echo: <message>`` a token per chunk, the first at once
  (``RESPONDER_MODEL=slow-first:0.005`` puts a fixed 5 ms before it, for
  both contenders alike);
* tether (``python -m bench.ws_idle_server tether FD``): ``create_app`` from
  ``TETHER_*`` under ``TetherServer``, as ``tether serve`` runs it, with
  ``TETHER_LLM_BASE_URL`` at the fake LLM, the memory store and tether's
  defaults (journals with ``fsync=always`` in a temp dir) except: log level
  warning, long timeouts, and a frame rate limit out of the way
  (a conversation sends a message per reply, faster than a person does);
* the client (``python -m bench.responder_client``), both contenders in one
  process so that the client's own costs are the same for both.

A measurement: ``c`` workers, each through ``sessions`` conversations of
``turns`` turns; a turn is a pause, a user message, then the whole reply. At
200: 200 conversations open at once, 3 turns each after pauses of
``RESPONDER_THINK`` (10 s) on average (uniform in 0-20 s: about 20 messages a
second in all, people chatting rather than a flood; 200 messages sent at the
same instant would measure how fast two shared CPUs drain a queue, not what
tether adds to one message), 600 samples; at 1: 20 conversations of 10
turns, one after the other without pauses, 200 samples. Contenders
interleave (tether, direct at 1, then at 200; the order flips each repeat)
after a discarded warm-up of both, and the figures are medians over
``REPEATS`` repeats of each repeat's percentile;
"added" is tether's percentile minus direct's in the same repeat (then the
median of those). The machine is shared: run it niced (``nice -n -5``) and
read the spread in ``bench/results/responder.json`` (every sample is there).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Row, Target, loopback_listener, write_json
from bench.fake_llm import launch
from bench.ws_idle import Child

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "responder.json"
BENCH_DIR = os.environ.get("TETHER_BENCH_DIR")
MODEL = os.environ.get("RESPONDER_MODEL", "echo")
REPEATS = int(os.environ.get("RESPONDER_REPEATS", "5"))
FSYNC = os.environ.get("RESPONDER_FSYNC")
"""``TETHER_FSYNC`` for the server; unset: tether's default (``always``)."""
THINK = float(os.environ.get("RESPONDER_THINK", "10"))
"""Mean pause (s) before each message at 200 concurrent: 20 messages a second in all."""
SHAPES = {1: (20, 10, 0.0), 200: (1, 3, THINK)}
"""Concurrency: (conversations per worker, turns per conversation, mean pause in seconds)."""
QUICK_SHAPES = {1: (5, 10, 0.0), 200: (1, 2, THINK / 2)}
SERVER = ["-m", "bench.ws_idle_server", "tether"]
"""The server's command line, but the listening socket's fd (a profiling run swaps it)."""
TARGET_CONCURRENCY = 200
TARGET_MS = 5.0


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank (a real sample)."""
    ordered = sorted(values)
    rank = max(1, -(-int(q * len(ordered) * 1000) // 1000))  # ceil(q * n) without float error
    return ordered[min(len(ordered), rank) - 1]


def _env(secret: str, data_dir: str, llm_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(
        TETHER_SECRET=secret,
        TETHER_DATA_DIR=data_dir,
        TETHER_LOG_LEVEL="warning",
        TETHER_IDLE_TIMEOUT="1h",
        TETHER_MAX_DURATION="1d",
        TETHER_PRESENCE_TIMEOUT="1d",
        TETHER_HELLO_TIMEOUT="60s",
        TETHER_MAX_MESSAGES_PER_MINUTE="1000000",
        TETHER_MESSAGE_BURST="100000",
        TETHER_LLM_BASE_URL=llm_url,
        TETHER_LLM_MODEL=MODEL,
    )
    if FSYNC:
        env["TETHER_FSYNC"] = FSYNC
    return env


def _plan(shapes: dict[int, tuple[int, int, float]], repeats: int) -> list[list[Any]]:
    low = min(shapes)
    warm = [low, -1, 1, 5, 0.0]
    plan: list[list[Any]] = [["tether", *warm], ["direct", *warm]]  # discarded
    for repeat in range(repeats):
        order = ["tether", "direct"] if repeat % 2 == 0 else ["direct", "tether"]
        for concurrency, shape in shapes.items():
            plan += [[name, concurrency, repeat, *shape] for name in order]
    return plan


def measure(shapes: dict[int, tuple[int, int, float]], repeats: int) -> dict[str, Any]:
    """Run the plan once; every sample, by concurrency, contender and repeat."""
    secret = secrets.token_hex(32)
    llm = launch()
    try:
        with tempfile.TemporaryDirectory(prefix="tether-bench-", dir=BENCH_DIR) as data_dir:
            env = _env(secret, data_dir, llm.base_url)
            listener = loopback_listener()
            port, fd = listener.getsockname()[1], listener.fileno()
            log = open(Path(data_dir) / "server.log", "w+")  # noqa: SIM115
            argv = [sys.executable, *SERVER, str(fd)]
            server = Child(argv, env, pass_fds=[fd], stderr=log)
            listener.close()
            client: Child | None = None
            try:
                server.expect("ready", 60)
                plan = _plan(shapes, repeats)
                args = {
                    "ws_url": f"ws://127.0.0.1:{port}/ws",
                    "llm_url": llm.base_url,
                    "model": MODEL,
                    "secret": secret,
                    "plan": plan,
                }
                client = Child(
                    [sys.executable, "-m", "bench.responder_client", json.dumps(args)], env
                )
                samples: dict[str, Any] = {}
                for step in plan:
                    got = client.expect("measured", 600)
                    if got["repeat"] < 0:
                        continue
                    one = percentile(got["ms"], 0.5), percentile(got["ms"], 0.99)
                    print(
                        f"  responder c={got['concurrency']:>3} {got['contender']:6} "
                        f"repeat {got['repeat']}: n={len(got['ms'])} "
                        f"p50 {one[0]:.2f} ms, p99 {one[1]:.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                    by_c = samples.setdefault(str(step[1]), {})
                    by_c.setdefault(step[0], []).append(got["ms"])
                client.expect("done", 60)
            except Exception:
                log.seek(0)
                print(f"  tether server log:\n{log.read()[-3000:]}", file=sys.stderr)
                raise
            finally:
                if client is not None:
                    client.kill()
                server.kill()
                log.close()
    finally:
        llm.stop()
    return samples


def rows_from(samples: dict[str, Any]) -> list[Row]:
    """Per concurrency and percentile: tether's, direct's, and the added milliseconds."""
    rows: list[Row] = []
    for c, by in samples.items():
        case = f"{int(c):,} concurrent"
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            tether = [percentile(ms, q) for ms in by["tether"]]
            direct = [percentile(ms, q) for ms in by["direct"]]
            added = [t - d for t, d in zip(tether, direct, strict=True)]
            unit = f"ms to 1st delta {label}"
            base = statistics.median(direct)
            target = Target("<=", TARGET_MS) if int(c) == TARGET_CONCURRENCY and q > 0.5 else None
            rows += [
                Row("responder", case, "direct", base, unit, direct),
                Row(
                    "responder",
                    case,
                    "tether",
                    statistics.median(tether),
                    unit,
                    tether,
                    "direct",
                    base,
                ),
                Row(
                    "responder",
                    case,
                    "tether added",
                    statistics.median(added),
                    unit,
                    added,
                    target=target,
                ),
            ]
    return rows


def run(quick: bool) -> list[Row]:
    """For ``python -m bench responder``; also writes ``bench/results/responder.json``."""
    shapes, repeats = (QUICK_SHAPES, 1) if quick else (SHAPES, REPEATS)
    samples = measure(shapes, repeats)
    rows = rows_from(samples)
    meta = {
        "model": MODEL,
        "repeats": repeats,
        "shapes": shapes,
        "quick": quick,
        "fsync": FSYNC or "always",
        "nice": os.nice(0),
    }
    write_json(rows, meta, RESULTS, {"ms": samples})
    return rows
