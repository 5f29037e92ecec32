"""What browsers load: the client under ``/static/``, the demo page and the dashboard.

* ``/static/tether.js`` (with the modules it imports under ``/static/tether/``,
  ``tether.d.ts`` and ``tether-dialog.css``): the browser client, always
  served, so an app on another origin can load it from the server it talks to;
* ``/`` and ``POST /api/v1/demo/token`` (``TETHER_DEMO=1`` only): the
  interview-practice demo and the throwaway tokens it runs on (who answers
  is :mod:`tether.service.llm`'s choice: the LLM, or the scripted interviewer);
* ``/dashboard``: the admin dashboard. The page itself holds nothing
  secret; every call it makes needs the admin token.

Assets are read once, when the router is built, and sent with an ``ETag``
and ``Cache-Control: no-cache``: their URLs carry no version, so a browser
revalidates them on every load (a 304 when nothing changed) and never runs
an old client against a newer server. Pages get a Content-Security-Policy
that allows nothing but this origin: no inline script or style at all.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tether.service.deps import api_router
from tether.service.responses import answers
from tether.service.schemas import DemoToken
from tether.service.state import Service

STATIC = Path(__file__).with_name("static")
DEMO_TOKEN_TTL = 3600.0

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".ts": "application/typescript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}

CLIENT_MODULES = tuple(
    f"tether/{name}.js"
    for name in (
        "activity",
        "defaults",
        "dialog",
        "drivers",
        "holdings",
        "protocol",
        "protocol-conversation",
        "protocol-sse",
        "protocol-ws",
        "session",
        "states",
        "timing",
        "urls",
        "wire",
    )
)
"""The modules the entry tether.js imports (native ES modules, no build step)."""
CLIENT_ASSETS = ("tether.js", *CLIENT_MODULES, "tether.d.ts", "tether-dialog.css")
"""The browser client: served whatever the mode."""
DEMO_ASSETS = ("demo.js",)
DASHBOARD_ASSETS = ("dashboard.js", "dashboard/charts.js", "dashboard/archives.js")
PAGE_ASSETS = ("pages.css",)

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""Pages load their scripts and styles from this origin only (``connect-src 'self'``
covers the same-origin WebSocket), and nobody may frame them."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file, ready to send."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def load(cls, name: str) -> Asset:
        body = (STATIC / name).read_bytes()
        suffix = ".ts" if name.endswith(".d.ts") else Path(name).suffix
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return cls(body, MEDIA_TYPES[suffix], etag)

    def response(self, request: Request, *, page: bool = False) -> Response:
        """The file, or 304 when the browser's copy is current."""
        headers = {
            "ETag": self.etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if page:
            headers["Content-Security-Policy"] = PAGE_CSP
            headers["Referrer-Policy"] = "no-referrer"
        if self.etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _serve(r: APIRouter, path: str, asset: Asset, *, page: bool = False) -> None:
    async def send(request: Request) -> Response:
        return asset.response(request, page=page)

    r.add_api_route(path, send, methods=["GET"], include_in_schema=False)


def build(svc: Service, *, dashboard: bool) -> APIRouter:
    """The static and page routes of one service (the demo's only with ``TETHER_DEMO``)."""
    r = APIRouter()
    names = list(CLIENT_ASSETS)
    if svc.settings.demo or dashboard:
        names += PAGE_ASSETS
    if svc.settings.demo:
        names += DEMO_ASSETS
    if dashboard:
        names += DASHBOARD_ASSETS
    for name in names:
        _serve(r, f"/static/{name}", Asset.load(name))
    if dashboard:
        _serve(r, "/dashboard", Asset.load("dashboard.html"), page=True)
    if svc.settings.demo:
        _serve(r, "/", Asset.load("demo.html"), page=True)
        r.include_router(_demo_api(svc))
    return r


def _demo_api(svc: Service) -> APIRouter:
    """``TETHER_DEMO=1`` only: the demo page may mint a token for a throwaway user."""
    r = api_router(svc, "demo", prefix="/api/v1/demo")

    @r.post(
        "/token",
        summary="Demo mode only: a short-lived token for a fresh demo user",
        **answers(DemoToken, "A token for a fresh demo user", authenticated=False),
    )
    async def demo_token() -> dict[str, Any]:
        user = f"demo-{secrets.token_hex(4)}"
        token = svc.tokens.mint(user, ttl=DEMO_TOKEN_TTL)
        return {"user": user, "token": token, "expires_in": DEMO_TOKEN_TTL}

    return r
