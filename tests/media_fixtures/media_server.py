"""A local web server of generated media, standing in for the sites yt-dlp downloads from.

``MediaServer`` serves a folder over HTTP on 127.0.0.1 from a thread, plus HTML pages given as
text. Nothing leaves the machine, so the URL download handler is tested for real: direct media
links (yt-dlp's generic extractor), pages with an ``<audio>`` tag (its html5 extractor), pages
without media and missing files (404).

The media itself comes from ``tests.media_fixtures.speech``. ``json_ld_page`` describes media in
schema.org JSON-LD, which is how a local page tells yt-dlp a duration and an author before the
download starts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.media_fixtures import speech


def audio_page(src: str, title: str = "A spoken sentence") -> str:
    """An HTML page whose only media is one ``<audio>`` element."""
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        f"<h1>{title}</h1><audio controls><source src='{src}' type='audio/mpeg'></audio>"
        "</body></html>"
    )


def plain_page(title: str = "Nothing to hear") -> str:
    """An HTML page without any media."""
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body><p>Just text.</p></body></html>"


def json_ld_page(content_url: str, *, name: str, duration_s: int, author: str) -> str:
    """An HTML page describing one ``AudioObject`` in JSON-LD: yt-dlp learns the duration from it."""
    hours, rest = divmod(duration_s, 3600)
    minutes, seconds = divmod(rest, 60)
    data = {
        "@context": "https://schema.org",
        "@type": "AudioObject",
        "name": name,
        "contentUrl": content_url,
        "duration": f"PT{hours}H{minutes}M{seconds}S",
        "author": {"@type": "Person", "name": author},
    }
    script = f"<script type='application/ld+json'>{json.dumps(data)}</script>"
    return f"<!DOCTYPE html><html><head><title>{name}</title>{script}</head><body></body></html>"


class _Handler(SimpleHTTPRequestHandler):
    pages: dict[str, str] = {}
    errors: dict[str, int] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in self.errors:
            self.send_error(self.errors[path])
            return
        page = self.pages.get(path)
        if page is None:
            super().do_GET()
            return
        body = page.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


class MediaServer:
    """Files of ``root`` and in-memory HTML pages over HTTP on 127.0.0.1, served from a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pages: dict[str, str] = {}
        self.errors: dict[str, int] = {}
        attributes = {"pages": self.pages, "errors": self.errors}
        handler = type("MediaRequestHandler", (_Handler,), attributes)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="media-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` (a file under the root, or a page), e.g. ``url("speech.mp3")``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def add_page(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; returns its URL."""
        self.pages["/" + path.lstrip("/")] = html
        return self.url(path)

    def add_error(self, path: str, status: int) -> str:
        """Answer ``path`` with the HTTP error ``status``; returns its URL."""
        self.errors["/" + path.lstrip("/")] = status
        return self.url(path)

    def start(self) -> MediaServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@contextmanager
def serve(root: Path) -> Iterator[MediaServer]:
    """A started ``MediaServer`` of ``root``, stopped on exit."""
    server = MediaServer(root).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_speech(folder: Path) -> Iterator[MediaServer]:
    """A started ``MediaServer`` of ``folder`` holding the English test speech as ``speech.wav``
    and ``speech.mp3``; the caller skips first when ``speech.missing_tools()`` names any."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = speech.speak(speech.ENGLISH_TEXT, folder / "speech.wav")
    speech.to_mp3(wav, folder / "speech.mp3")
    with serve(folder) as server:
        yield server
