"""A streaming client for any OpenAI-compatible Chat Completions endpoint.

:class:`ChatClient` posts ``{model, messages, stream: true}`` to
``{base_url}/chat/completions`` and yields the text of each
``chat.completion.chunk`` (``choices[0].delta.content``) as it arrives, until
``data: [DONE]``. Every way the endpoint can fail becomes one
:class:`~tether.errors.ReplyFailed` whose ``cause`` names it; cancelling the
consumer closes the HTTP connection at once, so the endpoint stops
generating (and billing) for a session that has ended.

Why httpx and not the ``openai`` SDK: the responder needs one endpoint, a
precise end to every request and precise errors, and httpx (with httpx-sse
for the event-stream framing) gives exactly that with two small, maintained
dependencies. The SDK would add its own retries (two by default, which
turn one failure into three slow ones before the user hears of it), its
own exception tree to translate, and a dependency chain (jiter, distro,
anyio, tqdm, ...) for a feature we use one corner of; and servers that are
merely "OpenAI-compatible" (Ollama, vLLM, llama.cpp) differ in details the
SDK's typed models are strict about.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import httpx_sse

from tether.errors import ReplyFailed

DEFAULT_TIMEOUT = 60.0
"""Seconds without a byte from the endpoint (connecting included) before a reply fails."""
MAX_ERROR_BODY = 16384
"""Bytes of an error answer read to find its message; the rest is not read."""
DONE = "[DONE]"


class ChatClient:
    """Streams chat completions from one OpenAI-compatible endpoint.

    ``base_url`` is the API root (``https://api.openai.com/v1``,
    ``http://127.0.0.1:11434/v1``). ``api_key``, when given, is sent as
    ``Authorization: Bearer``; it never appears in an error message.
    ``timeout`` bounds connecting and every wait for the next byte, so a
    stalled endpoint fails the reply rather than holding it forever. Pass
    ``http`` to share an ``httpx.AsyncClient`` you own (then ``aclose`` leaves
    it open). One client serves any number of concurrent streams.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self._api_key = api_key or None
        parsed = httpx.URL(self.url)
        # Logs name the endpoint by host only: a URL may carry credentials or tokens.
        self.endpoint = f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            # One stream per replying session; keep-alive only for a steady few.
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=64),
        )
        self._closed = False

    async def aclose(self) -> None:
        """Close the connection pool (if this client made it); streams in flight fail."""
        self._closed = True
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def request_body(self, messages: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        """The JSON body of a streamed completion of ``messages``."""
        return {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
        }

    async def stream(self, messages: Sequence[Mapping[str, str]]) -> AsyncIterator[str]:
        """Yield the completion of ``messages`` piece by piece (non-empty strings).

        Ends normally at ``data: [DONE]``; anything else raises
        :class:`ReplyFailed`. Cancelling the task that iterates closes the
        request at once. A consumer that stops early without being cancelled
        should close the iterator (``contextlib.aclosing``) for the same effect.
        """
        if self._closed:
            raise ReplyFailed("closed", "the LLM client is closed")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = self.request_body(messages)
        try:
            async with httpx_sse.aconnect_sse(
                self._http, "POST", self.url, json=body, headers=headers
            ) as source:
                response = source.response
                if response.status_code >= 400:
                    raise await self._status_error(response)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise ReplyFailed(
                        "malformed",
                        f"{self.endpoint} answered {content_type or 'no content type'}, "
                        "not an event stream (is it an OpenAI-compatible API root?)",
                    )
                async for event in source.aiter_sse():
                    if event.data.strip() == DONE:
                        return
                    piece = self._piece(event.data)
                    if piece:
                        yield piece
        except httpx.TimeoutException:
            raise ReplyFailed(
                "timeout", f"{self.endpoint} sent nothing for {self.timeout:g}s"
            ) from None
        except httpx.ConnectError as exc:
            raise ReplyFailed(
                "connect", f"cannot reach {self.endpoint}: {self._redact(str(exc))}"
            ) from None
        except httpx.TransportError as exc:  # RemoteProtocolError, ReadError: cut mid-body
            raise ReplyFailed(
                "dropped", f"{self.endpoint} dropped the stream: {self._redact(str(exc))}"
            ) from None
        except RuntimeError:  # httpx: the pool was closed under the request
            if not self._closed:
                raise
            raise ReplyFailed("closed", "the LLM client is closed") from None
        raise ReplyFailed("dropped", f"{self.endpoint} ended the stream before [DONE]")

    def _piece(self, data: str) -> str | None:
        """The text of one chunk (``None``: a chunk without text), or :class:`ReplyFailed`."""
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ReplyFailed(
                "malformed",
                f"{self.endpoint} sent a chunk that is not JSON: {self._redact(data[:80])!r}",
            ) from None
        if not isinstance(chunk, dict):
            raise ReplyFailed("malformed", f"{self.endpoint} sent a chunk that is not an object")
        if "error" in chunk:
            raise ReplyFailed(
                "stream_error",
                f"{self.endpoint} failed mid-stream: {self._redact(_error_text(chunk))}",
            )
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise ReplyFailed("malformed", f"{self.endpoint} sent a chunk without choices")
        if not choices:
            return None  # the usage chunk of stream_options.include_usage
        first = choices[0]
        delta = first.get("delta") if isinstance(first, dict) else None
        if not isinstance(delta, dict):
            raise ReplyFailed("malformed", f"{self.endpoint} sent a choice without a delta")
        content = delta.get("content")
        if content is None or isinstance(content, str):
            return content
        raise ReplyFailed("malformed", f"{self.endpoint} sent delta content that is not text")

    async def _status_error(self, response: httpx.Response) -> ReplyFailed:
        raw = b""
        async for part in response.aiter_bytes():
            raw += part
            if len(raw) >= MAX_ERROR_BODY:
                break
        try:
            detail = _error_text(json.loads(raw[:MAX_ERROR_BODY]))
        except ValueError:
            detail = raw[:200].decode("utf-8", "replace").strip() or response.reason_phrase
        return ReplyFailed(
            "status",
            f"{self.endpoint} answered {response.status_code}: {self._redact(detail)}",
            status=response.status_code,
        )

    def _redact(self, text: str) -> str:
        # Some endpoints echo the key they refused ("Incorrect API key provided: sk-...").
        return text.replace(self._api_key, "***") if self._api_key else text


def _error_text(payload: Any) -> str:
    """The message of an OpenAI-style ``{"error": {"message": ...}}`` (or what there is)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    return json.dumps(payload)[:200]
