"""``make fuzz``: hostile WebSocket frames and REST requests against a real server.

``python -m bench.fuzz [--frames N] [--requests N] [--workers N] [--seed N]``

1. A real tether server (:mod:`bench.fuzz_server`: uvicorn in a child process,
   a free loopback port, the memory store, a data dir in tmp, its log to a file)
   with short presence timeouts, so the fuzzers' sessions end and are archived
   during the run, and rate limits raised so the fuzz reaches the parser rather
   than the throttle (throttling has tests of its own).
2. A well-behaved session (:mod:`bench.good_client`) runs from start to end.
3. Phase WS: ``--frames`` hostile frames (default 1,000,000) over many
   connections from ``--workers`` processes (:mod:`bench.fuzz_ws`).
4. Phase REST: ``--requests`` hostile requests (default 100,000) over every
   operation of the app's OpenAPI (:mod:`bench.fuzz_rest`).
5. The fuzzers' sessions are left to end and archive; the server's log is
   scanned per phase, ``/metrics`` read.

Targets (each a row; exit status 1 if any is missed): 0 WS ``internal``
errors, 0 abnormal closes (no close frame, or 1011), 0 REST 5xx, 0 ERROR
lines, 0 tracebacks and 0 bearer tokens (any JWT, the admin token) in the
log, 0 archive failures, log bytes per hostile frame and per request bounded,
the well-behaved session undisturbed. The result goes to
``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import fuzz_rest, fuzz_ws
from bench.common import Row, Target, table, write_json
from bench.fuzz_server import health, metrics, mint, scan_log, serve
from bench.good_client import GoodSession

RESULTS = Path(__file__).parent / "results" / "fuzz.json"
WS_LOG_BYTES_PER_FRAME = 2.0
"""A connection's access lines, and at most one line per kind of error it caused, say."""
REST_LOG_BYTES_PER_REQUEST = 300.0
"""One access line per request."""

SERVER_ENV = {
    "TETHER_PRESENCE_TIMEOUT": "2s",
    "TETHER_IDLE_TIMEOUT": "10m",
    "TETHER_MAX_DURATION": "1d",
    "TETHER_MAX_MESSAGES_PER_MINUTE": "10000000",
    "TETHER_MESSAGE_BURST": "100000",
    "TETHER_MAX_REQUESTS_PER_MINUTE": "10000000",
    "TETHER_REQUEST_BURST": "100000",
    "TETHER_MAX_CONNECTIONS_PER_USER": "1000",
    "TETHER_LOG_LEVEL": "info",
}


