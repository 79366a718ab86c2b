"""Handler threads: reused once idle, never waited for while busy, bounded when idle."""

from __future__ import annotations

import threading
import time

from taskpost.agent.handler_threads import HandlerThreads


def _wait_for(check, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_an_idle_thread_runs_the_next_call() -> None:
    threads = HandlerThreads()
    seen: list[int] = []
    for _ in range(5):
        done = threading.Event()
        threads.run(lambda done=done: (seen.append(threading.get_ident()), done.set()))
        assert done.wait(10)
        _wait_for(lambda: threads.idle == 1, "the thread to be idle again")
    assert len(set(seen)) == 1


def test_a_busy_thread_is_not_waited_for() -> None:
    threads = HandlerThreads()
    release = threading.Event()
    stuck_started = threading.Event()
    threads.run(lambda: (stuck_started.set(), release.wait(30)))
    assert stuck_started.wait(10)
    ran = threading.Event()
    threads.run(ran.set)  # the first thread is still busy: a second one runs this
    assert ran.wait(10)
    release.set()
    _wait_for(lambda: threads.idle == 2, "both threads to be idle")


def test_no_more_than_keep_idle_threads_stay() -> None:
    threads = HandlerThreads(keep_idle=2, name="handler-keep-idle-test")
    release = threading.Event()
    started = threading.Semaphore(0)
    for _ in range(5):
        threads.run(lambda: (started.release(), release.wait(30)))
    for _ in range(5):
        assert started.acquire(timeout=10)
    release.set()
    _wait_for(lambda: threads.idle == 2, "two threads to stay idle")
    _wait_for(
        lambda: sum(t.name == threads.name for t in threading.enumerate()) == 2,
        "the other three threads to end",
    )
