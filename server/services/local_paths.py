"""Jobs that read a file on an agent's machine (``params.local_path``): which agents may run them."""

from __future__ import annotations

from pathlib import PurePosixPath

from taskpost.protocol import FILES_ROOT_LABEL, LOCAL_PATH_PARAM, JobCreate
from taskpost.server.errors import InvalidParams


def check(spec: JobCreate) -> None:
    """A job that names a file on an agent's machine must route to agents holding its root."""
    local_path = spec.params.get(LOCAL_PATH_PARAM)
    if local_path is None:
        return
    if not isinstance(local_path, str) or not PurePosixPath(local_path).is_absolute():
        raise InvalidParams("params.local_path must be an absolute path", field="params.local_path")
    roots = [
        label.removeprefix(FILES_ROOT_LABEL) for label in spec.labels if label.startswith(FILES_ROOT_LABEL)
    ]
    if not any(PurePosixPath(local_path).is_relative_to(root) for root in roots):
        raise InvalidParams(
            f"a job with local_path must carry the label {FILES_ROOT_LABEL}<dir> of an agent's files root"
            f' that contains it, e.g. labels: ["{FILES_ROOT_LABEL}{PurePosixPath(local_path).parent}"]',
            field="labels",
        )
