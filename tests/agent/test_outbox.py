"""Outbox: piggybacking on claims, retries while unreachable, and dropping what cannot be sent."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from taskpost.agent.backoff import Backoff
from taskpost.agent.errors import AuthError, CoordinatorError, CoordinatorUnavailable, LeaseLost
from taskpost.agent.outbox import MAX_PER_REQUEST, Outbox
from taskpost.protocol import CompleteRequest, CompletionAck, Outcome, TaskCompletion

pytestmark = pytest.mark.anyio


def done(job_id: str) -> TaskCompletion:
    return TaskCompletion(job_id=job_id, lease_token=f"t-{job_id}", outcome=Outcome.SUCCEEDED, result=1)


class Coordinator:
    """Answers ``complete`` from a script of outcomes (an exception or None for success)."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.received: list[list[str]] = []

    async def send(self, completions: Sequence[TaskCompletion]) -> list[CompletionAck]:
        self.received.append([c.job_id for c in completions])
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return [CompletionAck(job_id=c.job_id, accepted=True, state="completed") for c in completions]


def later() -> float:
    return time.monotonic() + 60


def test_take_for_claim_drains_and_marks_in_flight() -> None:
    outbox = Outbox(Coordinator().send, Backoff(0.01))
    outbox.add(done("a"), later())
    batch = outbox.take_for_claim()
    assert [item.completion.job_id for item in batch] == ["a"]
    assert len(outbox) == 0
    outbox.add(done("b"), later())
    assert outbox._should_flush()  # a claim is long-polling: the flusher sends b at once
    outbox.claim_sent(batch, None)  # the claim failed: a is pending again, first
    assert [c.job_id for c in outbox.pending()] == ["a", "b"]
    assert not outbox._should_flush()  # the next claim will carry them


def test_take_for_claim_without_carrying() -> None:
    outbox = Outbox(Coordinator().send, Backoff(0.01))
    outbox.add(done("a"), later())
    assert outbox.take_for_claim(carry=False) == []
    assert outbox._should_flush()


async def test_flush_retries_until_the_coordinator_answers() -> None:
    coordinator = Coordinator(CoordinatorUnavailable("down"), CoordinatorUnavailable("down"), None)
    outbox = Outbox(coordinator.send, Backoff(0.001, 0.002))
    outbox.add(done("a"), later())
    assert await outbox.flush(timeout_s=5)
    assert coordinator.received == [["a"], ["a"], ["a"]]


async def test_an_expired_lease_is_still_tried_once() -> None:
    # The local lease clock is a guess (a restarted coordinator extends leases): ask first.
    coordinator = Coordinator()
    outbox = Outbox(coordinator.send, Backoff(0.01))
    outbox.add(done("old"), time.monotonic() - 1)
    assert await outbox.flush_once()
    assert coordinator.received == [["old"]]
    assert outbox.dropped == 0


async def test_expired_leases_are_dropped_after_a_failed_try() -> None:
    coordinator = Coordinator(CoordinatorUnavailable("down"), None)
    outbox = Outbox(coordinator.send, Backoff(0.01))
    outbox.add(done("old"), time.monotonic() - 1)
    outbox.add(done("new"), later())
    assert not await outbox.flush_once()
    assert await outbox.flush_once()
    assert coordinator.received == [["old", "new"], ["new"]]
    assert outbox.dropped == 1


async def test_refused_completions_are_dropped() -> None:
    outbox = Outbox(Coordinator(CoordinatorError("bad", status=422)).send, Backoff(0.01))
    outbox.add(done("a"), later())
    assert await outbox.flush_once()
    assert len(outbox) == 0 and outbox.dropped == 1


async def test_409_on_a_batch_resends_one_by_one() -> None:
    coordinator = Coordinator(LeaseLost("one is stale"), None, LeaseLost("stale"))
    outbox = Outbox(coordinator.send, Backoff(0.01))
    outbox.add(done("a"), later())
    outbox.add(done("b"), later())
    assert await outbox.flush_once()
    assert coordinator.received == [["a", "b"], ["a"], ["b"]]
    assert outbox.dropped == 1


async def test_a_batch_refused_as_a_whole_is_halved_down_to_the_completion_refused() -> None:
    refused = CoordinatorError("bad", status=422)
    coordinator = Coordinator(refused, None, refused, refused)  # c is the bad one
    outbox = Outbox(coordinator.send, Backoff(0.01))
    for job_id in "abcd":
        outbox.add(done(job_id), later())
    assert await outbox.flush_once()
    assert coordinator.received == [["a", "b", "c", "d"], ["a", "b"], ["c", "d"], ["c"], ["d"]]
    assert outbox.dropped == 1 and len(outbox) == 0


async def test_a_request_carries_no_more_completions_than_the_protocol_allows() -> None:
    with pytest.raises(ValidationError):
        CompleteRequest(completions=[done(f"j{n}") for n in range(MAX_PER_REQUEST + 1)])
    coordinator = Coordinator()
    outbox = Outbox(coordinator.send, Backoff(0.01))
    for n in range(MAX_PER_REQUEST + 10):
        outbox.add(done(f"j{n}"), later())
    assert await outbox.flush(timeout_s=5)
    assert [len(batch) for batch in coordinator.received] == [MAX_PER_REQUEST, 10]
    for n in range(MAX_PER_REQUEST + 10):
        outbox.add(done(f"k{n}"), later())
    assert len(outbox.take_for_claim()) == MAX_PER_REQUEST and len(outbox) == 10


async def test_auth_error_keeps_the_completions_and_propagates() -> None:
    outbox = Outbox(Coordinator(AuthError("key")).send, Backoff(0.01))
    outbox.add(done("a"), later())
    with pytest.raises(AuthError):
        await outbox.flush_once()
    assert [c.job_id for c in outbox.pending()] == ["a"]


def test_backoff_is_capped_exponential_with_jitter() -> None:
    backoff = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    low = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.reset()
    assert backoff.peek() == 1.0
