"""ChatClient against a real fake OpenAI-compatible server process: streams, every failure, cancel.

The timeouts here are the HTTP client's socket timeouts against a server that
never answers: real (a few tenths of a second), since no fake clock reaches
into the socket layer; nothing races, the server never sends a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from llm_kit import FakeLLM
from tether.errors import ReplyFailed
from tether.integrations.openai import ChatClient

WAIT = 5.0
SHORT = 0.3
"""The client timeout in the timeout tests: the server never answers, so any value works."""
HELLO = [{"role": "user", "content": "hello there"}]


@contextlib.asynccontextmanager
async def client_for(
    fake_llm: FakeLLM, model: str, *, limit: float = WAIT, api_key: str | None = None
) -> AsyncIterator[ChatClient]:
    client = ChatClient(fake_llm.base_url, model, api_key=api_key, timeout=limit)
    try:
        yield client
    finally:
        await client.aclose()


async def collect(client: ChatClient, messages: list[dict[str, str]] = HELLO) -> list[str]:
    return [piece async for piece in client.stream(messages)]


async def failure(client: ChatClient) -> tuple[list[str], ReplyFailed]:
    """The pieces that came before the stream failed, and the failure."""
    pieces: list[str] = []
    try:
        async for piece in client.stream(HELLO):
            pieces.append(piece)
    except ReplyFailed as exc:
        return pieces, exc
    raise AssertionError(f"the stream ended normally after {pieces}")


async def test_a_reply_streams_token_by_token_until_done(fake_llm: FakeLLM) -> None:
    """Each chunk's delta.content is one piece, in order; the role and stop chunks add none."""
    async with client_for(fake_llm, "echo") as client:
        pieces = await asyncio.wait_for(collect(client), WAIT)
    assert pieces == ["Echo: ", "hello ", "there"]


async def test_the_request_carries_model_stream_and_history(fake_llm: FakeLLM) -> None:
    """POST /chat/completions with the model, stream: true and the messages as given."""
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "how are you"},
    ]
    async with client_for(fake_llm, "echo") as client:
        pieces = await asyncio.wait_for(collect(client, history), WAIT)
    request = await fake_llm.last()
    assert request["body"] == {"model": "echo", "messages": history, "stream": True}
    assert "".join(pieces) == "Echo: how are you"
    assert request["authorization"] is None


async def test_an_api_key_is_sent_as_a_bearer_token(fake_llm: FakeLLM) -> None:
    """With an API key the request has Authorization: Bearer KEY."""
    async with client_for(fake_llm, "echo", api_key="sk-test-123") as client:
        await asyncio.wait_for(collect(client), WAIT)
    assert (await fake_llm.last())["authorization"] == "Bearer sk-test-123"


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (500, "The server had an error."),
        (401, "Incorrect API key provided"),
        (429, "Rate limit reached for requests."),
        (404, "not found"),
    ],
)
async def test_an_error_status_fails_with_the_endpoints_message(
    fake_llm: FakeLLM, status: int, says: str
) -> None:
    """A 4xx/5xx answer is ReplyFailed(status) with the code and the body's error message."""
    async with client_for(fake_llm, f"status:{status}") as client:
        if status == 404:  # a wrong base URL: the path is not there
            client.url = fake_llm.root + "/nope/chat/completions"
        pieces, exc = await failure(client)
    assert pieces == []
    assert (exc.cause, exc.status) == ("status", status)
    assert f"answered {status}: {says}" in str(exc)


