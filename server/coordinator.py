"""The coordinator's state, handed to every service function."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.blobs import BlobStore, LocalBlobStore
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


@dataclass
class Coordinator:
    settings: Settings
    db: Database
    blobs: BlobStore
    notifier: Notifier
    clock: Callable[[], float] = time.time
    workers: dict[str, WorkerRoute] = field(default_factory=dict)
    known_job_types: set[str] = field(default_factory=lambda: set(BUILTIN_JOB_TYPES))

    @classmethod
    def from_settings(cls, settings: Settings) -> Coordinator:
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url()),
            blobs=LocalBlobStore(settings.resolved_blob_dir()),
            notifier=LocalNotifier(),
        )
