"""Webhooks: a job submitted with ``webhook_url`` is POSTed a signed summary when it ends.

A real coordinator app on each database, delivering to an HTTP receiver on 127.0.0.1 (allowed by
TASKPOST_ALLOW_PRIVATE_WEBHOOKS); its clock follows the wall clock, since retries fall due in
real time. Every wait polls with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskpost.client import InvalidSignature, verify_webhook
from taskpost.protocol import API_PREFIX
from taskpost.server.services.jobs import JOBS
from taskpost.server.settings import Settings
from tests.server.conftest import Api, ManualClock, eventually, make_settings, running_api
from tests.support.webhook_receiver import Delivery, Receiver, receiving

pytestmark = pytest.mark.anyio


class WallClock(ManualClock):
    def __call__(self) -> float:
        return time.time() + (self.now - self.start)

    def __init__(self) -> None:
        super().__init__()
        self.start = self.now


def webhook_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allow_private_webhooks": True,
        "webhook_timeout_s": 2.0,
        "webhook_max_attempts": 3,
        "webhook_retry_base_s": 0.05,
        "webhook_retry_cap_s": 0.2,
        **overrides,
    }
    return make_settings(tmp_path / "data", database_url).model_copy(update=values)


@pytest.fixture
async def hook_api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    async with running_api(webhook_settings(tmp_path, database_url), WallClock()) as api:
        yield api


@pytest.fixture
def receiver() -> Any:
    with receiving([200]) as receiver:
        yield receiver


async def secret(api: Api, headers: dict[str, str] | None = None) -> str:
    response = await api.http.get(f"{API_PREFIX}/webhooks/secret", headers=headers or api.auth("client"))
    assert response.status_code == 200, response.text
    value: str = response.json()["secret"]
    return value


async def run_to_end(api: Api, outcome: str = "succeeded", **extra: Any) -> dict[str, Any]:
    """Claim the one queued job and report ``outcome`` for it; the completion's ack."""
    worker_id = await api.register()
    [task] = await api.claim(worker_id)
    return await api.complete(worker_id, task, outcome, **extra)


async def webhook_state(api: Api, job_id: str) -> tuple[str | None, int]:
    async with api.coord.db.read() as conn:
        row = (
            await conn.execute(
                select(JOBS.c.webhook_state, JOBS.c.webhook_attempts).where(JOBS.c.id == job_id)
            )
        ).one()
    return row.webhook_state, row.webhook_attempts


