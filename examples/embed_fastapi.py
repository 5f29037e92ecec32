"""tether inside your own FastAPI app: ``TETHER_SECRET=... uvicorn examples.embed_fastapi:app``.

``mount`` composes tether exactly as ``tether serve`` does: settings from
``TETHER_*`` (timeouts, store, data dir), the transcript journal and YAML
archives under ``TETHER_DATA_DIR``, Prometheus counters at ``/metrics``, and
the shutdown order clients need: on SIGTERM each client gets ``session.ended
{reason: "server_shutdown"}`` and close 1001 before uvicorn closes sockets.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tether.core.session import SessionInfo
from tether.service import mount


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's own lifespan runs inside tether's: the manager is open here."""

    @tether.manager.on_ended
    async def ended(session: SessionInfo) -> None:
        print("session", session.kind, "of", session.user, "ended:", session.end_reason)

    yield


app = FastAPI(title="my app", lifespan=lifespan)
tether = mount(app)  # /ws, /api/v1/..., /health, /ready, /metrics, /dashboard


@app.get("/whoami")
async def whoami() -> dict[str, Any]:
    """A route of the app itself, next to tether's."""
    return {"app": "mine", "idle_timeout_s": tether.settings.idle_timeout}
