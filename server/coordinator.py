"""The coordinator's state, handed to every service function."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.blobs import BlobStore, blob_store_from_settings
from server.db.database import Database
from server.notifier import LocalNotifier, Notifier
from server.settings import Settings

# Built-in job types and the extra an agent needs to advertise each.
BUILTIN_JOB_TYPES = {
    "noop": None,
    "transcription": "stt",
    "ocr": "ocr",
    "url_audio": "download",
    "document": "docs",
}


@dataclass
class WorkerRoute:
    """What the claim query needs to know about an agent, cached per process."""

    worker_id: str
    key_id: str | None
    worker_type: str
    task_types: tuple[str, ...]
    labels: tuple[str, ...]
    draining: bool = False
    last_seen_written: float = 0.0
    types_seen_written: float = 0.0


@dataclass
class Coordinator:
    settings: Settings
    db: Database
    blobs: BlobStore
    notifier: Notifier
    clock: Callable[[], float] = time.time
    workers: dict[str, WorkerRoute] = field(default_factory=dict)
    job_types_seen: dict[str, float] = field(default_factory=dict)
    """When an agent last declared each job type, as last read from the job_types table."""
    verified_keys: dict[str, str] = field(default_factory=dict)
    """SHA-256 of a raw configured key -> the id of the key whose scrypt hash it matched.

    An immutable fact, kept so that the slow hash runs once per process; whether that key is
    still valid (revoked or not) is read from the database on every request."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Coordinator:
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url()),
            blobs=blob_store_from_settings(settings),
            notifier=LocalNotifier(),
        )
