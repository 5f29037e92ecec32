"""The WebSocket ``Origin`` check: the defence against cross-site WebSocket hijacking.

Browsers always send ``Origin`` on a WebSocket upgrade and a page cannot
forge it; other clients (servers, CLIs) usually send none and are not
exposed to the attack, so a missing ``Origin`` is accepted. A present one
must match the allowlist exactly, or, with no allowlist, the server's own
origin (the ``Host`` the upgrade was addressed to).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether an upgrade carrying ``origin`` (addressed to ``host``) may proceed."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    if allowed:
        return origin in allowed
    if not host:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return _same_host(parts.netloc, host, parts.scheme)


def _same_host(netloc: str, host: str, scheme: str) -> bool:
    # Compare with default ports made explicit: "example.com" and
    # "example.com:443" are the same origin for https.
    default = "443" if scheme == "https" else "80"
    return _with_port(netloc.lower(), default) == _with_port(host.strip().lower(), default)


def _with_port(netloc: str, default: str) -> str:
    if netloc.startswith("["):  # IPv6 literal
        end = netloc.find("]")
        return netloc if netloc[end + 1 :].startswith(":") else f"{netloc}:{default}"
    return netloc if ":" in netloc else f"{netloc}:{default}"
