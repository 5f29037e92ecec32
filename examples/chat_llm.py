"""Chat with streamed LLM replies: each user message answered token by token.

Run it (any OpenAI-compatible endpoint; here the fake one from bench/)::

    python -m bench.fake_llm --port 8001 &
    TETHER_SECRET=change-me LLM_BASE_URL=http://127.0.0.1:8001/v1 LLM_MODEL=echo \\
        uvicorn examples.chat_llm:app --port 8000

A client (tether.js, or any WebSocket client on ``/ws``) sends ``message {role:
"user", content}`` and gets ``reply.delta`` frames as the tokens come, then one
``transcript.message`` with the whole answer. An end or a barge-in cancels the
HTTP request to the model; the partial answer is stored ``partial: true``.

(Setting ``TETHER_LLM_BASE_URL`` and ``TETHER_LLM_MODEL`` with a bare ``mount(app)``
does the same with no code; this file shows the Python API, for an app that
picks its own client or prompt.)
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether.integrations.openai import ChatClient, Responder
from tether.service import mount

SYSTEM_PROMPT = "You are a friendly tutor. Answer in two sentences at most."


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside tether's lifespan: the manager is open here."""
    client = ChatClient(
        os.environ["LLM_BASE_URL"],
        os.environ.get("LLM_MODEL", "gpt-4o-mini"),
        api_key=os.environ.get("LLM_API_KEY"),
    )
    Responder(tether.manager, client, system_prompt=SYSTEM_PROMPT).install()
    try:
        yield
    finally:
        await tether.drain()  # end the sessions first: their replies are cancelled...
        await client.aclose()  # ...then close the model's connection pool


app = FastAPI(title="chat with an LLM", lifespan=lifespan)
tether = mount(app)  # /ws, /api/v1/..., /health