async def events_of(api: Api, job_id: str, *kinds: str, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        events = [e for e in await api.events(job_id) if e["kind"] in kinds]
        return events if len(events) >= count else None

    return await eventually(found, f"{count} {kinds} events of job {job_id}", timeout_s=20)


def payload(delivery: Delivery, key: str) -> dict[str, Any]:
    return verify_webhook(delivery.body, delivery.headers["X-Taskpost-Signature"], key)


async def test_a_completed_job_is_posted_one_signed_summary(hook_api: Api, receiver: Receiver) -> None:
    job = await hook_api.submit(webhook_url=receiver.url, params={"x": 1})
    ack = await run_to_end(hook_api, result={"text": "hello", "words": 1})
    assert ack["accepted"]
    [delivered] = await events_of(hook_api, job["id"], "webhook_delivered", count=1)
    assert delivered["detail"] == "HTTP 200 (delivery 1 of 3)"
    assert await webhook_state(hook_api, job["id"]) == ("delivered", 1)
    [delivery] = receiver.deliveries
    body = payload(delivery, await secret(hook_api))
    assert delivery.path == "/hook"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["X-Taskpost-Event"] == "job.completed"
    assert delivery.headers["X-Taskpost-Delivery"]
    assert body["event"] == "job.completed"
    assert body["id"] == job["id"] and body["type"] == "noop" and body["namespace"] == "default"
    assert body["state"] == "completed"
    assert body["result"] == {"text": "hello", "words": 1} and body["result_truncated"] is False
    assert body["error"] is None and body["cached_from"] is None
    assert body["url"] == f"{API_PREFIX}/jobs/{job['id']}"
    assert body["finished_at"] == (await hook_api.job(job["id"]))["ended_at"].replace("Z", "+00:00")


async def test_a_signature_made_with_another_secret_or_body_is_refused(
    hook_api: Api, receiver: Receiver
) -> None:
    await hook_api.submit(webhook_url=receiver.url)
    await run_to_end(hook_api)
    [delivery] = await receiver.wait_for(1)
    signature = delivery.headers["X-Taskpost-Signature"]
    key = await secret(hook_api)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(delivery.body, signature, "whsec_not-the-secret")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(delivery.body.replace(b"completed", b"cancelled"), signature, key)
    with pytest.raises(InvalidSignature, match="old"):
        verify_webhook(delivery.body, signature, key, now=time.time() + 3600)


async def test_a_long_result_is_summarised(hook_api: Api, receiver: Receiver) -> None:
    await hook_api.submit(webhook_url=receiver.url)
    await run_to_end(hook_api, result={"text": "word " * 5000, "segments": list(range(500))})
    [delivery] = await receiver.wait_for(1)
    body = payload(delivery, await secret(hook_api))
    assert body["result_truncated"] is True
    assert len(body["result"]["text"]) == 1000 and len(body["result"]["segments"]) == 20
    assert len(delivery.body) < 8192


async def test_failed_deliveries_are_retried_until_acknowledged(tmp_path: Path, database_url: str) -> None:
    with receiving([500, 503, 204]) as receiver:
        async with running_api(webhook_settings(tmp_path, database_url), WallClock()) as api:
            job = await api.submit(webhook_url=receiver.url)
            await run_to_end(api)
            events = await events_of(api, job["id"], "webhook_delivered", "webhook_failed", count=3)
            assert [(e["kind"], e["detail"].split(";")[0]) for e in events] == [
                ("webhook_failed", "HTTP 500 (delivery 1 of 3)"),
                ("webhook_failed", "HTTP 503 (delivery 2 of 3)"),
                ("webhook_delivered", "HTTP 204 (delivery 3 of 3)"),
            ]
            assert "next in" in events[0]["detail"]
            assert await webhook_state(api, job["id"]) == ("delivered", 3)
            key = await secret(api)
    assert len(receiver.deliveries) == 3
    assert len({d.headers["X-Taskpost-Delivery"] for d in receiver.deliveries}) == 1
    assert all(payload(d, key)["id"] == job["id"] for d in receiver.deliveries)


async def test_deliveries_stop_after_the_last_attempt(tmp_path: Path, database_url: str) -> None:
    with receiving([500]) as receiver:
        async with running_api(webhook_settings(tmp_path, database_url), WallClock()) as api:
            job = await api.submit(webhook_url=receiver.url)
            await run_to_end(api)
            events = await events_of(api, job["id"], "webhook_failed", count=3)
            assert events[-1]["detail"] == "HTTP 500 (delivery 3 of 3); giving up"
            assert await webhook_state(api, job["id"]) == ("failed", 3)
    assert len(receiver.deliveries) == 3


async def test_an_unreachable_receiver_is_a_failed_delivery(tmp_path: Path, database_url: str) -> None:
    with receiving([200]) as receiver:
        url = receiver.url  # closed when the block ends: nothing listens there any more
    async with running_api(webhook_settings(tmp_path, database_url), WallClock()) as api:
        job = await api.submit(webhook_url=url)
        await run_to_end(api)
        events = await events_of(api, job["id"], "webhook_failed", count=3)
        assert "ConnectError" in events[0]["detail"]


async def test_cancelled_and_dead_jobs_notify_too(hook_api: Api, receiver: Receiver) -> None:
    cancelled = await hook_api.submit(webhook_url=receiver.url)
    response = await hook_api.http.post(
        f"{API_PREFIX}/jobs/{cancelled['id']}/cancel", headers=hook_api.auth("client")
    )
    assert response.status_code == 200, response.text
    [delivery] = await receiver.wait_for(1)
    key = await secret(hook_api)
    body = payload(delivery, key)
    assert (body["id"], body["state"], body["event"]) == (cancelled["id"], "cancelled", "job.cancelled")

    dead = await hook_api.submit(webhook_url=receiver.url, max_attempts=1)
    await run_to_end(hook_api, "failed", error_message="the file is not audio", error_kind="bad_input")
    deliveries = await receiver.wait_for(2)
    body = payload(deliveries[1], key)
    assert (body["id"], body["state"]) == (dead["id"], "dead")
    assert body["error"] == {"kind": "bad_input", "message": "the file is not audio"}
    assert deliveries[1].headers["X-Taskpost-Event"] == "job.dead"


async def test_jobs_without_a_webhook_are_never_posted(hook_api: Api, receiver: Receiver) -> None:
    plain = await hook_api.submit()
    await run_to_end(hook_api)
    hooked = await hook_api.submit(webhook_url=receiver.url)
    await run_to_end(hook_api)
    [delivery] = await receiver.wait_for(1)
    assert payload(delivery, await secret(hook_api))["id"] == hooked["id"]
    assert await webhook_state(hook_api, plain["id"]) == (None, 0)


async def test_a_slow_receiver_does_not_delay_the_completion(hook_api: Api, receiver: Receiver) -> None:
    receiver.hold.clear()  # the receiver answers only when released
    job = await hook_api.submit(webhook_url=receiver.url)
    worker_id = await hook_api.register()
    [task] = await hook_api.claim(worker_id)
    await hook_api.submit(webhook_url=receiver.url)  # a second job, to show the agent is not held up
    assert (await hook_api.complete(worker_id, task))["accepted"]
    await receiver.wait_for(1)
    assert (await hook_api.job(job["id"]))["state"] == "completed"
    [second] = await hook_api.claim(worker_id)
    assert (await hook_api.complete(worker_id, second))["accepted"]
    assert await webhook_state(hook_api, job["id"]) == ("pending", 0)  # still being delivered
    receiver.hold.set()
    await events_of(hook_api, job["id"], "webhook_delivered", count=1)
    await events_of(hook_api, second["job_id"], "webhook_delivered", count=1)


async def test_a_delivery_cut_by_a_stop_is_made_after_the_restart(tmp_path: Path, database_url: str) -> None:
    settings = webhook_settings(tmp_path, database_url, webhook_timeout_s=0.5)
    with receiving([200]) as receiver:
        receiver.hold.clear()
        async with running_api(settings, WallClock()) as api:
            job = await api.submit(webhook_url=receiver.url)
            await run_to_end(api)
            await receiver.wait_for(1)  # in flight when the coordinator stops
        receiver.hold.set()
        async with running_api(settings, WallClock()) as api:
            await events_of(api, job["id"], "webhook_delivered", count=1)
            assert await webhook_state(api, job["id"]) == ("delivered", 1)
    assert len(receiver.deliveries) == 2


async def test_two_replicas_deliver_each_webhook_once(tmp_path: Path, database_url: str) -> None:
    settings = webhook_settings(tmp_path, database_url)
    with receiving([200]) as receiver:
        async with running_api(settings, WallClock()) as first:
            job_ids = [(await first.submit(webhook_url=receiver.url))["id"] for _ in range(6)]
            async with running_api(settings, WallClock()) as second:
                worker_id = await first.register()
                for task in await first.claim(worker_id, max_tasks=6):
                    await first.complete(worker_id, task)
                for job_id in job_ids:
                    await events_of(second, job_id, "webhook_delivered", count=1)
    assert sorted(payload_id(d) for d in receiver.deliveries) == sorted(job_ids)


def payload_id(delivery: Delivery) -> str:
    value: str = json.loads(delivery.body)["id"]
    return value


async def test_the_secret_is_per_namespace_and_rotates(hook_api: Api, receiver: Receiver) -> None:
    first = await secret(hook_api)
    assert first.startswith("whsec_") and await secret(hook_api) == first
    acme = await hook_api.new_key("client", "acme")
    assert await secret(hook_api, acme) != first
    assert await secret(hook_api, hook_api.auth("admin")) == first  # an admin's default namespace
    response = await hook_api.http.get(
        f"{API_PREFIX}/webhooks/secret?namespace=acme", headers=hook_api.auth("client")
    )
    assert response.status_code == 403
    response = await hook_api.http.get(f"{API_PREFIX}/webhooks/secret", headers=hook_api.auth("worker"))
    assert response.status_code == 403

    response = await hook_api.http.post(
        f"{API_PREFIX}/webhooks/secret/rotate", headers=hook_api.auth("client")
    )
    assert response.status_code == 200, response.text
    rotated = response.json()["secret"]
    assert rotated != first and await secret(hook_api) == rotated
    await hook_api.submit(webhook_url=receiver.url)
    await run_to_end(hook_api)
    [delivery] = await receiver.wait_for(1)
    assert payload(delivery, rotated)["state"] == "completed"
    with pytest.raises(InvalidSignature):
        payload(delivery, first)


async def test_a_private_webhook_url_is_refused_at_submit_unless_allowed(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "data", database_url)
    assert settings.allow_private_webhooks is False
    async with running_api(settings, ManualClock()) as api:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "ftp://example.com/"):
            body = await api.submit(expect=422, webhook_url=url)
            assert body["error"]["code"] == "invalid_params"
            assert "webhook_url" in body["error"]["message"], body


