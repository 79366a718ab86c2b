"""``taskpost submit``: upload inputs, submit, and optionally wait for the end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from taskpost.remote import CliError, RemoteCoordinator

_TERMINAL = {"completed", "dead", "cancelled"}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--param {pair!r} must look like key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def submit_job(
    remote: RemoteCoordinator,
    job_type: str,
    params: list[str],
    files: list[Path],
    priority: str,
    wait: bool,
    output_dir: Path | None,
    wait_timeout_s: float = 3600.0,
) -> Any:
    inputs = []
    for path in files:
        if not path.is_file():
            raise CliError(f"no such file: {path}")
        with path.open("rb") as handle:
            uploaded = remote.request("POST", "/uploads", params={"name": path.name}, content=handle)
        inputs.append({"name": path.name, "upload_id": uploaded["upload_id"]})
    spec = {"type": job_type, "params": parse_params(params), "priority": priority, "inputs": inputs}
    job = remote.request("POST", "/jobs", json=spec)["job"]
    if not wait:
        return job
    deadline = time.monotonic() + wait_timeout_s
    while job["state"] not in _TERMINAL:
        if time.monotonic() > deadline:
            raise CliError(f"job {job['id']} still {job['state']} after {wait_timeout_s:.0f} s")
        time.sleep(0.2)
        job = remote.request("GET", f"/jobs/{job['id']}")
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for output in job["outputs"]:
            remote.download(f"/jobs/{job['id']}/outputs/{output['name']}", output_dir / output["name"])
    return job
