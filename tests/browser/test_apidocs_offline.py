"""``/docs`` in real Chromium with every other host cut off: Swagger UI still renders the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from browser_kit import LiveServer
from playwright.sync_api import BrowserContext, Request, Route, expect

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def test_docs_render_every_operation_with_the_outside_world_blocked(
    server: LiveServer, context: BrowserContext
) -> None:
    """No request leaves the server's origin, and every operation of /openapi.json is shown."""
    own = origin(server.url)
    foreign: list[str] = []

    def only_own_origin(route: Route, request: Request) -> None:
        scheme, host = origin(request.url)
        if (scheme, host) == own or scheme == "data":
            route.continue_()
        else:
            foreign.append(request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_own_origin)
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))

    schema = server.http.get("/openapi.json").json()
    operations = sum(
        1 for item in schema["paths"].values() for method in item if method in HTTP_METHODS
    )
    assert operations > 10

    page = context.new_page()
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("tether")
    expect(page.locator(".opblock")).to_have_count(operations)
    sessions = page.locator(".opblock-post .opblock-summary-path[data-path='/api/v1/sessions']")
    expect(sessions).to_have_count(1)
    page.wait_for_load_state("networkidle")

    assert foreign == [], f"/docs tried to reach outside hosts: {foreign}"
    assert {origin(url) for url in seen if not url.startswith("data:")} == {own}
    loaded = {urlsplit(url).path for url in seen}
    assert {
        "/docs",
        "/openapi.json",
        "/docs-assets/swagger-ui-bundle.js",
        "/docs-assets/swagger-ui.css",
    } <= loaded