def signed(body: bytes, key: str, at: int) -> str:
    mac = hmac.new(key.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "no X-Taskpost-Signature header"),
        ("v1=abc", "must look like"),
        ("t=1700000000", "must look like"),
        ("t=soon,v1=abc", "not a number"),
        ("t=1700000000,v1=abc", "does not match"),
    ],
)
def test_verify_refuses_malformed_signatures(header: str, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message) as caught:
        verify_webhook(b"{}", header, "whsec_key", now=1700000000)
    assert caught.value.code == "invalid_signature"


def test_verify_checks_the_time_both_ways_and_returns_the_object() -> None:
    body = b'{"id":"j1","state":"completed"}'
    assert verify_webhook(body, signed(body, "k", 1000), "k", now=1299) == {"id": "j1", "state": "completed"}
    with pytest.raises(InvalidSignature, match="301 s old"):
        verify_webhook(body, signed(body, "k", 1000), "k", now=1301)
    with pytest.raises(InvalidSignature, match="in the future"):
        verify_webhook(body, signed(body, "k", 1000), "k", now=600)
    assert verify_webhook(body, signed(body, "k", 1000), "k", tolerance_s=1000, now=1900)["id"] == "j1"
    # one matching v1 among several is enough (a sender may sign with two secrets while rotating)
    header = signed(body, "k", 1000) + ",v1=" + "0" * 64
    assert verify_webhook(body, header.replace("t=1000,", "t=1000,v1=" + "f" * 64 + ","), "k", now=1000)
    with pytest.raises(InvalidSignature, match="not a JSON object"):
        verify_webhook(b"[1]", signed(b"[1]", "k", 1000), "k", now=1000)
