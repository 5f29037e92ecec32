"""Log hygiene: no session id and no token ever reaches a log line.

Tether's own code logs :func:`~tether.core.ids.log_ref` hashes. The access
log of the web server is another matter: paths carry session ids
(``/api/v1/sessions/{id}/heartbeat``) and the event streams may carry a
token in their query. :class:`RedactFilter` rewrites both before they are
written, by what the *server* reads, not by how the client spelled it:

* the query is split and percent-decoded exactly as Starlette parses it
  (:func:`urllib.parse.parse_qsl` rules: ``&`` separates, ``+`` is a space,
  ``%74oken`` is ``token``), and the value of every parameter whose decoded
  name, in any case, looks like a credential (contains ``token``, ``key``,
  ``secret``, ``password`` or ``auth``) is replaced by ``[redacted]``;
* the path is percent-decoded as the router sees it, and whatever sits in
  a session id slot (the segment after ``sessions``, other than the literal
  ``cleanup``) becomes ``sid:`` plus its log ref, whatever it looks like
  (uppercase, too long, not hex at all).

Free text gets the same treatment for anything shaped like a path, and
``Bearer`` credentials and 32-hex-digit ids (any case) are redacted too.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote

from tether.core.ids import log_ref

_SESSION_ID = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32}(?![0-9a-fA-F])")
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_PATHLIKE = re.compile(r"(?<![\w%])/[^\s\"']*")
_CREDENTIAL = re.compile(r"token|key|secret|password|auth", re.IGNORECASE)
_ID_PARAMS = frozenset(("session_id", "sid", "id"))
_ID_SLOT_AFTER = "sessions"
_LITERAL_SIBLINGS = frozenset(("cleanup",))
"""Routes next to ``/sessions/{id}`` whose segment is a fixed word, not an id."""
REDACTED = "[redacted]"


def _sid(raw: str) -> str:
    return "sid:" + log_ref(raw)


def redact_target(target: str) -> str:
    """A request target (path and query, as an access log writes it) with secrets replaced.

    Unchanged (byte for byte) when it carries nothing to redact.
    """
    path, sep, query = target.partition("?")
    return _redact_path(path) + sep + (_redact_query(query) if sep else "")


def _redact_path(path: str) -> str:
    decoded = unquote(path).split("/")  # what the router matches against
    changed = False
    for i in range(1, len(decoded)):
        if decoded[i - 1] == _ID_SLOT_AFTER and decoded[i] not in _LITERAL_SIBLINGS:
            decoded[i] = _sid(decoded[i])
            changed = True
    if not changed:
        return path
    return quote("/".join(decoded), safe="/:@!$&'()*+,;=~")


def _redact_query(query: str) -> str:
    parts = query.split("&")  # the separator parse_qsl uses
    changed = False
    for i, part in enumerate(parts):
        if not part:
            continue
        raw_name, eq, raw_value = part.partition("=")
        name = unquote(raw_name.replace("+", " ")).strip().lower()
        if _CREDENTIAL.search(name):
            parts[i] = raw_name + "=" + REDACTED
            changed = True
        elif eq and name in _ID_PARAMS:
            parts[i] = raw_name + "=" + _sid(unquote(raw_value.replace("+", " ")))
            changed = True
    return "&".join(parts) if changed else query


def redact(text: str) -> str:
    """``text`` with tokens removed and session ids replaced by their log refs."""
    text = _PATHLIKE.sub(lambda m: redact_target(m.group()), text)
    text = _BEARER.sub(r"\1" + REDACTED, text)
    return _SESSION_ID.sub(lambda m: _sid(m.group()), text)


def _redact_plain(text: str) -> str:
    """:func:`redact` for a format string: leaves ``%`` sequences and paths alone."""
    text = _BEARER.sub(r"\1" + REDACTED, text)
    return _SESSION_ID.sub(lambda m: _sid(m.group()), text)


class RedactFilter(logging.Filter):
    """Applies :func:`redact` to a record's message and its string arguments.

    Arguments are rewritten one by one rather than folded into the message,
    because uvicorn's access formatter unpacks them by position. A message
    with arguments is a format string, so only its plain patterns are
    rewritten (a path rewrite could re-quote a ``%s``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact_plain(record.msg) if record.args else redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_redaction(*names: str) -> None:
    """Add one :class:`RedactFilter` to each named logger (idempotent)."""
    for name in names or ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter())
