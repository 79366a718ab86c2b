"""A blob store on S3 or an S3-compatible service (MinIO, Ceph, R2, ...): the extra ``s3``.

Bytes stream both ways: an upload is sent in parts of ``part_size`` bytes as they arrive (a
multipart upload, or one PUT when the whole blob fits in one part), and a download is read back
in chunks. An upload holds about two parts in memory: the one being sent, and the next
arriving, joined into one buffer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import anyio

from taskpost.server.blobs.base import Measured, StoredBlob
from taskpost.server.errors import PayloadTooLarge

if TYPE_CHECKING:
    from aiobotocore.session import AioSession
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

AddressingStyle = Literal["auto", "virtual", "path"]

MIN_PART_SIZE = 5 * 1024**2
"""S3's smallest part (all but the last); the largest is 5 GiB."""
MAX_PARTS = 10_000
_ABORT_TIMEOUT_S = 30.0
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class S3Location:
    """Where blobs go: a bucket and a key prefix (empty, or ending in ``/``)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix``; ValueError otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"a blob URL looks like s3://bucket/prefix, not {url!r}")
        prefix = parts.path.strip("/")
        return cls(bucket=parts.netloc, prefix=f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class S3Options:
    """How to reach the service; credentials left unset come from botocore's usual chain."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: AddressingStyle = "auto"
    part_size: int = 8 * 1024**2
    max_connections: int = 64
    """Requests in flight at once: each upload or download in progress holds a connection."""


def _new_session() -> AioSession:
    try:
        from aiobotocore.session import get_session
    except ImportError as error:
        raise ImportError(
            "TASKPOST_BLOB_URL names an S3 bucket, which needs aiobotocore: pip install 'taskpost[s3]'"
        ) from error
    return get_session()


class S3BlobStore:
    """Blobs as objects ``<prefix><key>`` in one bucket.

    One client (one connection pool) serves every operation; it is made on first use, in the
    event loop that uses it, and closed by ``aclose``.
    """

    def __init__(self, location: S3Location, options: S3Options) -> None:
        if options.part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes, not {options.part_size}")
        self._session = _new_session()
        from aiobotocore.config import AioConfig

        self.location = location
        self.options = options
        self._config = AioConfig(
            s3={"addressing_style": options.addressing_style},
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=options.max_connections,
        )
        self._client: S3Client | None = None
        self._client_context: AbstractAsyncContextManager[S3Client] | None = None
        self._client_lock = anyio.Lock()

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                context = self._session.create_client(
                    "s3",
                    region_name=self.options.region,
                    endpoint_url=self.options.endpoint_url,
                    aws_access_key_id=self.options.access_key_id,
                    aws_secret_access_key=self.options.secret_access_key,
                    config=self._config,
                )
                self._client = await context.__aenter__()
                self._client_context = context
            return self._client

    async def aclose(self) -> None:
        """Close the client's connections; a later operation opens a new client."""
        context, self._client, self._client_context = self._client_context, None, None
        if context is not None:
            await context.__aexit__(None, None, None)

    def _object_key(self, key: str) -> str:
        if not key.isalnum() or not key.isascii():
            raise ValueError(f"invalid blob key {key!r}")
        return self.location.prefix + key

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        object_key = self._object_key(key)
        s3 = await self._s3()
        upload = _MultipartUpload(s3, self.location.bucket, object_key)
        measured = Measured(max_bytes)
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in measured.through(chunks):
                pending.append(chunk)
                pending_size += len(chunk)
                while pending_size >= self.options.part_size:
                    part, pending = _split(pending, self.options.part_size)
                    pending_size -= len(part)
                    await upload.send(part)
            body = b"".join(pending)
            pending.clear()
            if upload.started:
                if body:
                    await upload.send(body)
                await upload.complete()
            else:
                await s3.put_object(Bucket=self.location.bucket, Key=object_key, Body=body)
        except BaseException:
            await upload.abort()
            raise
        return measured.stored(key)

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        from botocore.exceptions import ClientError

        object_key = self._object_key(key)
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self.location.bucket, Key=object_key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise FileNotFoundError(f"no blob {key!r} in {self.location}") from None
            raise
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk

    async def delete(self, key: str) -> None:
        # S3's DeleteObject succeeds whether or not the object exists.
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.location.bucket, Key=self._object_key(key))

    def local_path(self, key: str) -> str | None:
        return None


class _MultipartUpload:
    """One object's multipart upload, begun when its first part is ready."""

    def __init__(self, s3: S3Client, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []

    @property
    def started(self) -> bool:
        return self.upload_id is not None

    async def send(self, body: bytes) -> None:
        if self.upload_id is None:
            created = await self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise PayloadTooLarge(f"more than {MAX_PARTS} parts: raise TASKPOST_S3_PART_SIZE_BYTES")
        sent = await self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def complete(self) -> None:
        assert self.upload_id is not None
        await self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.upload_id = None

    async def abort(self) -> None:
        """Discard the parts sent so far; runs even while the upload's task is being cancelled.

        A failure here is logged, not raised: the error that made the upload fail is the one
        the caller needs (and a bucket lifecycle rule can still reclaim the parts)."""
        if self.upload_id is None:
            return
        upload_id, self.upload_id = self.upload_id, None
        with anyio.move_on_after(_ABORT_TIMEOUT_S, shield=True) as scope:
            try:
                await self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            except Exception:
                logger.warning(
                    "could not abort the multipart upload of %s",
                    self.key,
                    exc_info=True,
                    extra={"action": "s3_abort", "upload_id": upload_id},
                )
        if scope.cancelled_caught:
            logger.warning(
                "no answer in %s s aborting the multipart upload of %s",
                _ABORT_TIMEOUT_S,
                self.key,
                extra={"action": "s3_abort", "upload_id": upload_id},
            )


def _split(chunks: list[bytes], size: int) -> tuple[bytes, list[bytes]]:
    """The first ``size`` bytes of ``chunks`` joined, and the chunks after them.

    Only the chunk that straddles the boundary is cut, so the part is the one full copy made."""
    head: list[bytes] = []
    taken = 0
    for index, chunk in enumerate(chunks):
        if taken + len(chunk) <= size:
            head.append(chunk)
            taken += len(chunk)
            continue
        cut = size - taken
        head.append(chunk[:cut])
        return b"".join(head), [chunk[cut:], *chunks[index + 1 :]]
    return b"".join(head), []
