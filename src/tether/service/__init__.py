"""The tether service: FastAPI app, REST, WebSocket and SSE edges, auth and limits.

* :func:`create_app` builds the whole service from :class:`Settings`;
* :func:`mount` serves tether from your own FastAPI app, composed like ``tether serve``;
* :class:`SessionActivityMiddleware` counts each signed-in HTTP request as
  activity of its user's session (HTTP-only apps);
* :func:`router` mounts the API over your own :class:`~tether.runtime.SessionManager`;
* :func:`load_settings` reads ``TETHER_*`` (and the seeds' aliases).
"""

from tether.service.activity import SessionActivityMiddleware, request_session
from tether.service.app import build_manager, create_app, router
from tether.service.auth import Principal, TokenAuthority
from tether.service.embed import Embedded, mount
from tether.service.prometheus import PrometheusSink
from tether.service.settings import Settings, load_settings

__all__ = [
    "Embedded",
    "Principal",
    "PrometheusSink",
    "SessionActivityMiddleware",
    "Settings",
    "TokenAuthority",
    "build_manager",
    "create_app",
    "load_settings",
    "mount",
    "request_session",
    "router",
]
