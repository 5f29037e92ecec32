"""Log hygiene: no session id and no token ever reaches a log line.

Tether's own code logs :func:`~tether.core.ids.log_ref` hashes. The access
log of the web server is another matter: paths carry session ids
(``/api/v1/sessions/{id}/heartbeat``) and the event stream may carry a token
in its query. :class:`RedactFilter` rewrites both before they are written.
"""

from __future__ import annotations

import logging
import re

from tether.core.ids import log_ref

_SESSION_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_TOKEN = re.compile(r"((?:^|[?&])token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with tokens removed and session ids replaced by their log refs."""
    text = _TOKEN.sub(r"\1[redacted]", text)
    text = _BEARER.sub(r"\1[redacted]", text)
    return _SESSION_ID.sub(lambda m: "sid:" + log_ref(m.group()), text)


class RedactFilter(logging.Filter):
    """Applies :func:`redact` to a record's message and its string arguments.

    Arguments are rewritten one by one rather than folded into the message,
    because uvicorn's access formatter unpacks them by position.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_redaction(*names: str) -> None:
    """Add one :class:`RedactFilter` to each named logger (idempotent)."""
    for name in names or ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter())
