"""The demo's scripted interviewer: no model, a fixed list of questions.

Only in demo mode (``TETHER_DEMO=1``) with no LLM configured
(``TETHER_LLM_BASE_URL`` unset: then the LLM answers instead), and only for
sessions that ask for it (kind ``interview`` with ``config.interviewer ==
"scripted"``, which the demo page sends with ``start``). It is a
:class:`~tether.integrations.openai.PieceSource`: the same
:class:`~tether.integrations.openai.Responder` that streams an LLM's answer
streams its next question, word by word with a short pause, so the page sees
``reply.delta`` frames build the question up exactly as it would a model's,
then one ``assistant`` message in the transcript (archived like anything
else). The transcript starts empty: the candidate speaks first ("Hello"), and
the first question answers that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tether.core.session import SessionInfo
from tether.core.transcript import Message, Role

KIND = "interview"
MARKER = "scripted"
DEFAULT_JOB = "this"
WORD_DELAY = 0.04
"""Seconds between the words of a question: the pace of a model's tokens, so the page
shows the question building up (and barge-in has something to cut)."""

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
    """The next question of a scripted demo interview, as a stream of words."""

    def __init__(self, delay: float | None = None) -> None:
        self.delay = WORD_DELAY if delay is None else delay

    def pieces(
        self, session: SessionInfo, transcript: Sequence[Message]
    ) -> AsyncIterator[str] | None:
        """The question after the candidate's answer; ``None`` outside scripted
        interviews and once the closing line is said."""
        if not is_scripted(session.kind, session.config):
            return None
        # A question cut short by a barge-in was still asked: it counts.
        asked = sum(1 for m in transcript if m.role is Role.ASSISTANT)
        text = reply_for(asked, session.config)
        return None if text is None else self._words(text)

    async def _words(self, text: str) -> AsyncIterator[str]:
        words = text.split(" ")
        for n, word in enumerate(words):
            if n:
                await asyncio.sleep(self.delay)
            yield word if n == len(words) - 1 else word + " "
