"""The agent's footprint on disk: a private work root, and private folders and files under it.

Inputs are job data that other users of the host must not read, and a work root at a
predictable path in a shared folder (``/tmp/taskpost-agent``) can be planted in advance by
another user: as a symlink that sends the agent's writes elsewhere, or as a folder they own.
So the default root lies in the user's own runtime or cache directory, every folder the agent
creates is 0700 and every file 0600, and a root that is a symlink, belongs to someone else or
is writable by others is refused before anything is written into it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from taskpost.agent.errors import ConfigError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_CHECKS_OWNERSHIP = os.name == "posix"
"""Owners and mode bits mean something on POSIX systems only."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_SETTING = "TASKPOST_WORK_DIR / --work-dir"


def default_work_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``) ``/taskpost/agent``.

    Not ``$XDG_RUNTIME_DIR``: it is usually a small in-memory filesystem, and media inputs can be
    gigabytes."""
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "taskpost" / "agent"


def make_private_dirs(path: Path) -> bool:
    """Create ``path`` and its missing parents, each 0700; an existing folder is left as it is.

    True when this call created ``path`` itself.
    """
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        return False
    except FileNotFoundError:
        make_private_dirs(path.parent)
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
        except FileExistsError:
            return False
    return True


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing as a new 0600 file (truncated if it exists; never a symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "wb")


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` as a 0600 file."""
    with open_private(path) as fh:
        fh.write(text.encode("utf-8"))


def prepare_work_dir(configured: Path | None) -> Path:
    """The work root (``configured``, else ``default_work_dir()``), created 0700 when missing.

    Raises ``ConfigError`` for a root that is a symlink, is not a directory, belongs to another
    user or is writable by its group or by others.
    """
    path = (configured or default_work_dir()).expanduser().absolute()
    try:
        created = make_private_dirs(path)
        info = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"cannot use the work dir {path}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise _unsafe(path, "is a symlink (a planted link could send the agent's files elsewhere)")
    if not stat.S_ISDIR(info.st_mode):
        raise _unsafe(path, "is not a directory")
    if not _CHECKS_OWNERSHIP:
        return path
    if info.st_uid != os.geteuid():
        raise _unsafe(path, f"belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})")
    if created:  # exactly 0700, whatever the umask took away
        os.chmod(path, PRIVATE_DIR_MODE)
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise _unsafe(path, f"is writable by users other than its owner (mode {mode:o}); `chmod 700` it")
    return path


def _unsafe(path: Path, why: str) -> ConfigError:
    return ConfigError(f"work dir {path} {why}; set another with {_SETTING}")
