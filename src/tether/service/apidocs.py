"""``/docs``: Swagger UI over ``/openapi.json``, every asset served by tether itself.

FastAPI's own ``/docs`` loads Swagger UI's script, stylesheet and favicon
from a CDN, so on a machine without internet it shows a blank page. Here the
page points at ``/docs-assets/``, served from the ``fastapi-swagger``
package (Swagger UI's release files, re-published with each Swagger UI
release), so the docs work offline and their version is pinned by
``uv.lock`` like any other dependency. ``/redoc`` is off: one UI is enough.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"
ASSETS_PACKAGE = ("fastapi_swagger", "resources")
"""Where the files live: ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``favicon-32x32.png``."""

SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
"""No badge that asks validator.swagger.io about the spec: it would leave this origin."""


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets on ``app`` (built with ``docs_url=None``)."""
    if app.openapi_url is None:
        return
    openapi_url = app.openapi_url
    # StaticFiles finds the package at once: a missing one fails here, at start-up.
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs_assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, every URL on the page keeps it.
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
