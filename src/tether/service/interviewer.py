"""The demo's scripted interviewer: no model, a fixed list of questions.

Only in demo mode (``TETHER_DEMO=1``), and only for sessions that ask for it
(kind ``interview`` with ``config.interviewer == "scripted"``, which the demo
page sends with ``start``). After each ``user`` message the interviewer
appends the next question as an ``assistant`` message through the manager,
so it is in the transcript, reaches every attached client and is archived
like anything else. The transcript starts empty: the candidate speaks first
("Hello"), and the first question answers that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tether.core.transcript import Message, Role
from tether.errors import TetherError
from tether.service.state import Service
from tether.types import SessionId

KIND = "interview"
MARKER = "scripted"
DEFAULT_JOB = "this"

QUESTIONS = (
    "Thanks for coming in. To start, tell me a little about yourself and why you "
    "want the {job} role.",
    "Tell me about a time something went wrong at work. What did you do?",
    "What is an accomplishment you are proud of, and what was your part in it?",
    "Describe a disagreement with a colleague. How did you resolve it?",
    "Where would you like to be in three years?",
    "Last one: do you have any questions for me?",
)
CLOSING = (
    "Thank you, that was the last question. The interview is over: press "
    '"Practice again" for a fresh one.'
)


def is_scripted(kind: str, config: dict[str, Any]) -> bool:
    """Whether a session with this kind and config gets the scripted interviewer."""
    return kind == KIND and config.get("interviewer") == MARKER


def reply_for(asked: int, config: dict[str, Any]) -> str | None:
    """What to say after the candidate's answer, ``asked`` questions in; ``None``: nothing."""
    if asked < len(QUESTIONS):
        job = config.get("job")
        job_text = job.strip()[:80] if isinstance(job, str) and job.strip() else DEFAULT_JOB
        return QUESTIONS[asked].format(job=job_text)
    if asked == len(QUESTIONS):
        return CLOSING
    return None


class ScriptedInterviewer:
    """Listens to the service's messages and answers candidates' ones in demo interviews."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._lock = asyncio.Lock()  # one reply at a time: no question asked twice

    def install(self) -> None:
        """Start listening (once)."""
        if self.on_message not in self.svc.message_listeners:
            self.svc.message_listeners.append(self.on_message)

    def on_message(self, session_id: SessionId, message: Message) -> None:
        """A message was appended; a candidate's answer gets a reply, in the background."""
        if message.role is Role.USER:
            self.svc.spawn(self.reply(session_id))

    async def reply(self, session_id: SessionId) -> None:
        """Append the next question (or the closing words), if this is a scripted interview."""
        async with self._lock:
            manager = self.svc.manager
            with contextlib.suppress(TetherError):  # ended or gone meanwhile: nothing to say
                info = await manager.get(session_id)
                if info.end_reason is not None or not is_scripted(info.kind, info.config):
                    return
                messages = await manager.transcript(session_id)
                asked = sum(1 for m in messages if m.role is Role.ASSISTANT)
                text = reply_for(asked, info.config)
                if text is not None:
                    await self.svc.append(session_id, Role.ASSISTANT.value, text)
