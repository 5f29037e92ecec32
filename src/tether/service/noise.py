"""Client-caused noise kept out of the log, and counted instead.

A hostile or careless client must not be able to buy log lines: 60 s of
fuzzing once wrote 8 MB, because each bad frame bought a traceback. Two
library messages are caused only by clients, so :class:`NoiseFilter` drops
them (a one-line debug record remains) and counts each in
``tether_client_errors_total{transport, code}``:

* uvicorn's ``Invalid UTF-8 sequence received from client`` (with a
  traceback, at ERROR), for a text frame that is not UTF-8 (the connection
  closes 1007; ``code="invalid_utf8"``);
* asyncio's ``socket.send() raised exception.`` warning, repeated for every
  write to a client that already hung up (``code="write_after_close"``).

The filter is process-wide (it sits on the ``uvicorn.error`` and ``asyncio``
loggers); the sink of the app installed last does the counting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("tether.service")

CLIENT_NOISE: tuple[tuple[str, str, str], ...] = (
    ("Invalid UTF-8 sequence received from client", "websocket", "invalid_utf8"),
    ("socket.send() raised exception", "transport", "write_after_close"),
)
"""(message prefix, transport label, code label) of each message that only a client causes."""


class NoiseFilter(logging.Filter):
    """Drops :data:`CLIENT_NOISE` records after counting them with ``count(transport, code)``."""

    def __init__(self, count: Callable[[str, str], None]) -> None:
        super().__init__()
        self.count = count

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str):
            return True
        for prefix, transport, code in CLIENT_NOISE:
            if message.startswith(prefix):
                self.count(transport, code)
                log.debug("client error (%s): %s", code, prefix)
                return False
        return True


def install_noise_filter(count: Callable[[str, str], None]) -> None:
    """Put one :class:`NoiseFilter` counting with ``count`` on the noisy loggers (replacing any)."""
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, NoiseFilter)]:
            logger.removeFilter(old)
        logger.addFilter(NoiseFilter(count))
