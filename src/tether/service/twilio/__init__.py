"""Phone calls: Twilio Media Streams bridged to tether sessions at ``WS /twilio/media``.

* :mod:`~tether.service.twilio.messages`: Twilio's messages, parsed and built (sans-I/O);
* :mod:`~tether.service.twilio.audio`: G.711 mu-law and the speech energy gate (sans-I/O);
* :mod:`~tether.service.twilio.stream`: :class:`CallStream`, the app's handle on a call;
* :mod:`~tether.service.twilio.calls`: :class:`Calls`, a service's calls by session;
* :mod:`~tether.service.twilio.bridge`: the endpoint, from ``connected`` to close.

It lives in the service layer because a stream authenticates with the
service's bearer tokens and joins sessions under its ownership rules.
See ``docs/phone-calls.md``.
"""

# The endpoint (``bridge``) is not imported here: it needs ``tether.service.state``,
# which imports ``calls`` from this package.
from tether.service.twilio.calls import Calls
from tether.service.twilio.stream import CallStream

__all__ = ["CallStream", "Calls"]
