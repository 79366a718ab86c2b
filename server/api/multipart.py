"""Multipart submits, parsed as they stream: each file goes straight into the blob store.

Nothing is spooled to temporary files on the way (Starlette's ``request.form()`` would), so the
byte count of BodyLimitMiddleware stops an oversized body at the limit with nothing else on
disk. A body must end with its closing boundary: one cut short is a 400, never a job created
without the rest of its files. The parts are capped (TASKPOST_MAX_MULTIPART_PARTS).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from taskpost.protocol import JobCreate
from taskpost.server.api import files
from taskpost.server.errors import BadRequest, InvalidParams, PayloadTooLarge
from taskpost.server.services.uploads import StagedFiles
from taskpost.server.settings import Settings

JOB_FIELD = "job"


@dataclass(frozen=True)
class _Event:
    kind: str
    """begin, headers, data, part_end or end."""
    data: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    """None for a plain field."""


class MultipartStream:
    """The parts of a ``multipart/form-data`` request, each with its data as a stream."""

    def __init__(self, request: Request, max_parts: int) -> None:
        kind, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise BadRequest("a multipart submit must be multipart/form-data with a boundary")
        self._max_parts = max_parts
        self._body = request.stream().__aiter__()
        self._body_ended = False
        self._events: deque[_Event] = deque()
        self._headers: list[tuple[bytes, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
                "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": lambda data, start, end: self._events.append(
                    _Event("data", bytes(data[start:end]))
                ),
                "on_part_end": lambda: self._events.append(_Event("part_end")),
                "on_end": lambda: self._events.append(_Event("end")),
            },
        )

    def _on_part_begin(self) -> None:
        self._headers = []
        self._events.append(_Event("begin"))

    def _on_header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(_Event("headers", headers=tuple(self._headers)))

    async def _next(self) -> _Event:
        while not self._events:
            if self._body_ended:
                raise BadRequest("the multipart body ends before its closing boundary")
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                self._body_ended = True
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        return self._events.popleft()

    async def parts(self) -> AsyncIterator[tuple[Part, AsyncIterator[bytes]]]:
        """Each part and its data, in order; read a part's data before asking for the next."""
        count = 0
        while (event := await self._next()).kind != "end":
            count += 1
            if count > self._max_parts:
                raise PayloadTooLarge(
                    f"more than {self._max_parts} parts (TASKPOST_MAX_MULTIPART_PARTS); "
                    "upload more files through POST /uploads first",
                    limit=self._max_parts,
                )
            headers = await self._next()
            if event.kind != "begin" or headers.kind != "headers":
                raise BadRequest("the multipart body is malformed")
            data = self._data()
            yield _describe(dict(headers.headers)), data
            async for _ in data:
                pass  # what the reader left of this part

    async def _data(self) -> AsyncIterator[bytes]:
        while (event := await self._next()).kind == "data":
            yield event.data
        if event.kind != "part_end":
            raise BadRequest("the multipart body is malformed")


def _describe(headers: dict[bytes, bytes]) -> Part:
    kind, options = parse_options_header(headers.get(b"content-disposition"))
    if kind != b"form-data" or b"name" not in options:
        raise BadRequest("every part needs 'Content-Disposition: form-data; name=...'")
    filename = options.get(b"filename")
    return Part(
        name=_text(options[b"name"], "name"),
        filename=None if filename is None else _text(filename, "filename"),
    )


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParams(f"a part's {what} is not valid UTF-8", field=what) from None


async def read_job_form(
    request: Request, staged: StagedFiles, settings: Settings, parse_job: Callable[[bytes], JobCreate]
) -> JobCreate:
    """The job of a multipart submit (its ``job`` field); every part with a filename is stored
    into ``staged`` as an input of that name."""
    spec: JobCreate | None = None
    async for part, data in MultipartStream(request, settings.max_multipart_parts).parts():
        if part.filename is not None:
            await staged.add(files.check_name(part.filename, field="filename"), data)
        elif part.name != JOB_FIELD:
            raise InvalidParams(
                f"unknown form field {part.name!r}: send the job JSON as '{JOB_FIELD}' and files with "
                "a filename",
                field=part.name,
            )
        elif spec is not None:
            raise InvalidParams(f"more than one '{JOB_FIELD}' field", field=JOB_FIELD)
        else:
            spec = parse_job(await _read_field(data, settings.max_json_bytes))
    if spec is None:
        raise InvalidParams(
            f"a multipart submission needs a '{JOB_FIELD}' field holding the job JSON", field=JOB_FIELD
        )
    return spec


async def _read_field(data: AsyncIterator[bytes], limit: int) -> bytes:
    value = bytearray()
    async for chunk in data:
        value += chunk
        if len(value) > limit:
            raise PayloadTooLarge(
                f"the '{JOB_FIELD}' field is over the limit of {limit} bytes (TASKPOST_MAX_JSON_BYTES)",
                limit=limit,
            )
    return bytes(value)
