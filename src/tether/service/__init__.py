"""The tether service: FastAPI app, REST, WebSocket and SSE edges, auth and limits.

* :func:`create_app` builds the whole service from :class:`Settings`;
* :func:`mount` serves tether from your own FastAPI app, composed like ``tether serve``;
* :func:`router` mounts the API over your own :class:`~tether.runtime.SessionManager`;
* :func:`load_settings` reads ``TETHER_*`` (and the seeds' aliases).
"""

from tether.service.app import build_manager, create_app, router
from tether.service.auth import Principal, TokenAuthority
from tether.service.embed import Embedded, mount
from tether.service.prometheus import PrometheusSink
from tether.service.settings import Settings, load_settings

__all__ = [
    "Embedded",
    "Principal",
    "PrometheusSink",
    "Settings",
    "TokenAuthority",
    "build_manager",
    "create_app",
    "load_settings",
    "mount",
    "router",
]