async def test_the_api_key_never_appears_in_an_error(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 whose body quotes the refused key gives an error with the key masked."""
    key = "sk-secret-abcdef0123456789"
    caplog.set_level(logging.DEBUG)
    async with client_for(fake_llm, "status:401", api_key=key) as client:
        _, exc = await failure(client)
    assert key in (await fake_llm.last())["authorization"]  # the server did quote it back
    assert "Incorrect API key provided: ***" in str(exc)
    assert key not in str(exc)
    assert key not in caplog.text


async def test_an_endpoint_that_never_answers_times_out_and_is_hung_up_on(
    fake_llm: FakeLLM,
) -> None:
    """No headers within the timeout: ReplyFailed(timeout), and the connection is closed."""
    async with client_for(fake_llm, "hang", limit=SHORT) as client:
        pieces, exc = await asyncio.wait_for(failure(client), WAIT)
    assert (pieces, exc.cause) == ([], "timeout")
    assert "sent nothing for 0.3s" in str(exc)
    await until_disconnected(fake_llm)


async def test_a_stream_that_stalls_mid_reply_times_out(fake_llm: FakeLLM) -> None:
    """A first token, then silence past the timeout: ReplyFailed(timeout) after that token."""
    async with client_for(fake_llm, "hang-mid", limit=SHORT) as client:
        pieces, exc = await asyncio.wait_for(failure(client), WAIT)
    assert (pieces, exc.cause) == (["Echo: "], "timeout")


async def test_a_slow_first_token_within_the_timeout_is_waited_for(fake_llm: FakeLLM) -> None:
    """A first token late but within the timeout: the reply streams whole."""
    async with client_for(fake_llm, "slow-first:0.2", limit=WAIT) as client:
        pieces = await asyncio.wait_for(collect(client), WAIT)
    assert "".join(pieces) == "Echo: hello there"


@pytest.mark.parametrize(
    ("model", "cause", "says"),
    [
        ("bad-json", "malformed", "a chunk that is not JSON"),
        ("bad-shape", "malformed", "a chunk without choices"),
        ("error-event", "stream_error", "failed mid-stream: The server had an error."),
        ("no-done", "dropped", "ended the stream before [DONE]"),
        ("drop", "dropped", "dropped the stream"),
    ],
)
async def test_a_broken_stream_fails_after_the_pieces_before_it(
    fake_llm: FakeLLM, model: str, cause: str, says: str
) -> None:
    """Bad JSON, a chunk of the wrong shape, an error event, a missing [DONE] or a cut
    connection each end in ReplyFailed with its cause, after the good pieces before it."""
    async with client_for(fake_llm, model) as client:
        pieces, exc = await asyncio.wait_for(failure(client), WAIT)
    assert pieces[0] == "Echo: "
    assert exc.cause == cause
    assert says in str(exc)


async def test_a_json_answer_instead_of_a_stream_is_malformed(fake_llm: FakeLLM) -> None:
    """200 with application/json (no event stream) is ReplyFailed(malformed), naming the type."""
    async with client_for(fake_llm, "plain") as client:
        pieces, exc = await failure(client)
    assert (pieces, exc.cause) == ([], "malformed")
    assert "application/json" in str(exc)


async def test_an_unreachable_endpoint_fails_to_connect() -> None:
    """Nothing listening at the base URL: ReplyFailed(connect) naming host and port only."""
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ChatClient(f"http://user:pw@127.0.0.1:{port}/v1", "echo", timeout=WAIT)
    try:
        pieces, exc = await asyncio.wait_for(failure(client), WAIT)
    finally:
        await client.aclose()
    assert (pieces, exc.cause) == ([], "connect")
    assert f"cannot reach 127.0.0.1:{port}" in str(exc)
    assert "pw" not in str(exc)


async def test_cancelling_the_consumer_closes_the_request_at_once(fake_llm: FakeLLM) -> None:
    """Cancelling the task that reads the stream closes the HTTP connection: the server sees
    the client go away mid-reply (while it is still generating)."""
    await fake_llm.forget()
    first = asyncio.Event()
    async with client_for(fake_llm, "endless:0.05") as client:

        async def consume() -> None:
            async for _ in client.stream(HELLO):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        record = await until_disconnected(fake_llm)
    assert record["completed"] is False


async def test_a_closed_client_refuses_to_stream(fake_llm: FakeLLM) -> None:
    """After aclose, stream raises ReplyFailed(closed) and sends nothing."""
    await fake_llm.forget()
    client = ChatClient(fake_llm.base_url, "echo")
    await client.aclose()
    _, exc = await failure(client)
    assert exc.cause == "closed"
    assert await fake_llm.requests() == []


async def test_one_client_streams_many_replies_at_once(fake_llm: FakeLLM) -> None:
    """Concurrent streams on one client each get their own whole reply."""
    async with client_for(fake_llm, "echo:0.01") as client:
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(collect(client, [{"role": "user", "content": f"n{i}"}]) for i in range(20))
            ),
            WAIT,
        )
    assert ["".join(r) for r in replies] == [f"Echo: n{i}" for i in range(20)]


async def until_disconnected(fake_llm: FakeLLM) -> dict[str, object]:
    """The latest request once the server has seen its client go away."""

    async def poll() -> dict[str, object]:
        while True:
            record = await fake_llm.last()
            if record["disconnected"]:
                return record
            await asyncio.sleep(0.005)

    return await asyncio.wait_for(poll(), WAIT)
