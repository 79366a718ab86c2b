"""``GET /metrics`` after a known workload: every counter and gauge, who may scrape, and two apps
in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskpost.protocol import API_PREFIX
from taskpost.server.app import create_app
from taskpost.server.coordinator import Coordinator
from taskpost.server.settings import Settings
from tests.server.conftest import Api

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def of(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of one series name, by label set."""
    return {labels: value for (sample_name, labels), value in samples.items() if sample_name == name}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def scrape(api: Api, headers: dict[str, str]) -> Samples:
    response = await api.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def run_workload(api: Api) -> dict[str, Any]:
    """5 submitted over 2 types, 4 claimed, 2 completed, 1 failed and set to retry, 1 lease expiry
    that makes its job dead, and that job's late completion refused as stale."""
    worker = await api.register(task_types=["noop", "resize"])
    jobs = [
        await api.submit(type="noop", priority="high"),
        await api.submit(type="noop"),
        await api.submit(type="noop"),
        await api.submit(type="resize", max_attempts=1),
        await api.submit(type="resize"),
    ]
    api.clock.advance(5)
    by_id = {task["job_id"]: task for task in await api.claim(worker, max_tasks=4)}
    tasks = [by_id[job["id"]] for job in jobs[:4]]  # the last one submitted stays queued
    api.clock.advance(2)
    for task in tasks[:2]:
        assert (await api.complete(worker, task))["state"] == "completed"
    failed = await api.complete(
        worker, tasks[2], outcome="failed", error_kind="boom", error_message="no", retry_delay_s=600.0
    )
    assert failed["state"] == "failed"
    api.clock.advance(api.coord.settings.lease_s + 1)
    assert await api.reap() == 1
    late = await api.complete(worker, tasks[3])
    assert late["accepted"] is False and late["code"] == "stale_lease"
    return {"worker": worker}


