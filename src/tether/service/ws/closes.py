"""The close codes the server sends, and the signal that a connection is over."""

from __future__ import annotations

CLOSE_GOING_AWAY = 1001
"""``server_shutdown``: the client may reconnect and resume."""
CLOSE_POLICY = 1008
"""Bad token, no ``hello`` in time, or an ``Origin`` not allowed."""
CLOSE_TOO_LARGE = 1009
"""A frame over ``TETHER_MAX_MESSAGE_BYTES``."""
CLOSE_TRY_AGAIN_LATER = 1013
"""Too many connections not yet past ``hello`` (``TETHER_MAX_UNAUTHENTICATED``)."""
CLOSE_RATE_LIMITED = 4029
"""Over the frame rate, or too many connections for the user."""
CLOSE_UNKNOWN_SESSION = 4404
"""``resume``/``observe`` of an unknown, ended or someone else's session."""


class Closed(Exception):
    """The connection is over; unwind quietly."""
