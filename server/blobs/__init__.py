"""Blob stores keep job inputs and outputs; the database keeps only their names and digests."""

from taskpost.server.blobs.base import BlobStore, StoredBlob
from taskpost.server.blobs.factory import blob_store_from_settings
from taskpost.server.blobs.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "StoredBlob", "blob_store_from_settings"]
