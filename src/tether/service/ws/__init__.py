"""``/ws``: one WebSocket connection, from ``hello`` to close.

The life of a connection:

1. The upgrade's ``Origin`` is checked (refused: close 1008).
2. ``hello {token, v}`` must come within ``TETHER_HELLO_TIMEOUT``; other
   frames before it get ``error hello_required``. A bad token closes 1008.
   The per-user connection limit is checked here (over it: close 4029).
3. ``welcome``, then commands: ``start``, ``resume``, ``observe`` attach the
   connection to one session; ``activity``, ``ping``, ``message``,
   ``config`` and ``end`` act on it.
4. The session's end closes the connection with the reason's code (the
   runtime does that through :class:`~tether.transports.WebSocketChannel`).

A bad frame gets an ``error`` frame and the connection stays. Only an
oversized frame (1009), a flood (``error rate_limited``, then 4029), and a
``resume``/``observe`` of an unknown or ended session (4404) close it.

* :mod:`~tether.service.ws.connection`: the handshake, ``hello``, frames in
  (with the size and rate limits) and errors out;
* :mod:`~tether.service.ws.peer`: the client as the commands see it (its
  caller, its session, its ``error`` frames);
* :mod:`~tether.service.ws.commands`: what each command frame does;
* :mod:`~tether.service.ws.attach`: ``start``, ``resume`` and ``observe``,
  which join the connection to a session;
* :mod:`~tether.service.ws.closes`: the close codes.
"""

from tether.service.ws.connection import Connection, websocket_endpoint

__all__ = ["Connection", "websocket_endpoint"]
