"""The API key read from a file (``--api-key-file`` / ``TASKPOST_API_KEY_FILE``).

A key given as ``--api-key`` is on the command line, which every user of the host can read
(``ps``, ``/proc/PID/cmdline``); a file readable by its owner alone, a Docker or Kubernetes
secret for instance, keeps it out of sight. The file holds the key alone; surrounding
whitespace (a final newline) is ignored.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_KEY_FILE_BYTES = 4096
_SETTING = "TASKPOST_API_KEY_FILE / --api-key-file"


def read_api_key_file(path: Path) -> str:
    """The key in ``path``; raises ``ValueError`` saying what is wrong with the file."""
    try:
        with path.expanduser().open("rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{_SETTING}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{_SETTING}: {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{_SETTING}: {path} is not UTF-8 text") from None
    if not key:
        raise ValueError(f"{_SETTING}: {path} is empty")
    if any(ch.isspace() for ch in key):
        raise ValueError(f"{_SETTING}: {path} must hold the key alone (it holds whitespace or several lines)")
    return key


def shared_key_file_warning(path: Path) -> str | None:
    """A warning when users other than the file's owner may read ``path``, else None."""
    if os.name != "posix":
        return None
    try:
        mode = os.stat(path.expanduser()).st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"the API key file {path} is readable by users other than its owner "
        f"(mode {stat.S_IMODE(mode):o}): `chmod 600 {path}`"
    )