def _pool(target: Any, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        results: list[dict[str, Any]] = pool.map(target, jobs)
    return results


def _progress(text: str) -> None:
    print(f"fuzz: {text}", file=sys.stderr, flush=True)


def fuzz(frames: int, requests: int, workers: int, seed: int) -> dict[str, Any]:
    """Run both phases against one server; every figure, as a dict."""
    result: dict[str, Any] = {"frames_target": frames, "requests_target": requests, "seed": seed}
    with serve(SERVER_ENV) as server:
        good = GoodSession(server.ws, mint(server.secret, "well-behaved-user"))
        t0 = time.perf_counter()
        mark0 = server.log_size()
        _progress(
            f"server pid {server.proc.pid} on port {server.port}; WS phase, {frames:,} frames"
        )
        ws_jobs = [
            {
                "url": server.ws,
                "secret": server.secret,
                "frames": frames // workers + (i < frames % workers),
                "concurrency": 16,
                "seed": seed * 1000 + i,
            }
            for i in range(workers)
        ]
        ws = fuzz_ws.merge(_pool(fuzz_ws.worker, ws_jobs)) if frames else {"frames": 0}
        ws["wall_s"] = time.perf_counter() - t0
        ws["frames_per_s"] = ws["frames"] / ws["wall_s"]
        mark1 = server.log_size()
        _progress(f"WS phase: {ws['frames']:,} frames in {ws['wall_s']:.0f} s; REST phase")

        t1 = time.perf_counter()
        ops = fuzz_rest.operations(server.http)
        rest_jobs = [
            {
                "url": server.http,
                "secret": server.secret,
                "admin": server.admin_token,
                "ops": ops,
                "requests": requests // workers + (i < requests % workers),
                "concurrency": 16,
                "seed": seed * 1000 + 500 + i,
            }
            for i in range(workers)
        ]
        rest = fuzz_ws.merge(_pool(fuzz_rest.worker, rest_jobs)) if requests else {"requests": 0}
        rest["wall_s"] = time.perf_counter() - t1
        rest["requests_per_s"] = rest["requests"] / rest["wall_s"]
        rest["operations_in_openapi"] = len(ops)
        mark2 = server.log_size()
        _progress(f"REST phase: {rest['requests']:,} requests in {rest['wall_s']:.0f} s")

        good_report = good.finish()
        # The fuzzers' sessions end (presence 2 s) and archive: let that happen in the run.
        settle = time.monotonic() + 15
        while time.monotonic() < settle:
            h = health(server)
            if h.get("sessions", {}).get("active", 1) == 0:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        final_metrics = metrics(server)
        final_health = health(server)
        alive = server.alive()
        result["ws"] = ws
        result["rest"] = rest
        result["well_behaved"] = good_report.as_dict()
        result["log"] = {
            "ws_phase": scan_log(server.log_path, mark0, mark1).as_dict(),
            "rest_phase": scan_log(server.log_path, mark1, mark2).as_dict(),
            "whole_run": scan_log(server.log_path).as_dict(),
        }
        result["archive_failures"] = final_metrics.get("tether_archive_failures_total", 0.0)
        result["health"] = final_health
        result["server_alive"] = alive
    return result


def rows(result: dict[str, Any]) -> list[Row]:
    """The figures as bench rows, each with its target."""
    ws, rest, log = result["ws"], result["rest"], result["log"]
    errors = ws.get("error_codes", {})
    ws_log = log["ws_phase"]
    rest_log = log["rest_phase"]
    whole = log["whole_run"]
    frames = max(1, ws.get("frames", 0))
    reqs = max(1, rest.get("requests", 0))
    zero = Target("<=", 0.0)

    def row(case: str, value: float, unit: str, target: Target | None = None) -> Row:
        return Row("fuzz", case, "tether", float(value), unit, target=target)

    good = result["well_behaved"]
    return [
        row(
            "WS hostile frames",
            ws.get("frames", 0),
            "frames",
            Target(">=", result["frames_target"]),
        ),
        row("WS frames/s", ws.get("frames_per_s", 0.0), "frames/s"),
        row("WS connections", ws.get("connections", 0), "conns"),
        row("WS error internal", errors.get("internal", 0), "frames", zero),
        row("WS abnormal closes", ws.get("abnormal_closes", 0), "closes", zero),
        row("WS stalled connections", ws.get("stalled", 0), "conns", zero),
        row(
            "WS log bytes/frame",
            ws_log["bytes"] / frames,
            "B",
            Target("<=", WS_LOG_BYTES_PER_FRAME),
        ),
        row(
            "REST requests",
            rest.get("requests", 0),
            "reqs",
            Target(">=", result["requests_target"]),
        ),
        row("REST requests/s", rest.get("requests_per_s", 0.0), "reqs/s"),
        row("REST 5xx", rest.get("five_xx", 0), "resps", zero),
        row(
            "REST log bytes/req",
            rest_log["bytes"] / reqs,
            "B",
            Target("<=", REST_LOG_BYTES_PER_REQUEST),
        ),
        row("log ERROR lines", whole["error_lines"], "lines", zero),
        row("log tracebacks", whole["tracebacks"], "tracebacks", zero),
        row("log tokens in clear", whole["secrets_in_clear"], "tokens", zero),
        row("log id-shaped hex in clear", whole["raw_id_like"], "strings"),
        row("archive failures", result["archive_failures"], "sessions", zero),
        row(
            "well-behaved undisturbed",
            1.0 if good["undisturbed"] else 0.0,
            "bool",
            Target(">=", 1.0),
        ),
        row("server alive", 1.0 if result["server_alive"] else 0.0, "bool", Target(">=", 1.0)),
    ]


def run(quick: bool) -> list[Row]:
    """For ``python -m bench fuzz``: the full run, or a small one with ``--quick``."""
    frames, requests = (20_000, 2_000) if quick else (1_000_000, 100_000)
    result = fuzz(frames, requests, _workers(), 1)
    table_rows = rows(result)
    write_json(
        table_rows, {"frames": frames, "requests": requests, "quick": quick}, RESULTS, result
    )
    return table_rows


def _workers() -> int:
    return max(2, min(4, os.cpu_count() or 2))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--frames", type=int, default=int(os.environ.get("FUZZ_FRAMES", 1_000_000)))
    parser.add_argument(
        "--requests", type=int, default=int(os.environ.get("FUZZ_REQUESTS", 100_000))
    )
    parser.add_argument("--workers", type=int, default=_workers())
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 1)))
    args = parser.parse_args()
    started = time.perf_counter()
    result = fuzz(args.frames, args.requests, args.workers, args.seed)
    table_rows = rows(result)
    meta = {
        "frames": args.frames,
        "requests": args.requests,
        "workers": args.workers,
        "seed": args.seed,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    path = write_json(table_rows, meta, RESULTS, result)
    print(table(table_rows))
    good = result["well_behaved"]
    print(f"\nWS close codes: {result['ws'].get('close_codes')}")
    print(f"WS error codes: {result['ws'].get('error_codes')}")
    print(f"REST status: {result['rest'].get('status')}")
    print(f"well-behaved: {json.dumps({k: v for k, v in good.items() if k != 'unexpected'})}")
    for message in result["log"]["whole_run"]["top_messages"][:6]:
        print(f"log x{message['count']}: {message['message']}")
    missed = sum(r.passed is False for r in table_rows)
    print(f"\n{missed} target(s) missed; wall time {meta['wall_s']:.0f} s; results in {path}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
