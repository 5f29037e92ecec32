"""tether: the whole life of real-time conversational sessions.

Start with :class:`tether.runtime.SessionManager`; the pure rules live in
:mod:`tether.core`, storage behind :class:`tether.store.SessionStore`.
"""

from tether.core.policy import Policy
from tether.errors import TetherError
from tether.types import EndReason, SessionId, SessionState, UserId

__all__ = ["EndReason", "Policy", "SessionId", "SessionState", "TetherError", "UserId"]
__version__ = "0.1.0.dev0"
