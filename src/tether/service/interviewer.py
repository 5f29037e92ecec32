"""The demo's scripted interviewer: no model, a fixed list of questions.

Only in demo mode (``TETHER_DEMO=1``), and only for sessions that ask for it
(kind ``interview`` with ``config.interviewer == "scripted"``, which the demo
page sends with ``start``). An ``on_message`` hook of the manager: after each
``user`` message the interviewer appends the next question as an
``assistant`` message, so it is in the transcript, reaches every attached
client and is archived like anything else. The transcript starts empty: the candidate speaks first
("Hello"), and the first question answers that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tether.core.session import SessionInfo
from tether.core.transcript import Message, Role
from tether.errors import TetherError
from tether.runtime.manager import SessionManager
from tether.service.state import Service

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
    """Answers candidates' messages in demo interviews (an ``on_message`` hook)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._lock = asyncio.Lock()  # one reply at a time: no question asked twice
        self._installed: set[int] = set()

    def install(self) -> None:
        """Register the hook on the service's manager (once per manager)."""
        self.svc.when_bound(self._register)

    def _register(self, manager: SessionManager) -> None:
        if id(manager) not in self._installed:
            self._installed.add(id(manager))
            manager.on_message(self.on_message)

    async def on_message(self, session: SessionInfo, message: Message) -> None:
        """A candidate's message: append the next question, if this is a scripted interview."""
        if not is_scripted(session.kind, session.config):
            return
        async with self._lock:
            manager = self.svc.manager
            with contextlib.suppress(TetherError):  # ended or gone meanwhile: nothing to say
                messages = await manager.transcript(session.id)
                asked = sum(1 for m in messages if m.role is Role.ASSISTANT)
                text = reply_for(asked, session.config)
                if text is not None:
                    await manager.append(session.id, Role.ASSISTANT.value, text)
