"""``/docs`` needs nothing but tether: Swagger UI's files come from this server, not a CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import httpx
from fastapi import FastAPI
from service_kit import asgi_client, make_settings

from tether.service import create_app

ASSETS = files("fastapi_swagger") / "resources"
EXPECTED_TYPES = {
    "/docs-assets/swagger-ui-bundle.js": "text/javascript",
    "/docs-assets/swagger-ui.css": "text/css",
    "/docs-assets/favicon-32x32.png": "image/png",
}


class _Links(HTMLParser):
    """Every ``src`` and ``href`` on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.urls


@asynccontextmanager
async def prefixed_client(app: FastAPI, root_path: str) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``asgi_client``, as if behind a proxy that mounts the app under ``root_path``."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
            yield client


async def test_docs_page_references_no_outside_url(tmp_path: Path) -> None:
    """/docs names no absolute URL anywhere; its script, stylesheet and icon are this server's."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert re.findall(r"[a-z][a-z0-9+.-]*://|//[a-z0-9]", page.text, re.IGNORECASE) == []
        assert sorted(links(page.text)) == sorted(EXPECTED_TYPES)
        assert "url: '/openapi.json'" in page.text
        assert '"validatorUrl": null' in page.text  # no badge fetched from validator.swagger.io


async def test_docs_assets_are_served_from_the_package(tmp_path: Path) -> None:
    """Each asset /docs loads answers 200, typed, byte for byte the fastapi-swagger file."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        for path, media_type in EXPECTED_TYPES.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(media_type), path
            assert response.content == (ASSETS / path.rsplit("/", 1)[1]).read_bytes()
        assert b"SwaggerUIBundle" in (await client.get("/docs-assets/swagger-ui-bundle.js")).content


async def test_no_other_doc_pages_or_files(tmp_path: Path) -> None:
    """/redoc (it would load from a CDN) is gone; nothing outside the asset folder is served."""
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        for path in (
            "/redoc",
            "/docs-assets/",
            "/docs-assets/../__init__.py",
            "/docs-assets/%2e%2e/main.py",
            "/docs-assets/nothing.js",
        ):
            assert (await client.get(path)).status_code == 404, path
        schema = (await client.get("/openapi.json")).json()
        assert not [path for path in schema["paths"] if path.startswith(("/docs", "/redoc"))]


async def test_docs_behind_a_path_prefix_keep_the_prefix(tmp_path: Path) -> None:
    """Under a proxy's root_path, the page's spec and assets carry the prefix and load."""
    app = create_app(make_settings(tmp_path))
    async with prefixed_client(app, "/tether") as client:
        page = await client.get("/tether/docs")
        assert page.status_code == 200
        assert "url: '/tether/openapi.json'" in page.text
        assert sorted(links(page.text)) == sorted("/tether" + path for path in EXPECTED_TYPES)
        for url in links(page.text):
            assert (await client.get(url)).status_code == 200, url
