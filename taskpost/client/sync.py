"""``Client``: the blocking client of a Taskpost coordinator."""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import tenacity

from taskpost.client import downloads, requests, retries, streams
from taskpost.client.errors import JobFailed, ServerUnavailable, WaitTimedOut, error_from_response
from taskpost.client.requests import Call, FileSource
from taskpost.protocol import (
    SHA256_HEADER,
    ChainStep,
    JobBatchSubmitted,
    JobCreate,
    JobEventPublic,
    JobPage,
    JobPublic,
    JobState,
    JobStreamEvent,
    JobSubmitted,
    JobTypeList,
    KeyCreated,
    KeyPublic,
    Priority,
    RetryPolicy,
    Role,
    Stats,
    WorkerPublic,
    WorkerType,
)
from taskpost.protocol.admin import BulkResult, FinishedState, PurgeResult, RequeueableState

WAIT_STEP_S = 20.0
"""How long one ``GET ?wait_s=`` of ``wait`` asks the coordinator to hold (it may hold less)."""

WaitCallback = Callable[[JobPublic], None]
"""What ``wait(on_update=...)`` calls with the job as it moves (to show progress)."""


def progress_key(job: JobPublic) -> tuple[object, ...]:
    """What ``on_update`` tells apart: a new state, a new attempt, another agent."""
    return (job.state, job.attempts, job.worker_id)


