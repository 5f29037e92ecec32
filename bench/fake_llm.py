"""A fake OpenAI-compatible Chat Completions server, run as a process of its own.

``python -m bench.fake_llm [--port 0]`` serves ``POST /v1/chat/completions``
with ``stream: true`` the way the real API streams: ``text/event-stream``, one
``data: {chat.completion.chunk}`` event per token, then ``data: [DONE]``. It
prints ``fake-llm listening on http://127.0.0.1:PORT/v1`` once it accepts
connections. The tests (``tests/llm_kit.py``), the benches and the examples
talk to it over real loopback HTTP.

The request's ``model`` picks a script, ``mode[:argument]``:

=====================  ================================================================
``echo[:delay]``       (also any unknown model) ``Echo: <last user message>``, one token
                       per word, ``delay`` seconds apart (default 0)
``slow-first:s``       like ``echo``, but the first token only after ``s`` seconds
``endless:delay``      a token every ``delay`` seconds until the client goes away
``status:code``        answers ``code`` with an OpenAI-style ``{"error": {...}}`` body
``hang``               never answers (not even headers) until the client goes away
``hang-mid``           one token, then nothing until the client goes away
``bad-json``           one token, then a ``data:`` line that is not JSON
``bad-shape``          one token, then a JSON chunk without ``choices``
``error-event``        one token, then ``data: {"error": {...}}``
``no-done``            two tokens, then a clean end of the body without ``[DONE]``
``drop``               two tokens, then the connection is cut mid-body
``plain``              200 with a JSON body instead of an event stream
=====================  ================================================================

Every chat request is recorded: ``GET /_requests`` lists ``{id, model, body,
authorization, completed, disconnected}``, where ``disconnected`` says the
client closed the connection before the script finished (how the tests see
that a cancelled reply really closed its HTTP request). ``DELETE /_requests``
forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROOT = Path(__file__).resolve().parent.parent


class Dropped(Exception):
    """Raised inside the app to make uvicorn cut the connection mid-body (``drop``)."""


@dataclass
class Record:
    """One chat request as the server saw it."""

    id: int
    model: str
    body: Any
    authorization: str | None
    completed: bool = False
    disconnected: bool = False


class FakeLLM:
    """The ASGI app: the chat completions endpoint, its scripts and the request log."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        body = await _read_body(receive)
        if path == "/_requests" and method == "GET":
            await _json(send, 200, [asdict(r) for r in self.records])
        elif path == "/_requests" and method == "DELETE":
            self.records.clear()
            await _json(send, 200, {"ok": True})
        elif path == "/v1/chat/completions" and method == "POST":
            await self._chat(scope, receive, send, body)
        else:
            await _json(send, 404, {"error": {"message": "not found", "type": "invalid_request"}})

    async def _chat(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            await _json(send, 400, {"error": {"message": "bad request body", "type": "invalid"}})
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        record = Record(len(self.records) + 1, model, body, headers.get("authorization"))
        self.records.append(record)
        # The script and a watcher of the connection race: whichever ends first wins,
        # so a client that goes away is noticed at once, even while the script waits.
        script = asyncio.ensure_future(self._script(record, body, send))
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        done, _ = await asyncio.wait({script, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if script in done:
            watcher.cancel()
            script.result()  # re-raises Dropped: uvicorn then cuts the connection
            return
        script.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await script
        if not record.completed:
            record.disconnected = True

    async def _script(self, record: Record, body: Any, send: Send) -> None:
        mode, _, arg = record.model.partition(":")
        words = _reply_words(body)
        if mode == "status":
            code = int(arg or 500)
            await _json(send, code, {"error": _error_object(code, record.authorization)})
            record.completed = True
            return
        if mode == "plain":
            await _json(send, 200, {"object": "chat.completion", "choices": []})
            record.completed = True
            return
        if mode == "hang":
            await asyncio.Event().wait()
        await _start_stream(send)
        chunk = _Chunker(record.model)
        if mode == "slow-first":
            await asyncio.sleep(float(arg or 1))
        if mode == "endless":
            n = 0
            while True:
                await _event(send, chunk.token(f"t{n} "))
                n += 1
                await asyncio.sleep(float(arg or 0.01))
        if mode in {"hang-mid", "bad-json", "bad-shape", "error-event"}:
            await _event(send, chunk.token(words[0]))
            if mode == "hang-mid":
                await asyncio.Event().wait()
            bad = {
                "bad-json": '{"id": "x", "choices": [',
                "bad-shape": json.dumps({"id": "x", "object": "chat.completion.chunk"}),
                "error-event": json.dumps({"error": _error_object(503)}),
            }[mode]
            await _data(send, bad)
            await _data(send, "[DONE]", more=False)
            record.completed = True
            return
        if mode in {"no-done", "drop"}:
            for word in words[:2]:
                await _event(send, chunk.token(word))
            if mode == "drop":
                record.completed = True
                raise Dropped("cut mid-stream on purpose")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            record.completed = True
            return
        delay = float(arg) if mode == "echo" and arg else 0.0
        await _event(send, chunk.role())
        for word in words:
            await _event(send, chunk.token(word))
            if delay:
                await asyncio.sleep(delay)
        await _event(send, chunk.finish())
        await _data(send, "[DONE]", more=False)
        record.completed = True


class _Chunker:
    """``chat.completion.chunk`` objects of one completion, as the API shapes them."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-fake{time.monotonic_ns()}"
        self.model = model
        self.created = int(time.time())

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def token(self, text: str) -> dict[str, Any]:
        return self._chunk({"content": text})

    def finish(self) -> dict[str, Any]:
        return self._chunk({}, "stop")


def _reply_words(body: Any) -> list[str]:
    """``Echo: <last user message>`` as tokens: each word with its following space."""
    last = ""
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            last = str(message.get("content", ""))
    words = f"Echo: {last}".split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def _error_object(code: int, authorization: str | None = None) -> dict[str, Any]:
    # Like the real API, a 401 quotes the key it refused (tether must not log it).
    key = (authorization or "").removeprefix("Bearer ")
    kinds = {
        401: (f"Incorrect API key provided: {key}.", "invalid_request_error", "invalid_api_key"),
        429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    }
    message, kind, short = kinds.get(code, ("The server had an error.", "server_error", None))
    return {"message": message, "type": kind, "param": None, "code": short}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _start_stream(send: Send) -> None:
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _data(send: Send, data: str, *, more: bool = True) -> None:
    payload = f"data: {data}\n\n".encode()
    await send({"type": "http.response.body", "body": payload, "more_body": more})


async def _event(send: Send, chunk: dict[str, Any]) -> None:
    await _data(send, json.dumps(chunk))


# -- running it ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve on ``--port`` (0: any free one) until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(FakeLLM(), log_level="critical", lifespan="on")
    server = uvicorn.Server(config)

    async def serve() -> None:
        serve_task = asyncio.ensure_future(server.serve(sockets=[sock]))

        async def announce() -> None:
            # uvicorn has no "started" callback; its flag flips once it accepts.
            while not server.started and not serve_task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if server.started:
                print(f"fake-llm listening on http://{args.host}:{port}/v1", flush=True)

        await asyncio.gather(announce(), serve_task)

    asyncio.run(serve())


@dataclass
class FakeLLMProcess:
    """A running fake server: its process and base URL."""

    process: subprocess.Popen[str]
    base_url: str

    def stop(self) -> None:
        """Stop the server (by its pid) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def launch(timeout: float = 10.0) -> FakeLLMProcess:
    """Start ``python -m bench.fake_llm`` on a free loopback port; return once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_llm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if line.startswith("fake-llm listening on "):
            return FakeLLMProcess(process, line.split()[-1])
    process.kill()
    process.wait()
    raise RuntimeError(f"the fake LLM server did not start (last output: {line!r})")


if __name__ == "__main__":
    main()