async def test_counters_and_gauges_after_a_known_workload(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    await run_workload(api)
    samples = await scrape(api, metrics_key)

    assert of(samples, "taskpost_jobs_submitted_total") == {
        labels(namespace="default", type="noop", priority="high"): 1,
        labels(namespace="default", type="noop", priority="default"): 2,
        labels(namespace="default", type="resize", priority="default"): 2,
    }
    assert of(samples, "taskpost_jobs_claimed_total") == {labels(type="noop"): 3, labels(type="resize"): 1}
    assert of(samples, "taskpost_jobs_completed_total") == {labels(type="noop"): 2}
    assert of(samples, "taskpost_attempts_failed_total") == {
        labels(type="noop", kind="boom"): 1,
        labels(type="resize", kind="lease_expired"): 1,
    }
    assert of(samples, "taskpost_retries_total") == {labels(type="noop"): 1}
    assert of(samples, "taskpost_lease_expiries_total") == {labels(type="resize"): 1}
    assert of(samples, "taskpost_jobs_dead_total") == {labels(type="resize"): 1}
    assert of(samples, "taskpost_stale_completions_refused_total") == {labels(): 1}
    # The clock moved 2 s between the claim and the two completions.
    assert of(samples, "taskpost_job_run_seconds_count") == {labels(type="noop"): 2}
    assert of(samples, "taskpost_job_run_seconds_sum") == {labels(type="noop"): pytest.approx(4.0)}

    assert of(samples, "taskpost_jobs") == {
        labels(namespace="default", type="noop", priority="high", state="completed"): 1,
        labels(namespace="default", type="noop", priority="default", state="completed"): 1,
        labels(namespace="default", type="noop", priority="default", state="failed"): 1,
        labels(namespace="default", type="resize", priority="default", state="dead"): 1,
        labels(namespace="default", type="resize", priority="default", state="queued"): 1,
    }
    # The noop waiting for its retry, and the resize job still queued.
    assert of(samples, "taskpost_queue_depth") == {labels(type="noop"): 1, labels(type="resize"): 1}
    agents = of(samples, "taskpost_agents")
    assert agents[labels(worker_type="cpu", state="idle")] == 1
    assert sum(agents.values()) == 1

    claim_route = f"{API_PREFIX}/workers/{{worker_id}}/claim"
    http = of(samples, "taskpost_http_request_duration_seconds_count")
    assert http[labels(route=claim_route, method="POST", status="200")] == 1
    assert http[labels(route=f"{API_PREFIX}/jobs", method="POST", status="201")] == 5
    assert not [key for key in http if ("route", f"{API_PREFIX}/jobs/{{job_id}}") in key]


async def test_the_wait_from_submit_to_first_claim(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    await run_workload(api)
    samples = await scrape(api, metrics_key)
    # Claimed 5 s after submit; the retry of the failed job is not a first claim.
    assert of(samples, "taskpost_job_wait_seconds_count") == {
        labels(type="noop"): 3,
        labels(type="resize"): 1,
    }
    assert of(samples, "taskpost_job_wait_seconds_sum") == {
        labels(type="noop"): pytest.approx(15.0),
        labels(type="resize"): pytest.approx(5.0),
    }


async def test_the_reaper_counts_timeouts_and_jobs_out_of_time(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    worker = await api.register()
    await api.submit(timeout_s=1.0)
    await api.submit(total_timeout_s=5.0)
    assert len(await api.claim(worker)) == 1
    api.clock.advance(1 + api.coord.settings.timeout_grace_s + 1)  # within the lease
    assert await api.reap() == 2
    samples = await scrape(api, metrics_key)
    assert of(samples, "taskpost_attempts_failed_total") == {labels(type="noop", kind="timeout"): 1}
    assert of(samples, "taskpost_retries_total") == {labels(type="noop"): 1}
    assert of(samples, "taskpost_jobs_dead_total") == {labels(type="noop"): 1}
    assert of(samples, "taskpost_lease_expiries_total") == {}


async def test_agents_by_worker_type_and_state(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    busy = await api.register(worker_type="gpu")
    await api.register(worker_type="gpu")
    draining = await api.register(worker_type="cpu")
    gone = await api.register(worker_type="cpu")
    response = await api.http.post(f"{API_PREFIX}/workers/{draining}/drain", headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    response = await api.http.delete(f"{API_PREFIX}/workers/{gone}", headers=api.auth("worker"))
    assert response.status_code in (200, 204), response.text
    await api.submit()
    assert len(await api.claim(busy)) == 1
    agents = of(await scrape(api, metrics_key), "taskpost_agents")
    assert agents == {
        labels(worker_type="gpu", state="busy"): 1,
        labels(worker_type="gpu", state="idle"): 1,
        labels(worker_type="gpu", state="draining"): 0,
        labels(worker_type="cpu", state="busy"): 0,
        labels(worker_type="cpu", state="idle"): 0,
        labels(worker_type="cpu", state="draining"): 1,
    }


async def test_table_gauges_are_reread_after_the_ttl(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    await api.submit()
    queued = labels(namespace="default", type="noop", priority="default", state="queued")
    assert of(await scrape(api, metrics_key), "taskpost_jobs") == {queued: 1}
    await api.submit()
    # Within metrics_counts_ttl_s (2 s) the counts read before are served again.
    assert of(await scrape(api, metrics_key), "taskpost_jobs") == {queued: 1}
    api.coord.settings.metrics_counts_ttl_s = 0
    assert of(await scrape(api, metrics_key), "taskpost_jobs") == {queued: 2}
    worker = await api.register()
    await api.claim(worker, max_tasks=2)
    gauges = await scrape(api, metrics_key)
    # A label set with no jobs left is gone, not left at its last value.
    processing = labels(namespace="default", type="noop", priority="default", state="processing")
    assert of(gauges, "taskpost_jobs") == {processing: 2}
    assert of(gauges, "taskpost_queue_depth") == {labels(type="noop"): 2}


async def test_who_may_scrape(api: Api) -> None:
    metrics_key = await api.new_key("metrics")
    assert (await api.http.get("/metrics", headers=metrics_key)).status_code == 200
    assert (await api.http.get("/metrics", headers=api.auth("admin"))).status_code == 200
    x_api_key = {"X-API-Key": metrics_key["Authorization"].removeprefix("Bearer ")}
    assert (await api.http.get("/metrics", headers=x_api_key)).status_code == 200
    for role in ("client", "worker"):
        response = await api.http.get("/metrics", headers=api.auth(role))
        assert response.status_code == 403, role
        assert response.json()["error"]["code"] == "forbidden"
        assert "metrics or admin key" in response.json()["error"]["message"]
    for headers in ({}, {"Authorization": "Bearer tp_m_not-a-key-that-exists"}):
        response = await api.http.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await api.http.post(
        f"{API_PREFIX}/keys", json={"role": "metrics", "expires_in_s": 60.0}, headers=api.auth("admin")
    )
    expiring = {"Authorization": f"Bearer {response.json()['key']}"}
    assert (await api.http.get("/metrics", headers=expiring)).status_code == 200
    api.clock.advance(61)
    response = await api.http.get("/metrics", headers=expiring)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "key_expired"
    # A metrics key reads /metrics and nothing else.
    response = await api.http.get(f"{API_PREFIX}/jobs", headers=metrics_key)
    assert response.status_code == 403
    assert "/metrics" not in api.app.openapi()["paths"]


async def test_wrong_keys_on_metrics_run_into_the_failure_limit(api: Api) -> None:
    api.app.state.metrics_auth_limiter.burst = 2.0
    wrong = {"Authorization": "Bearer tp_m_wrong"}
    assert [(await api.http.get("/metrics", headers=wrong)).status_code for _ in range(3)] == [401, 401, 429]
    response = await api.http.get("/metrics", headers=api.auth("admin"))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_two_apps_in_one_process_have_registries_of_their_own(tmp_path: Path) -> None:
    coords = []
    for name in ("a", "b"):
        coord = Coordinator.from_settings(Settings(_env_file=None, data_dir=tmp_path / name))
        create_app(coord.settings, coord)  # a shared registry would raise "Duplicated timeseries"
        coords.append(coord)
    coords[0].metrics.submitted("default", "noop", "default")
    first, second = (parse(coord.metrics.exposition().decode()) for coord in coords)
    name = "taskpost_jobs_submitted_total"
    assert of(first, name) == {labels(namespace="default", type="noop", priority="default"): 1}
    assert of(second, name) == {}
