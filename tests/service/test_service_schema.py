"""The OpenAPI description is a promise: schemathesis holds a real server to it.

Every operation of the ``/openapi.json`` a real uvicorn server serves gets
schemathesis-generated requests (valid and invalid ones), sent as the
session's owner, another user, the admin or nobody, naming a live session,
an ended one or whatever was generated. Every answer must be below 500 and
have a documented status, content type, headers and body. A second test
sends what a schema cannot describe (raw bodies, undecodable credentials,
encoded path tricks). Bounded and derandomized: the same requests on every
run, in well under a minute.

(Schemathesis' own pytest integration, ``from_fixture(...).parametrize()``,
fails on pytest 9.2, whose nodes have no ``_nodeid``; the operations are
parametrized here instead, with the public ``as_strategy`` and
``call_and_validate``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_kit import ADMIN_TOKEN, WAIT, Served, make_settings, threaded_server, token

from tether.service import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 40
CONFIG = {
    "generation": {"with-security-parameters": False},
    "max-stream-events": 1,
    "request-timeout": WAIT,
}
SCENARIOS = (
    ("alice", "live"),
    ("alice", "ended"),
    ("alice", "generated"),
    ("admin", "live"),
    ("admin", "generated"),
    ("bob", "live"),
    ("nobody", "live"),
)
"""Who calls, and what ``{session_id}`` (and ``{user}``, ``{archive_id}``) names: alice's
live session, her ended one (and its archive), or whatever schemathesis generated.
The most telling scenario comes first: Hypothesis tries it most often."""


@dataclass
class Api:
    """The server under test and the fixtures its cases point at."""

    served: Served
    client: httpx.Client
    ended: str
    archive_id: str
    _live: str = ""

    def live(self) -> str:
        """A live session of alice's (a new one if cases have ended the last)."""
        if self._live:
            got = self.client.get(f"/api/v1/sessions/{self._live}", headers=_auth("alice"))
            if got.json()["state"] != "ended":
                return self._live
        made = self.client.post(
            "/api/v1/sessions", headers=_auth("alice"), json={"config": {"k": 1}}
        )
        self._live = made.json()["id"]
        self.client.post(
            f"/api/v1/sessions/{self._live}/messages",
            headers=_auth("alice"),
            json={"role": "user", "content": "hello", "metadata": {"n": 1}},
        )
        return self._live


def _auth(who: str) -> dict[str, str]:
    if who == "nobody":
        return {}
    value = ADMIN_TOKEN if who == "admin" else token(who)
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A real server with an ended, archived session of alice's."""
    settings = make_settings(
        Path(tmp_path_factory.mktemp("schema")),
        presence_timeout=600.0,
        sse_ping_interval=0.05,
        demo=True,
        max_sessions_per_user=1000,
        max_requests_per_minute=1_000_000,
        request_burst=1_000_000,
    )
    with (
        threaded_server(create_app(settings), settings) as served,
        httpx.Client(base_url=served.http, timeout=WAIT) as client,
    ):
        sid = client.post("/api/v1/sessions", headers=_auth("alice")).json()["id"]
        client.post(
            f"/api/v1/sessions/{sid}/messages",
            headers=_auth("alice"),
            json={"role": "user", "content": "bye"},
        )
        client.post(f"/api/v1/sessions/{sid}/end", headers=_auth("alice"))
        archives = client.get("/api/v1/users/alice/archives", headers=_auth("alice")).json()
        yield Api(served, client, sid, archives["archives"][0]["archive_id"])


@pytest.fixture(scope="module")
def api_schema(api: Api) -> Any:
    """The schema exactly as the running server serves it."""
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_url(f"{api.served.http}/openapi.json", config=config)


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) the app documents, known at collection time."""
    document = create_app(make_settings(Path("unused"), demo=True)).openapi()
    return [(m.upper(), p) for p, item in document["paths"].items() for m in item]


OPERATIONS = _operations()


def _cases(operation: Any) -> st.SearchStrategy[schemathesis.Case]:
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_keeps_its_openapi_promises(
    api: Api, api_schema: Any, method: str, path: str
) -> None:
    """No 5xx, and every status, content type, header and body is the documented one."""
    operation = api_schema[path][method]  # a KeyError if the served schema lacks it

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases(operation), scenario=st.sampled_from(SCENARIOS))
    def check(case: schemathesis.Case, scenario: tuple[str, str]) -> None:
        who, target = scenario
        params = case.path_parameters or {}
        if "session_id" in params and target != "generated":
            params["session_id"] = api.live() if target == "live" else api.ended
        if "archive_id" in params and target != "generated":
            params.update(user="alice", archive_id=api.archive_id)
        if "user" in params and target == "live":
            params["user"] = "alice"
        case.call_and_validate(base_url=api.served.http, headers=_auth(who), checks=CHECKS)

    check()


NOISE_PATHS = st.sampled_from(["..", "%2e%2e", "%00", "a/../b", "é", " ", "0" * 32]) | st.text(
    min_size=1, max_size=40
)
NOISE_BODIES = st.none() | st.binary(max_size=200) | st.text(max_size=80).map(str.encode)
NOISE_AUTH = st.sampled_from(
    [b"Bearer \xe9\xe9", b"Bearer " + b"x" * 9000, b"Basic YWxpY2U6cHc=", b"Bearer", b"alice"]
)
NOISE_TYPES = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; x"]
)


@settings(
    max_examples=MAX_EXAMPLES * 3,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    operation=st.sampled_from(OPERATIONS),
    value=NOISE_PATHS,
    body=NOISE_BODIES,
    authorization=NOISE_AUTH,
    content_type=NOISE_TYPES,
)
def test_what_schemathesis_cannot_send_never_gets_a_5xx(
    api: Api,
    operation: tuple[str, str],
    value: str,
    body: bytes | None,
    authorization: bytes,
    content_type: str,
) -> None:
    """Raw bodies, undecodable or odd credentials, encoded path tricks: an error, never a 5xx."""
    method, path = operation
    url = path
    for name in ("session_id", "user", "archive_id"):
        url = url.replace("{" + name + "}", quote(value, safe="%"))
    if authorization == b"alice":
        authorization = f"Bearer {token('alice')}".encode()
    headers = {"Authorization": authorization, "Content-Type": content_type}
    with api.client.stream(method, url, content=body, headers=headers) as response:
        if response.status_code >= 400:
            response.read()
            assert "error" in response.json(), response.text
    assert response.status_code < 500, (method, url, response.status_code)
