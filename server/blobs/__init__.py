"""Blob stores keep job inputs and outputs; the database keeps only their names and digests."""

from server.blobs.base import BlobStore, StoredBlob
from server.blobs.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "StoredBlob"]
