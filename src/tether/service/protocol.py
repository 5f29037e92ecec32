"""Read timeouts for ``tether serve``: uvicorn's h11 protocol with a clock on every read.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``).
A client that sends its headers or body one byte at a time (slowloris) is
never timed out, and each such connection holds a descriptor and buffers.
:func:`timed_protocol` makes a subclass of uvicorn's ``H11Protocol`` that:

* gives every request ``header_timeout`` for its whole header block, counted
  from the connection's first moment (or, on a kept-alive connection, from
  the first byte of the next request);
* gives its body ``body_timeout`` once the headers are in;
* answers ``408`` (``request_timeout``) and closes when either runs out; if
  the app has already begun its answer, it only closes;
* counts a new connection in the server's :class:`~tether.service.admission.Admission`
  until its first header block is complete (a WebSocket then counts again,
  in the endpoint, until ``hello``), and refuses one past the limit with
  ``503`` at once.

The timers are the event loop's own (``call_later``), one per connection
and only while a read is outstanding. The subclass relies on documented
attributes of uvicorn's h11 protocol (``cycle``, ``transport``) and on its
hooks ``data_received``, ``on_response_complete``,
``handle_websocket_upgrade`` and ``connection_lost``; a test with raw
sockets pins the behaviour (tests/service/test_service_read_timeouts.py).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tether.service.admission import RETRY_AFTER_S, Admission

log = logging.getLogger("tether.service")


class _Phase(enum.Enum):
    IDLE = "idle"  # no read outstanding: between requests, or the app is answering
    HEADERS = "headers"
    BODY = "body"


def _answer(status: int, reason: str, code: str, message: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, in tether's error shape."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


REQUEST_TIMEOUT = _answer(
    408, "Request Timeout", "request_timeout", "the request did not arrive in time"
)
BUSY = _answer(
    503,
    "Service Unavailable",
    "too_many_unauthenticated",
    "too many connections are waiting to be served; retry shortly",
    f"retry-after: {RETRY_AFTER_S}",
)


# Long: the body is one class (uvicorn's protocol with its overrides), bound per call.
def timed_protocol(
    admission: Admission, *, header_timeout: float, body_timeout: float
) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass bound to ``admission`` and these timeouts (``Config(http=)``)."""

    class TimedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with header and body read timeouts and admission."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._phase = _Phase.IDLE
            self._timer: asyncio.TimerHandle | None = None
            self._counted = False
            self._request: object = None  # the cycle whose headers were last completed

        # -- uvicorn's hooks -------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not admission.enter():
                transport.write(BUSY)
                transport.close()
                return
            self._counted = True
            self._arm(_Phase.HEADERS, header_timeout)

        def data_received(self, data: bytes) -> None:
            if self._phase is _Phase.IDLE and (self.cycle is None or self.cycle.response_complete):
                self._arm(_Phase.HEADERS, header_timeout)  # the next request begins
            super().data_received(data)
            self._advance()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._advance()  # it may have parsed a pipelined request

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._disarm()
            self._release()  # the endpoint counts it again until hello
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._release()
            super().connection_lost(exc)

        # -- the clock ---------------------------------------------------------------

        def _advance(self) -> None:
            """Move to the next phase when a read completed."""
            cycle = self.cycle
            if cycle is not None and cycle is not self._request:
                # A new request's headers are complete (a pipelined one may
                # have been parsed while the clock was idle: time its body too).
                self._request = cycle
                self._release()
                if cycle.more_body:
                    self._arm(_Phase.BODY, body_timeout)
                else:
                    self._disarm()
            elif self._phase is _Phase.BODY and cycle is not None and not cycle.more_body:
                self._disarm()

        def _arm(self, phase: _Phase, timeout: float) -> None:
            self._disarm()
            self._phase = phase
            self._timer = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            self._phase = _Phase.IDLE
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _release(self) -> None:
            if self._counted:
                self._counted = False
                admission.leave()

        def _expired(self) -> None:
            phase, self._timer = self._phase, None
            self._phase = _Phase.IDLE
            transport = self.transport
            if transport.is_closing():
                return
            cycle = self.cycle if phase is _Phase.BODY else None
            if cycle is None or not cycle.response_started:
                transport.write(REQUEST_TIMEOUT)
            if cycle is not None:
                # The app may still be waiting for the body: it sees a disconnect,
                # and nothing it sends reaches the socket after the 408.
                cycle.disconnected = True
                cycle.message_event.set()
            log.debug("request %s not received in time; closing", phase.value)
            transport.close()

    return TimedH11Protocol
