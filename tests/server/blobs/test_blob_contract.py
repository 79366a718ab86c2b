"""The BlobStore contract (server/blobs/base.py), run against every store: a directory and S3.

The S3 store runs against moto's S3 server on 127.0.0.1 (tests/support/s3.py), with the
store's default part size, so that a 20 MiB blob goes up as a multipart upload of 3 parts.
"""

from __future__ import annotations

import hashlib
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from taskpost.server.blobs import BlobStore, LocalBlobStore, StoredBlob
from taskpost.server.blobs.s3 import S3BlobStore
from taskpost.server.errors import PayloadTooLarge
from tests.server.blobs.streams import BLOCK, MiB, expected_digest, stream
from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.anyio

PART = 8 * MiB


@dataclass
class StoreUnderTest:
    store: BlobStore
    leftovers: Callable[[], list[str]]
    """Everything the store holds: finished blobs, and anything half-written."""
    multipart_etag: Callable[[str], str] | None = None


@pytest.fixture(params=["local", "s3"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreUnderTest]:
    if request.param == "local":
        root = tmp_path / "blobs"
        under_test = StoreUnderTest(
            LocalBlobStore(root), lambda: sorted(str(p) for p in root.rglob("*") if p.is_file())
        )
    else:
        pytest.importorskip("aiobotocore", reason="the S3 store needs the extra s3")
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        location = bucket.location("prefix/")
        under_test = StoreUnderTest(
            S3BlobStore(location, bucket.server.options(part_size=PART)),
            lambda: bucket.object_keys() + [f"(incomplete) {key}" for key in bucket.multipart_uploads()],
            lambda key: bucket.etag(location.prefix + key),
        )
    yield under_test
    await under_test.store.aclose()


def new_key() -> str:
    return uuid.uuid4().hex


async def read_back(store: BlobStore, key: str) -> tuple[int, str]:
    """Size and sha256 of a stored blob, read as a stream."""
    digest, size = hashlib.sha256(), 0
    async for chunk in store.open(key):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 1000, 3 * MiB + 5], ids=["empty", "one-byte", "small", "3MiB"])
async def test_a_blob_comes_back_as_it_went_in(subject: StoreUnderTest, size: int) -> None:
    key = new_key()
    stored = await subject.store.put(key, stream(size, BLOCK[:333]), max_bytes=size)  # exactly the limit
    assert stored == StoredBlob(key=key, size=size, sha256=expected_digest(size, BLOCK[:333]))
    assert await read_back(subject.store, key) == (size, stored.sha256)
    assert len(subject.leftovers()) == 1


@pytest.mark.parametrize("size", [20 * MiB, 2 * PART], ids=["20MiB", "exactly-2-parts"])
async def test_a_blob_larger_than_a_part_streams_both_ways(subject: StoreUnderTest, size: int) -> None:
    key = new_key()
    stored = await subject.store.put(key, stream(size), max_bytes=100 * MiB)
    assert (stored.size, stored.sha256) == (size, expected_digest(size))
    assert await read_back(subject.store, key) == (size, stored.sha256)
    if subject.multipart_etag is not None:  # S3: sent as a multipart upload of ceil(size / PART) parts
        assert subject.multipart_etag(key).endswith(f"-{-(-size // PART)}")
    assert len(subject.leftovers()) == 1


@pytest.mark.parametrize("size", [11, 12 * MiB], ids=["small", "past-one-part"])
async def test_a_blob_over_the_limit_is_refused_and_leaves_nothing(
    subject: StoreUnderTest, size: int
) -> None:
    key = new_key()
    with pytest.raises(PayloadTooLarge) as refused:
        await subject.store.put(key, stream(size), max_bytes=size - 1)
    assert refused.value.details == {"limit": size - 1}
    assert subject.leftovers() == []
    with pytest.raises(FileNotFoundError):
        await read_back(subject.store, key)


async def test_a_stream_that_fails_midway_leaves_nothing(subject: StoreUnderTest) -> None:
    async def failing() -> AsyncIterator[bytes]:
        async for chunk in stream(PART + MiB):
            yield chunk
        raise ConnectionResetError("the client went away")

    key = new_key()
    with pytest.raises(ConnectionResetError):
        await subject.store.put(key, failing(), max_bytes=100 * MiB)
    assert subject.leftovers() == []


async def test_a_cancelled_put_leaves_nothing(subject: StoreUnderTest) -> None:
    one_part_sent = anyio.Event()

    async def stalls_after_a_part() -> AsyncIterator[bytes]:
        async for chunk in stream(PART + MiB):
            yield chunk
        one_part_sent.set()  # the store asks for more only once the first part is sent
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    key = new_key()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: subject.store.put(key, stalls_after_a_part(), max_bytes=100 * MiB))
        with anyio.fail_after(30):
            await one_part_sent.wait()
        tasks.cancel_scope.cancel()
    assert subject.leftovers() == []


async def test_delete_removes_a_blob_and_a_missing_one_is_fine(subject: StoreUnderTest) -> None:
    key = new_key()
    await subject.store.put(key, stream(10), max_bytes=10)
    await subject.store.delete(key)
    assert subject.leftovers() == []
    await subject.store.delete(key)
    await subject.store.delete(new_key())


async def test_opening_a_missing_blob_names_it(subject: StoreUnderTest) -> None:
    key = new_key()
    with pytest.raises(FileNotFoundError, match=key):
        await read_back(subject.store, key)


async def test_only_a_local_store_has_paths(subject: StoreUnderTest) -> None:
    key = new_key()
    await subject.store.put(key, stream(5), max_bytes=5)
    path = subject.store.local_path(key)
    if isinstance(subject.store, LocalBlobStore):
        assert path is not None and (await anyio.Path(path).stat()).st_size == 5
    else:
        assert path is None


async def test_keys_must_be_letters_and_digits(subject: StoreUnderTest) -> None:
    for bad in ("../escape", "a/b", ""):
        with pytest.raises(ValueError, match="invalid blob key"):
            await subject.store.put(bad, stream(1), max_bytes=1)
    assert subject.leftovers() == []


async def test_memory_stays_flat_while_a_large_blob_streams(subject: StoreUnderTest) -> None:
    size = 48 * MiB
    key = new_key()
    await subject.store.put(new_key(), stream(10), max_bytes=10)  # connections and caches made once
    with _traced_peak() as peak:
        stored = await subject.store.put(key, stream(size), max_bytes=size)
        assert await read_back(subject.store, key) == (size, stored.sha256)
    # A directory holds about one chunk at a time, S3 about two parts (one sent, the next arriving).
    assert peak() < size / 2, f"peak {peak() / MiB:.1f} MiB for a {size / MiB:.0f} MiB blob"


@contextmanager
def _traced_peak() -> Iterator[Callable[[], int]]:
    """Trace allocations inside the block; yields a function that returns the peak in bytes."""
    tracemalloc.start()
    peak = 0
    try:
        yield lambda: peak
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
