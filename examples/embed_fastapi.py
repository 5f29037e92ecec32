"""tether inside your own FastAPI app: ``TETHER_SECRET=... uvicorn examples.embed_fastapi:app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether import Policy
from tether.runtime import SessionManager
from tether.service import router

manager = SessionManager(policy=Policy(idle_timeout=300, warn_before=60))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with manager:  # on the way out, every session ends with server_shutdown
        yield


app = FastAPI(lifespan=lifespan)
app.include_router(router(manager))  # /ws, /api/v1/sessions/..., settings from TETHER_*
