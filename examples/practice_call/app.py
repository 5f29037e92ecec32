"""Seed 001, a practice phone call: the caller talks to an LLM interviewer, a browser watches.

Run it (the fake LLM stands in for a real endpoint)::

    export TETHER_SECRET=$(openssl rand -hex 32)
    python -m bench.fake_llm --port 8400 &
    TETHER_LLM_BASE_URL=http://127.0.0.1:8400/v1 TETHER_LLM_MODEL=echo:0.05 \\
    uvicorn --factory examples.practice_call.app:create --port 8000

then open ``http://127.0.0.1:8000/practice#token=TOKEN`` (``tether token alice``),
describe the job and press "Wait for my call". Point Twilio's
``<Connect><Stream url="wss://.../twilio/media">`` at the same server with
``<Parameter name="token" value="TOKEN"/>`` (docs/phone-calls.md).

What each part does:

* the Twilio bridge (``/twilio/media``) starts a ``call`` session for the
  token's user when the call connects;
* the page observes "my next session" (``observe {user: "me"}``), so it
  attaches when the call starts, and sends the job configuration as the
  session's ``config`` (the owner's observer may);
* :class:`Briefing`, an ``on_config`` hook, turns that job into the
  interviewer's system prompt and stores it as ``config.system_prompt``,
  which the built-in OpenAI-compatible responder (``TETHER_LLM_*``) uses for
  every reply from then on, then tells the page with an ``app`` event;
* what the caller says reaches the transcript as ``user`` messages appended
  with ``manager.append``: the bridge has no speech-to-text, so that is the
  job of the app's STT (the tests append the caller's words themselves);
  the responder answers each one with a streamed reply the page draws as
  it builds up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from tether.core.session import SessionInfo
from tether.runtime.manager import SessionManager
from tether.service import Settings, create_app
from tether.service.app import build_manager
from tether.service.pages import PAGE_CSP
from tether.service.settings import load_settings

HERE = Path(__file__).resolve().parent
JOB_FIELDS = ("title", "company", "focus")
"""What the page may say about the job; each a short text, ``title`` required."""
MAX_FIELD = 200
BRIEFED = "practice.briefed"
"""The ``app`` event the page gets once the interviewer knows the job."""
INVALID_JOB = "invalid_job"


class Briefing:
    """Turns ``config.job`` into the interviewer's ``config.system_prompt`` (an ``on_config`` hook).

    The prompt is stored in the session's config rather than kept aside, so
    the responder (which reads ``config.system_prompt`` for each reply), the
    transcript journal and the archive all see what the model was told.
    """

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def install(self) -> None:
        """Brief the interviewer whenever a session's config changes."""
        self.manager.on_config(self.brief)

    async def brief(self, session: SessionInfo, config: dict[str, Any]) -> None:
        """Store the prompt for ``config["job"]``, or tell the page once it is stored."""
        if "job" not in config:
            return
        job = job_of(config["job"])
        if job is None:
            await self.manager.send_error(
                session.id,
                INVALID_JOB,
                f"config.job must be an object with a non-empty title; fields {JOB_FIELDS}, "
                f"each text of at most {MAX_FIELD} characters",
            )
            return
        prompt = interviewer_prompt(job)
        if config.get("system_prompt") != prompt:
            # Storing the prompt changes the config again: this hook runs once more
            # and, finding the prompt in place, tells the page.
            await self.manager.update_config(session.id, {**config, "system_prompt": prompt})
            return
        await self.manager.send_app(session.id, BRIEFED, dict(job))


def job_of(value: object) -> dict[str, str] | None:
    """The job's known fields, or ``None`` when ``value`` is not a usable job."""
    if not isinstance(value, Mapping):
        return None
    job: dict[str, str] = {}
    for name in JOB_FIELDS:
        field = value.get(name)
        if field is None:
            continue
        if not isinstance(field, str) or len(field) > MAX_FIELD:
            return None
        if field.strip():
            job[name] = field.strip()
    return job if "title" in job else None


def interviewer_prompt(job: Mapping[str, str]) -> str:
    """The system message for a practice interview for ``job``."""
    role = job["title"] + (f" at {job['company']}" if "company" in job else "")
    focus = f" Focus on {job['focus']}." if "focus" in job else ""
    return (
        f"You are a friendly interviewer on a practice phone call for the role of {role}."
        f"{focus} Ask one short question at a time and give brief feedback on each answer."
    )


def _asset(name: str, media_type: str) -> Response:
    return Response(
        (HERE / name).read_bytes(),
        media_type=media_type,
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
    )


def add_page(app: FastAPI) -> None:
    """Serve the practice page at ``/practice`` (its script at ``/practice.js``)."""

    @app.get("/practice", include_in_schema=False)
    async def practice_page() -> Response:
        return _asset("practice.html", "text/html; charset=utf-8")

    @app.get("/practice.js", include_in_schema=False)
    async def practice_script() -> Response:
        return _asset("practice.js", "text/javascript; charset=utf-8")


def build(settings: Settings, manager: SessionManager) -> FastAPI:
    """The tether service on ``manager`` with the briefing hook and the practice page."""
    app = create_app(settings, manager=manager)
    Briefing(manager).install()
    add_page(app)
    return app


def create() -> FastAPI:
    """The app from ``TETHER_*`` settings (``uvicorn --factory``)."""
    settings = load_settings()
    manager = build_manager(settings)  # the store, journal and archive TETHER_* name
    app = build(settings, manager)
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serve(app):
            yield
        await manager.aclose()  # a given manager is its owner's to close

    app.router.lifespan_context = lifespan
    return app
