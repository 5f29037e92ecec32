"""The asyncio runtime: :class:`SessionManager` and the pieces it drives."""

from tether.runtime.channel import Channel
from tether.runtime.manager import ManagerMetrics, SessionManager

__all__ = ["Channel", "ManagerMetrics", "SessionManager"]
