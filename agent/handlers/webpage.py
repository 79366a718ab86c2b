"""``webpage``: fetch a URL and keep the page's main text and metadata.

Params (``WebpageParams``): ``url`` (http or https), ``max_size_mb`` (10, at most 50),
``timeout_s`` (30, the whole download, robots.txt included), ``max_redirects`` (5),
``respect_robots`` (the agent's ``webpage_robots`` when unset: robots.txt of the site must allow
the user agent ``taskpost``).

Every connection, robots.txt and each redirect hop included, passes the agent's address policy
(``unsafe_address`` for private, loopback and link-local addresses unless the agent allows them).
Outputs ``page.md``, ``page.txt`` and ``metadata.json``; the result holds ``title``, ``text``,
``author``, ``date``, ``language``, ``final_url`` and sizes. Error kinds (docs/media.md):
``bad_params``, ``bad_url``, ``unsafe_address``, ``robots_disallowed``, ``too_large``,
``not_html``, ``no_content`` and ``http_error`` (4xx) are final; ``http_error`` for 408/429/5xx
and ``network`` are retried.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import Params, WebpageParams
from taskpost.agent.media.download import check_url
from taskpost.agent.media.web_text import PageText, extract_page
from taskpost.agent.net.guarded_http import guarded_client
from taskpost.agent.net.page import fetch_page
from taskpost.agent.net.robots import robots_allow, robots_url
from taskpost.agent.workdir import write_private_text

if TYPE_CHECKING:
    from taskpost.agent.settings import AgentSettings

MAX_RESULT_TEXT = 200_000
"""Characters of text the result carries; ``page.txt`` always has all of it."""


def _final(kind: str, message: str) -> HandlerError:
    return HandlerError(message, retryable=False, kind=kind)


def _metadata(found: PageText, url: str, final_url: str, size: int) -> dict[str, Any]:
    return {
        "title": found.title,
        "author": found.author,
        "date": found.date,
        "language": found.language,
        "sitename": found.sitename,
        "description": found.description,
        "url": url,
        "final_url": final_url,
        "size": size,
    }


class WebpageHandler:
    """Extracts the main text of a web page with trafilatura."""

    task_type = "webpage"
    params_model: ClassVar[type[Params]] = WebpageParams
    requires: ClassVar[dict[str, str]] = {
        "trafilatura": "taskpost[web]",
        "lxml": "taskpost[web]",
        "lxml_html_clean": "taskpost[web]",
    }

    def __init__(self) -> None:
        self.respect_robots = True

    def setup(self, settings: AgentSettings) -> None:
        """Takes the robots.txt default from ``webpage_robots``."""
        self.respect_robots = settings.webpage_robots

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        try:
            params = WebpageParams.model_validate(ctx.params)
        except ValidationError as exc:
            raise _final("bad_params", f"bad params: {exc.errors(include_url=False)}") from exc
        url = check_url(params.url)
        respect_robots = self.respect_robots if params.respect_robots is None else params.respect_robots
        ctx.heartbeat(0.0, "fetching the page")
        deadline = time.monotonic() + params.timeout_s  # robots.txt and the page together
        with guarded_client(
            ctx.url_policy, timeout_s=params.timeout_s, max_redirects=params.max_redirects
        ) as client:
            if respect_robots and not robots_allow(
                client, url, deadline=deadline, is_cancelled=ctx.is_cancelled
            ):
                raise _final(
                    "robots_disallowed",
                    f"{robots_url(url)} does not let user agent 'taskpost' fetch {url} "
                    "(respect_robots=false or the agent's TASKPOST_WEBPAGE_ROBOTS=false overrides it)",
                )
            page = fetch_page(
                client,
                url,
                max_bytes=int(params.max_size_mb * 1024 * 1024),
                timeout_s=max(0.0, deadline - time.monotonic()),
                progress=lambda fraction, message: ctx.heartbeat(
                    None if fraction is None else fraction * 0.8, message
                ),
                is_cancelled=ctx.is_cancelled,
            )
        if ctx.is_cancelled():
            return {"cancelled": True}
        ctx.heartbeat(0.85, "extracting the main text")
        found = extract_page(page.body, page.url)
        if found is None:
            raise _final("no_content", f"{page.url}: no main text found in the page")
        meta = _metadata(found, url, page.url, len(page.body))
        out = ctx.output_dir
        write_private_text(out / "page.md", found.markdown + "\n")
        write_private_text(out / "page.txt", found.text + "\n")
        write_private_text(out / "metadata.json", json.dumps(meta, ensure_ascii=False, indent=1))
        ctx.heartbeat(1.0, "done")
        return {
            **meta,
            "text": found.text[:MAX_RESULT_TEXT],
            "text_truncated": len(found.text) > MAX_RESULT_TEXT,
            "chars": len(found.text),
            "markdown_chars": len(found.markdown),
        }
