"""A phone call plus an observer: Twilio streams the call, a browser watches it live.

Run it::

    TETHER_SECRET=change-me uvicorn examples.voice_call:app --port 8000

Point Twilio's ``<Connect><Stream url="wss://YOUR-HOST/twilio/media">`` at it with a
``<Parameter name="token" value="..."/>`` minted by ``tether token alice`` (and any
other parameters: they become the session's config, ``job`` here). The browser of
the same user opens ``/ws``, sends ``hello`` then ``observe {user: "me"}``, and
sees ``call.status_changed {status: "in-progress"}``, the transcript as it grows,
``call.status_changed {status: "ended"}`` and ``session.ended``. A silent caller is
warned (a beep on the line) and ended ``idle_timeout``; hanging up ends
``client_ended``. docs/phone-calls.md has the details.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether.core.session import SessionInfo
from tether.service import mount
from tether.service.twilio.audio import tone
from tether.service.twilio.calls import CallStream


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside tether's lifespan: the manager is open here."""

    @tether.manager.on_warning
    async def warn_on_the_line(session: SessionInfo) -> None:
        """The idle warning, said on the phone (a beep) as well as sent to observers."""
        call = tether.calls.get(session.id)
        if call is not None and not call.closed:
            await call.send_audio(tone(880, 0.3))

    yield


app = FastAPI(title="practice calls", lifespan=lifespan)
tether = mount(app)  # /twilio/media, /ws, /api/v1/..., /health


@tether.calls.on_start
async def greet(call: CallStream) -> None:
    """Once per call: say hello on the line and in the transcript the observer watches."""
    job = call.parameters.get("job", "this")
    line = f"Hello! Let's practise your interview for the {job} role."
    await tether.manager.append(call.session_id, "assistant", line)
    await call.send_audio(tone(440, 0.2))  # a real app sends text-to-speech of `line`
    await call.mark("greeting")
