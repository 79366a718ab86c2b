#!/usr/bin/env python3
"""Start a Taskpost HTTP remote worker (agent); works from a checkout without ``pip install``.

    python scripts/start_http_remote_worker.py --server-url http://main-server:8000 \\
        --api-key-file worker.key --worker-type cpu --poll-interval 10 --max-concurrent 2

Give the key in a file (``--api-key-file``, chmod 600) or in ``TASKPOST_API_KEY``: a key given
as ``--api-key`` is visible to every user of the host in ``ps``.

Flags not given fall back to TASKPOST_* environment variables and ``.env``; see
``configs/http-worker.env.example`` and ``docs/agent.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from agent.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
