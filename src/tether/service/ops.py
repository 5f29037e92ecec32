"""Operations endpoints: ``/health``, ``/ready`` and ``/metrics``.

``/health`` answers as long as the process does (the seeds' shape plus the
store's state; ``sessions`` is null while the store does not answer, and
``store.fallback`` is true when Redis was unreachable at start-up and
``TETHER_REDIS_FALLBACK=memory`` put the node on the memory store; on Redis,
``store`` also says whether the store ever came back without its data:
``epoch``, ``losses``, ``lost_at``, ``sessions_lost``);
``/ready`` is what a load balancer should watch: 503 (with ``Retry-After``)
while the store does not answer or the server is draining.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from tether.errors import StoreUnavailable, TetherError
from tether.service.deps import api_router
from tether.service.errors import STORE_RETRY_AFTER_S
from tether.service.prometheus import CONTENT_TYPE, Snapshot
from tether.service.responses import ErrorBody, answers, error_responses
from tether.service.schemas import Health, Ready
from tether.service.state import Service


async def _store_ok(svc: Service) -> bool:
    try:
        await svc.manager.store.ping()
    except TetherError:
        return False
    return True


def _store_kind(svc: Service) -> str:
    name = type(svc.manager.store).__name__
    return name.removesuffix("Store").lower() or name


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# Long: one short nested function per route (FastAPI reads them from this closure).
def build(svc: Service) -> APIRouter:
    """``/health``, ``/ready`` and ``/metrics`` of one service."""
    r = api_router(svc, "operations", prefix="")

    @r.get(
        "/health",
        summary="Liveness, session counts and store state",
        **answers(Health, "The process runs", 503, authenticated=False),
    )
    async def health() -> dict[str, Any]:
        ok = await _store_ok(svc)
        sessions: dict[str, Any] | None = None
        if ok:
            try:
                m = await svc.manager.metrics()
            except StoreUnavailable:
                ok = False  # went away between the two calls
            else:
                sessions = {
                    "active": m.active,
                    "total_created": m.total_created,
                    "total_ended": m.total_ended,
                    "oldest_age_s": _rounded(m.oldest_age_s),
                    "newest_age_s": _rounded(m.newest_age_s),
                }
        status = "draining" if svc.draining else ("ok" if ok else "degraded")
        store: dict[str, Any] = {
            "kind": _store_kind(svc),
            "status": "ok" if ok else "unavailable",
            "fallback": svc.store_fallback,
        }
        if svc.manager.store_epoch is not None:
            store.update(svc.manager.store_epoch.report())
        return {
            "status": status,
            "sessions": sessions,
            "store": store,
            "uptime_s": round(time.monotonic() - svc.started_at, 3),
        }

    ready_answers = answers(Ready, "Serving", authenticated=False)
    ready_answers["responses"][503] = {
        "model": ErrorBody,
        "description": "Not serving: starting, draining, or the store does not answer",
    }

    @r.get(
        "/ready",
        summary="200 when the store answers and the server is not draining",
        **ready_answers,
    )
    async def ready() -> Response:
        if svc.draining or not svc.bound:
            return JSONResponse(
                {"error": {"code": "unavailable", "message": "not serving"}}, status_code=503
            )
        if not await _store_ok(svc):
            return JSONResponse(
                {"error": {"code": "store_unavailable", "message": "the store does not answer"}},
                status_code=503,
                headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
            )
        return JSONResponse({"status": "ready"})

    @r.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        response_model=None,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses(503),
        },
    )
    async def metrics() -> Response:
        snapshot = Snapshot(
            manager=await svc.manager.metrics(),
            warning=len(svc.watch.warning),
            websocket_connections=len(svc.websockets),
            sse_connections=svc.sse_streams,
        )
        return Response(svc.metrics.render(snapshot), media_type=CONTENT_TYPE)

    return r
