#!/usr/bin/env python3
"""Start a Taskpost HTTP remote worker (agent); works from a checkout without ``pip install``.

    python scripts/start_http_remote_worker.py --server-url http://main-server:8000 \\
        --api-key-file worker.key --worker-type cpu --poll-interval 10 --max-concurrent 2

Give the key in a file (``--api-key-file``, chmod 600) or in ``TASKPOST_API_KEY``: a key given
as ``--api-key`` is visible to every user of the host in ``ps``.

Flags not given fall back to TASKPOST_* environment variables and ``.env``; see
``configs/http-worker.env.example`` and ``docs/agent.md``. ``--check`` only checks that the
coordinator answers and takes the key for an agent (exit 2 with the reason when not); the
start scripts run it first.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _import_main_from_checkout():  # type: ignore[no-untyped-def]
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import taskpost

    if not (REPO_ROOT / "taskpost" / "agent").is_dir():
        # A checkout without symbolic links (Git on Windows): taskpost.agent is ./agent.
        taskpost.__path__.append(str(REPO_ROOT))
    try:
        from taskpost.agent.cli import main
    except ModuleNotFoundError as exc:
        sys.exit(
            f"taskpost's dependencies are not installed ({exc}): run `pip install -e {REPO_ROOT}` "
            "(add [stt,ocr,download,docs] for the media handlers), then start this script again."
        )
    return main


if __name__ == "__main__":
    _import_main_from_checkout()()
