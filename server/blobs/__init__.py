"""Blob stores keep job inputs and outputs; the database keeps only their names and digests."""

from server.blobs.base import BlobStore, StoredBlob
from server.blobs.factory import blob_store_from_settings
from server.blobs.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "StoredBlob", "blob_store_from_settings"]
