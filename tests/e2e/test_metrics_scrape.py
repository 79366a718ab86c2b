"""A real coordinator and a real agent run 10 noop jobs; Prometheus's scrape then tells it all."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from taskpost.protocol import API_PREFIX
from tests.e2e.conftest import Cluster


def test_a_scrape_after_ten_noop_jobs(cluster: Cluster) -> None:
    metrics_key = cluster.http.post("/keys", json={"role": "metrics"}).json()["key"]
    cluster.start_agent()
    jobs = [cluster.submit(params={"i": i}) for i in range(10)]
    for job in jobs:
        cluster.wait_job(job["id"], {"completed"})

    response = httpx.get(f"{cluster.url}/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
    assert response.status_code == 200, response.text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("taskpost_jobs_completed_total", (("type", "noop"),))] == 10
    assert samples[("taskpost_jobs_claimed_total", (("type", "noop"),))] == 10
    submitted = (("namespace", "default"), ("priority", "default"), ("type", "noop"))
    assert samples[("taskpost_jobs_submitted_total", submitted)] == 10
    assert samples[("taskpost_job_run_seconds_count", (("type", "noop"),))] == 10
    completed = (*submitted[:2], ("state", "completed"), ("type", "noop"))
    assert samples[("taskpost_jobs", completed)] == 10
    assert samples[("taskpost_agents", (("state", "idle"), ("worker_type", "cpu")))] == 1
    claim_route = f"{API_PREFIX}/workers/{{worker_id}}/claim"
    claims = [
        value
        for (name, labels), value in samples.items()
        if name == "taskpost_http_request_duration_seconds_count" and ("route", claim_route) in labels
    ]
    assert sum(claims) >= 1

    # The agent's own key may not scrape.
    refused = httpx.get(f"{cluster.url}/metrics", headers={"Authorization": f"Bearer {cluster.worker_key}"})
    assert refused.status_code == 403
