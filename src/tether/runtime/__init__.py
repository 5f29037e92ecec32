"""The asyncio runtime: :class:`SessionManager` and the pieces it drives."""

from tether.runtime.bus import EventBus, LocalBus
from tether.runtime.channel import Channel
from tether.runtime.manager import ManagerMetrics, SessionManager

__all__ = ["Channel", "EventBus", "LocalBus", "ManagerMetrics", "SessionManager"]
