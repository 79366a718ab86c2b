"""``taskpost agent --check``: is the coordinator there, and does it take this key for an agent?

The agent itself retries an unreachable coordinator for ever (the right thing for a service);
a person starting it by hand wants the opposite, one clear line at once. The start scripts run
this check first.

The role is probed with ``DELETE /workers/<a worker id that cannot exist>``: an agent key (or an
admin key) gets ``404 worker_not_found``, any other role ``403``, an unknown key ``401``, and
nothing is changed on the coordinator.
"""

from __future__ import annotations

import uuid

import httpx

from taskpost.protocol import API_PREFIX

TIMEOUT_S = 10.0


class PreflightFailure(Exception):
    """Why the agent would not work with this server URL and key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        """One of ``unreachable``, ``unhealthy``, ``wrong_key``, ``wrong_role``, ``unexpected``."""


def check_coordinator(server_url: str, api_key: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Raise ``PreflightFailure`` unless the coordinator is healthy and accepts ``api_key`` for an
    agent; returns the coordinator's version."""
    base = server_url.rstrip("/")
    with httpx.Client(timeout=timeout_s) as http:
        version = _health(http, base)
        _role(http, base, api_key)
    return version


def _health(http: httpx.Client, base: str) -> str:
    try:
        response = http.get(f"{base}/health")
    except httpx.HTTPError as exc:
        raise PreflightFailure(
            "unreachable",
            f"cannot reach the coordinator at {base} ({type(exc).__name__}: {exc}); "
            "check TASKPOST_SERVER_URL and that the coordinator is running",
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "database" not in body:
        raise PreflightFailure(
            "unreachable",
            f"{base}/health answered {response.status_code} but is not a Taskpost coordinator; "
            "check TASKPOST_SERVER_URL (the base URL, without /api/v1)",
        )
    if response.status_code != 200:
        raise PreflightFailure(
            "unhealthy", f"the coordinator at {base} is unhealthy: database {body.get('database')}"
        )
    return str(body.get("version", "?"))


def _role(http: httpx.Client, base: str, api_key: str) -> None:
    probe = f"{base}{API_PREFIX}/workers/preflight-{uuid.uuid4().hex}"
    try:
        response = http.delete(probe, headers={"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as exc:
        raise PreflightFailure("unreachable", f"cannot reach {base}: {exc}") from None
    if response.status_code == 404:
        return
    if response.status_code == 401:
        raise PreflightFailure(
            "wrong_key",
            f"the coordinator at {base} refused the API key (401: {_message(response)}); "
            "check TASKPOST_API_KEY or TASKPOST_API_KEY_FILE",
        )
    if response.status_code == 403:
        raise PreflightFailure(
            "wrong_role",
            f"the API key is valid but not for an agent (403: {_message(response)}); "
            "create one with `taskpost keys create --role worker`",
        )
    raise PreflightFailure(
        "unexpected", f"{base} answered {response.status_code} to the key check: {_message(response)}"
    )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
