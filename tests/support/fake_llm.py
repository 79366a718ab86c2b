"""A small OpenAI-compatible chat server for tests, on 127.0.0.1 in a thread.

It records every request and answers ``POST .../chat/completions`` from a script of canned
answers first, then deterministically: ``ANSWER:<sha1 of the last user message's text>[:8]``, with
usage counted in words. Other paths get 404.

    with fake_llm([(429, {"retry-after": "1"}, None)]) as llm:
        ...  # point the client at llm.base_url (ends in /v1)
        llm.requests[0].body["model"]
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Canned = tuple[int, Mapping[str, str], Any]
"""An answer: status, headers, body (a dict or list is sent as JSON; None sends an error body)."""

ANSWER_PREFIX = "ANSWER:"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    def text(self) -> str:
        """Every text part of every message, joined (what the context budget counts)."""
        return "\n".join(message_text(message) for message in self.messages)

    def image_urls(self) -> list[str]:
        """The ``image_url`` URLs of the request's content parts (data: URLs for uploads)."""
        return [
            part["image_url"]["url"]
            for message in self.messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if part.get("type") == "image_url"
        ]


@dataclass
class FakeLlm:
    """The running server: ``base_url``, the recorded ``requests`` and what is left of ``script``."""

    script: list[Canned] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self, request: Recorded) -> Canned:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
        return 200, {}, default_answer(request.body)


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return ""


def expected_answer(last_user_text: str) -> str:
    """What the server answers to a request whose last user message is ``last_user_text``."""
    return ANSWER_PREFIX + hashlib.sha1(last_user_text.encode()).hexdigest()[:8]


def default_answer(body: Mapping[str, Any]) -> dict[str, Any]:
    messages = body.get("messages", [])
    users = [message for message in messages if message.get("role") == "user"]
    answer = expected_answer(message_text(users[-1]) if users else "")
    prompt_words = sum(len(message_text(message).split()) for message in messages)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
        ],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": len(answer.split()),
            "total_tokens": prompt_words + len(answer.split()),
        },
    }


def error_body(status: int) -> dict[str, Any]:
    """An OpenAI-style error body: 404 says model_not_found, as OpenAI and vLLM do."""
    codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    return {"error": {"message": f"fake error {status}", "type": "fake", "code": codes.get(status)}}


def _handler(llm: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Recorded(self.path, headers, json.loads(raw or b"{}"))
            if not self.path.endswith("/chat/completions"):
                self._send(404, {}, error_body(404))
                return
            status, extra, body = llm.next_answer(request)
            self._send(status, extra, error_body(status) if body is None else body)

        def _send(self, status: int, headers: Mapping[str, str], body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def fake_llm(script: list[Canned] | None = None) -> Iterator[FakeLlm]:
    """A running fake server; stopped when the block ends."""
    llm = FakeLlm(script=list(script or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(llm))
    server.daemon_threads = True
    llm.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
