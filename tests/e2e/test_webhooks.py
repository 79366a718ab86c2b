"""Webhooks through real processes: a coordinator started by the CLI with the setting that allows
a receiver on 127.0.0.1, and an agent that runs the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskpost.client import verify_webhook
from tests.e2e.conftest import Cluster, wait_until
from tests.support.webhook_receiver import receiving


def test_a_job_an_agent_ran_is_notified_signed_after_a_retry(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    cluster.coordinator.env.update(
        {"TASKPOST_ALLOW_PRIVATE_WEBHOOKS": "true", "TASKPOST_WEBHOOK_RETRY_BASE_S": "0.2"}
    )
    cluster.start_coordinator()
    try:
        with receiving([503, 200]) as receiver:
            cluster.start_agent()
            cluster.wait_agents(1)
            job = cluster.submit(params={"greeting": "hello"}, webhook_url=receiver.url)
            done = cluster.wait_job(job["id"], {"completed"})

            def webhook_events() -> list[dict[str, Any]] | None:
                found = [e for e in cluster.events(job["id"]) if e["kind"].startswith("webhook_")]
                return found if len(found) >= 2 else None

            events = wait_until(webhook_events, 30, "two webhook events")
            secret = cluster.http.get("/webhooks/secret").json()["secret"]
        assert [e["kind"] for e in events] == ["webhook_failed", "webhook_delivered"]
        assert events[0]["detail"].startswith("HTTP 503 (delivery 1 of 8)")
        first, second = receiver.deliveries
        payloads = [
            verify_webhook(d.body, d.headers["X-Taskpost-Signature"], secret) for d in (first, second)
        ]
        assert payloads[0]["id"] == payloads[1]["id"] == job["id"]
        assert payloads[1]["state"] == "completed" and payloads[1]["result"] == done["result"]
        assert first.headers["X-Taskpost-Delivery"] == second.headers["X-Taskpost-Delivery"]
    finally:
        cluster.stop()
