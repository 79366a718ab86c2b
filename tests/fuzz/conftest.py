"""A live coordinator per role, fuzzed by schemathesis from its own ``/openapi.json``.

Each role (no key, a client key, a worker key, an admin key) gets a coordinator process of its
own, so that what one role's run does (an admin revoking keys, a worker deregistering) cannot
change what another role's run sees. The coordinator's log is read at the end of each role: a
request may not make it log an error, even one it answered correctly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.schemas import BaseSchema

from taskpost.launch import LocalCoordinator
from taskpost.protocol import API_PREFIX

ROLES = ("anonymous", "client", "worker", "admin")

MAX_EXAMPLES = 25
"""Fuzzed cases per operation and role; the coverage phase adds its own, one per boundary."""
STATEFUL_SCENARIOS = 15
"""Sequences of linked calls (submit, then read, cancel, requeue...) per role."""

COORDINATOR_SETTINGS = {
    # Every request without a key is a failed authentication: the fuzzer sends thousands from
    # one address, far past the rate limit that would otherwise answer them 429.
    "TASKPOST_AUTH_FAILURE_BURST": "1000000",
    "TASKPOST_AUTH_FAILURE_RATE_PER_S": "1000000",
    "TASKPOST_LONG_POLL_S": "0.2",
}

DOMAIN_REFUSALS = {
    "POST /api/v1/jobs": "a job type no agent has declared is 422 unknown_job_type",
    "POST /api/v1/jobs/batch": "a job type no agent has declared is 422 unknown_job_type",
    "POST /api/v1/jobs/{job_id}": "a job type no agent has declared is 422 unknown_job_type",
    "POST /api/v1/workers/register": "a param schema for a type the agent does not run, or one that is"
    " not a valid JSON Schema, is 422",
    "POST /api/v1/uploads": "an X-Content-SHA256 that is not the body's digest is 422",
    "POST /api/v1/keys": "task_types on a key that is not a worker key is 422",
    "POST /api/v1/keys/{key_id}/rotate": "the configured key (TASKPOST_ADMIN_KEY) is not rotated: 422",
    "PUT /api/v1/tasks/{job_id}/outputs/{name}": "an X-Content-SHA256 that is not the body's digest is 422",
}
"""Operations whose schema-valid requests may still be refused with 422, and why: the document
cannot say which job types exist now, nor which digest a body has, nor which key is configured
(and the role-dependent rule on task_types is not in KeyCreate's schema)."""


@dataclass(frozen=True)
class LiveCoordinator:
    url: str
    keys: dict[str, str]
    """role -> API key, one of each role."""
    process: LocalCoordinator


@pytest.fixture(scope="module", params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def live(role: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCoordinator]:
    coordinator = LocalCoordinator(
        tmp_path_factory.mktemp(f"fuzz-{role}"), log_level="info", settings=COORDINATOR_SETTINGS
    ).start()
    try:
        keys = {"admin": coordinator.admin_key}
        admin = {"Authorization": f"Bearer {coordinator.admin_key}"}
        for made in ("client", "worker"):
            response = httpx.post(f"{coordinator.url}{API_PREFIX}/keys", json={"role": made}, headers=admin)
            response.raise_for_status()
            keys[made] = response.json()["key"]
        yield LiveCoordinator(coordinator.url, keys, coordinator)
    finally:
        coordinator.stop()
    log = coordinator.process.output()
    problems = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert not problems, "the coordinator logged errors while fuzzed:\n" + log[-5000:]


def fuzz_config(key: str | None) -> schemathesis.Config:
    """Every check on, bounded and reproducible: the same cases on every run. The key is given as
    the document's bearer scheme, so that the auth checks know it and can leave it out."""
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"bearerKey": {"bearer": key}}} if key else {},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {"enabled": True},
            # Half the job types and task types are ones that exist: jobs get created, and the
            # calls that follow a submit (read, events, cancel, requeue, claim) act on real jobs.
            "dictionaries": {"job_types": {"values": ["noop"]}},
            "parameters": {
                path: {"dictionary": "job_types", "probability": 0.5}
                for path in ("body.type", "body.jobs[*].type", "body.job.type", "body.task_types[*]")
            },
            "operations": [
                {
                    "include-name": name,
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                        }
                    },
                }
                for name in DOMAIN_REFUSALS
            ],
        }
    )


@pytest.fixture(scope="module")
def fuzz_schema(live: LiveCoordinator, role: str) -> BaseSchema:
    key = None if role == "anonymous" else live.keys[role]
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=fuzz_config(key))


def stateful_settings() -> Any:
    import hypothesis

    return hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        stateful_step_count=6,
    )
