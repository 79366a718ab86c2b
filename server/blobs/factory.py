"""The blob store the settings name: a local directory, or an S3 bucket."""

from __future__ import annotations

from taskpost.server.blobs.base import BlobStore
from taskpost.server.blobs.local import LocalBlobStore
from taskpost.server.settings import Settings


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """``S3BlobStore`` when ``blob_url`` is set (aiobotocore imported only then), else ``LocalBlobStore``."""
    if settings.blob_url is None:
        return LocalBlobStore(settings.resolved_blob_dir())
    from taskpost.server.blobs.s3 import S3BlobStore, S3Location, S3Options

    secret = settings.s3_secret_access_key
    options = S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
        addressing_style=settings.s3_addressing_style,
        part_size=settings.s3_part_size_bytes,
        max_connections=settings.s3_max_connections,
    )
    return S3BlobStore(S3Location.parse(settings.blob_url), options)
