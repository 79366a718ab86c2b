"""``PageServer``: scripted HTTP answers on 127.0.0.1 from a thread, recording each request.

Routes map a path to ``Answer(status, headers, body)``; ``redirect`` adds a 302. Anything else is
a 404. Each request is recorded as ``(path, Host header, User-Agent)``. An answer with
``trickle_s`` sends its body one byte at a time, that long apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trickle_s: float = 0.0


def html(text: str, status: int = 200) -> Answer:
    return Answer(status, {"Content-Type": "text/html; charset=utf-8"}, text.encode())


class PageServer:
    """See the module's docstring; ``port`` is chosen by the system."""

    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        self.requests: list[tuple[str, str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(
                    (self.path, self.headers.get("Host", ""), self.headers.get("User-Agent", ""))
                )
                answer = server.routes.get(self.path, Answer(404, {"Content-Type": "text/plain"}, b"no"))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if not answer.trickle_s:
                    self.wfile.write(answer.body)
                    return
                for index in range(len(answer.body)):
                    try:
                        self.wfile.write(answer.body[index : index + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    time.sleep(answer.trickle_s)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, answer: Answer) -> str:
        self.routes[path] = answer
        return self.url(path)

    def redirect(self, path: str, location: str) -> str:
        return self.add(path, Answer(302, {"Location": location}))


@contextmanager
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(5)