class Client:
    """A coordinator's API for programs: submit jobs, wait for them, read results and outputs.

    Connection errors and 503 answers are retried with backoff (honouring Retry-After); a submit
    always carries an idempotency key, so a retried one never creates a second job.
    """

    def __init__(
        self,
        server_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        first_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.server_url = server_url.rstrip("/")
        self._timeout = timeout
        self._retry = (retries, first_backoff_s, max_backoff_s)
        self._http = httpx.Client(
            base_url=self.server_url, headers=headers, timeout=timeout, verify=verify, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _retrying(self, call: Call) -> tenacity.Retrying:
        return tenacity.Retrying(**retries.policy(call, *self._retry))

    def _send(self, call: Call) -> httpx.Response:
        def attempt() -> httpx.Response:
            with ExitStack() as stack:
                response = self._http.request(
                    call.method,
                    call.url,
                    params=call.query or None,
                    json=call.json,
                    files=call.multipart(stack) or None,
                    timeout=self._timeout + call.extra_wait_s,
                )
            error = error_from_response(response) if response.is_error else None
            if isinstance(error, ServerUnavailable):
                raise error
            return response

        try:
            return self._retrying(call)(attempt)
        except httpx.TransportError as exc:
            raise retries.unreachable(exc, self.server_url) from exc

    def submit(
        self,
        type: str,
        params: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, FileSource] | None = None,
        priority: Priority | str = Priority.DEFAULT,
        timeout_s: float | None = None,
        total_timeout_s: float | None = None,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        idempotency_key: str | None = None,
        labels: Sequence[str] = (),
        worker_type: WorkerType | str | None = None,
        meta: Mapping[str, Any] | None = None,
        run_at: datetime | None = None,
        delay_s: float | None = None,
        cache: bool | None = None,
        webhook_url: str | None = None,
        then: Sequence[ChainStep | Mapping[str, Any]] = (),
    ) -> JobSubmitted:
        """Submit one job; ``files`` maps input names to paths or bytes, uploaded with it.

        The keywords are ``JobCreate``'s fields (see ``taskpost.client.job_spec``); the answer's
        ``warnings`` say what may keep the job waiting (no agent serves its type, ...).
        """
        spec = requests.job_spec(
            type,
            params,
            priority=priority,
            timeout_s=timeout_s,
            total_timeout_s=total_timeout_s,
            max_attempts=max_attempts,
            retry=retry,
            idempotency_key=idempotency_key,
            labels=labels,
            worker_type=worker_type,
            meta=meta,
            run_at=run_at,
            delay_s=delay_s,
            cache=cache,
            webhook_url=webhook_url,
            then=then,
        )
        return requests.parsed(JobSubmitted, self._send(requests.submit(spec, files)))

    def submit_many(self, jobs: Sequence[JobCreate]) -> JobBatchSubmitted:
        """Submit several jobs in one request (build each with ``taskpost.client.job_spec``)."""
        return requests.parsed(JobBatchSubmitted, self._send(requests.submit_many(jobs)))

    def get(self, job_id: str, *, wait_s: float = 0.0, seen_state: JobState | None = None) -> JobPublic:
        """The job; with ``wait_s``, once it changes state (from ``seen_state`` if given) or after
        that many seconds."""
        return requests.parsed(JobPublic, self._send(requests.get(job_id, wait_s, seen_state)))

    def stream_events(self, job_id: str, *, last_event_id: int | None = None) -> Iterator[JobStreamEvent]:
        """The job's events as they happen (state, progress, partial output) until it ends.

        Reconnects by itself after a dropped connection, from the last event it yielded.
        """
        return streams.stream(self._http, streams.job_path(job_id), last_event_id=last_event_id)

    def stream_feed(
        self,
        *,
        type: str | None = None,
        state: JobState | str | None = None,
        last_event_id: int | None = None,
    ) -> Iterator[JobStreamEvent]:
        """Every event of the key's namespace as it happens (never ends); deduplicated by id."""
        return streams.stream(
            self._http,
            streams.FEED_PATH,
            params=streams.feed_params(type, state),
            last_event_id=last_event_id,
            stop_at_end=False,
        )

    def wait(
        self, job_id: str, timeout: float | None = None, *, on_update: WaitCallback | None = None
    ) -> JobPublic:
        """The job once it has ended (completed, dead or cancelled); WaitTimedOut after ``timeout``.

        ``on_update`` sees the job first and then each time its state, attempt or agent changes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[object, ...] | None = None
        last_state: JobState | None = None
        while True:
            remaining = WAIT_STEP_S if deadline is None else min(WAIT_STEP_S, deadline - time.monotonic())
            # With on_update, the first look is immediate: the caller sees the job as it is now.
            hold = 0.0 if on_update is not None and seen is None else max(remaining, 0.0)
            job = self.get(job_id, wait_s=hold, seen_state=last_state)
            last_state = job.state
            if on_update is not None and seen != (seen := progress_key(job)):
                on_update(job)
            if job.state.is_terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(job)

    def wait_chain(self, job_id: str, timeout: float | None = None) -> builtins.list[JobPublic]:
        """The job and every job its ``then`` steps created, once all have ended (parents first);
        WaitTimedOut when ``timeout`` passes first. A job that did not complete creates none."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ended: builtins.list[JobPublic] = []
        pending = [job_id]
        while pending:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            job = self.wait(pending.pop(0), left)
            ended.append(job)
            pending.extend(job.children)
        return ended

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """The result of the job once it completed; JobFailed if it ended any other way."""
        job = self.wait(job_id, timeout)
        if job.state is not JobState.COMPLETED:
            raise JobFailed(job)
        return job.result

    def download_outputs(self, job_id: str, directory: Path | str) -> list[Path]:
        """Every output of the job into ``directory``, streamed; each SHA-256 is checked."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [self._download(job_id, output, directory) for output in self.get(job_id).outputs]

    def _download(self, job_id: str, output: Any, directory: Path) -> Path:
        path = downloads.target(directory, output)
        call = requests.output(job_id, output.name)

        def attempt() -> Path:
            with self._http.stream(call.method, call.url) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                digest = hashlib.sha256()
                with downloads.partial(path).open("wb") as out:
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        out.write(chunk)
                announced = response.headers.get(SHA256_HEADER)
            try:
                downloads.check(output, announced, digest)
            except Exception:
                downloads.partial(path).unlink(missing_ok=True)
                raise
            downloads.partial(path).replace(path)
            return path

        try:
            return self._retrying(call)(attempt)
        except httpx.TransportError as exc:
            raise retries.unreachable(exc, self.server_url) from exc

    def cancel(self, job_id: str) -> JobPublic:
        return requests.parsed(JobPublic, self._send(requests.cancel(job_id)))

    def requeue(self, job_id: str) -> JobPublic:
        return requests.parsed(JobPublic, self._send(requests.requeue(job_id)))

    def list(
        self, state: JobState | str | None = None, type: str | None = None, *, page_size: int = 100
    ) -> Iterator[JobPublic]:
        """Jobs newest first, fetched a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page = requests.parsed(JobPage, self._send(requests.list_page(state, type, page_size, cursor)))
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def list_page(
        self,
        state: JobState | str | None = None,
        type: str | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first; its ``next_cursor`` asks for the next (None: the last)."""
        return requests.parsed(JobPage, self._send(requests.list_page(state, type, limit, cursor)))

    def events(self, job_id: str) -> builtins.list[JobEventPublic]:
        """What happened to the job: claims, failures, lease expiries, stale completions..."""
        return requests.parsed_list(JobEventPublic, self._send(requests.events(job_id)))

    def stats(self, namespace: str | None = None) -> Stats:
        """Jobs per type, priority and state, and the agents (an admin key: ``namespace``, or all)."""
        return requests.parsed(Stats, self._send(requests.stats(namespace)))

    def types(self) -> JobTypeList:
        """The job types agents have registered: their parameters' schema, and who serves them."""
        return requests.parsed(JobTypeList, self._send(requests.types()))

    # Admin operations (an admin key).

    def create_key(
        self,
        role: Role | str,
        name: str | None = None,
        namespaces: Sequence[str] = (),
        *,
        expires_in_s: float | None = None,
        task_types: Sequence[str] = (),
    ) -> KeyCreated:
        """A new API key; its secret (``.key``) is in this answer only.

        ``expires_in_s``: it stops working that many seconds from now (401 ``key_expired``);
        ``task_types``: a worker key may register and claim only these job types.
        """
        call = requests.create_key(role, name, namespaces, expires_in_s, task_types)
        return requests.parsed(KeyCreated, self._send(call))

    def rotate_key(self, key: str, grace_s: float | None = None) -> KeyCreated:
        """A new secret for the key (by id or prefix), shown in this answer only; the old one keeps
        working for ``grace_s`` seconds (default: the coordinator's, a day)."""
        return requests.parsed(KeyCreated, self._send(requests.rotate_key(key, grace_s)))

    def list_keys(self) -> builtins.list[KeyPublic]:
        return requests.parsed_list(KeyPublic, self._send(requests.list_keys()))

    def revoke_key(self, key: str) -> KeyPublic:
        """Revoke a key by its id or prefix; it stops working at once."""
        return requests.parsed(KeyPublic, self._send(requests.revoke_key(key)))

    def workers(self, *, include_gone: bool = False) -> builtins.list[WorkerPublic]:
        """The registered agents (with ``include_gone``, those that stopped too)."""
        return requests.parsed_list(WorkerPublic, self._send(requests.workers(include_gone)))

    def drain_worker(self, worker_id: str) -> WorkerPublic:
        """Let the agent finish what it runs and claim nothing new."""
        return requests.parsed(WorkerPublic, self._send(requests.drain_worker(worker_id)))

    def undrain_worker(self, worker_id: str) -> WorkerPublic:
        """Let a drained agent claim tasks again."""
        return requests.parsed(WorkerPublic, self._send(requests.undrain_worker(worker_id)))

    def requeue_jobs(
        self,
        states: Sequence[RequeueableState | str],
        type: str | None = None,
        *,
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> BulkResult:
        """Put failed, dead or cancelled jobs back in the queue, like ``rq requeue --all``: at most
        1000 a call (call again while the answer says ``more``); ``dry_run`` only counts them."""
        call = requests.requeue_jobs(states, type, dry_run, namespace)
        return requests.parsed(BulkResult, self._send(call))

    def empty_queue(
        self,
        type: str,
        *,
        include_scheduled: bool = False,
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> BulkResult:
        """Cancel the queued jobs of a type (and its scheduled ones with ``include_scheduled``), like
        ``rq empty``: at most 1000 a call, ``more`` when there are others."""
        call = requests.empty_queue(type, include_scheduled, dry_run, namespace)
        return requests.parsed(BulkResult, self._send(call))

    def purge(
        self,
        states: Sequence[FinishedState | str],
        older_than_s: float,
        *,
        type: str | None = None,
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> PurgeResult:
        """Delete finished jobs that ended ``older_than_s`` ago or earlier (one request: call again
        while the answer says ``more``); ``dry_run`` only counts them."""
        call = requests.purge(states, older_than_s, type, dry_run, namespace)
        return requests.parsed(PurgeResult, self._send(call))
