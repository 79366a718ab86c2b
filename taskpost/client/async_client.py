"""``AsyncClient``: the asyncio client of a Taskpost coordinator (the same API as ``Client``)."""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
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
from taskpost.client.sync import WAIT_STEP_S, WaitCallback, progress_key
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


class AsyncClient:
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.server_url = server_url.rstrip("/")
        self._timeout = timeout
        self._retry = (retries, first_backoff_s, max_backoff_s)
        self._http = httpx.AsyncClient(
            base_url=self.server_url, headers=headers, timeout=timeout, verify=verify, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _retrying(self, call: Call) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**retries.policy(call, *self._retry))

    async def _send(self, call: Call) -> httpx.Response:
        async def attempt() -> httpx.Response:
            with ExitStack() as stack:
                response = await self._http.request(
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
            return await self._retrying(call)(attempt)
        except httpx.TransportError as exc:
            raise retries.unreachable(exc, self.server_url) from exc

    async def submit(
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
        return requests.parsed(JobSubmitted, await self._send(requests.submit(spec, files)))

    async def submit_many(self, jobs: Sequence[JobCreate]) -> JobBatchSubmitted:
        """Submit several jobs in one request (build each with ``taskpost.client.job_spec``)."""
        return requests.parsed(JobBatchSubmitted, await self._send(requests.submit_many(jobs)))

    async def get(self, job_id: str, *, wait_s: float = 0.0, seen_state: JobState | None = None) -> JobPublic:
        """The job; with ``wait_s``, once it changes state (from ``seen_state`` if given) or after
        that many seconds."""
        return requests.parsed(JobPublic, await self._send(requests.get(job_id, wait_s, seen_state)))

    def stream_events(
        self, job_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[JobStreamEvent]:
        """The job's events as they happen (state, progress, partial output) until it ends.

        Reconnects by itself after a dropped connection, from the last event it yielded.
        """
        return streams.astream(self._http, streams.job_path(job_id), last_event_id=last_event_id)

    def stream_feed(
        self,
        *,
        type: str | None = None,
        state: JobState | str | None = None,
        last_event_id: int | None = None,
    ) -> AsyncIterator[JobStreamEvent]:
        """Every event of the key's namespace as it happens (never ends); deduplicated by id."""
        return streams.astream(
            self._http,
            streams.FEED_PATH,
            params=streams.feed_params(type, state),
            last_event_id=last_event_id,
            stop_at_end=False,
        )

    # The same signature as Client.wait: the timeout becomes WaitTimedOut, carrying the last state.
    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        on_update: WaitCallback | None = None,
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
            job = await self.get(job_id, wait_s=hold, seen_state=last_state)
            last_state = job.state
            if on_update is not None and seen != (seen := progress_key(job)):
                on_update(job)
            if job.state.is_terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(job)

    async def wait_chain(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> builtins.list[JobPublic]:
        """The job and every job its ``then`` steps created, once all have ended (parents first);
        WaitTimedOut when ``timeout`` passes first. A job that did not complete creates none."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ended: builtins.list[JobPublic] = []
        pending = [job_id]
        while pending:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            job = await self.wait(pending.pop(0), left)
            ended.append(job)
            pending.extend(job.children)
        return ended

    async def result(self, job_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The result of the job once it completed; JobFailed if it ended any other way."""
        job = await self.wait(job_id, timeout)
        if job.state is not JobState.COMPLETED:
            raise JobFailed(job)
        return job.result

    async def download_outputs(self, job_id: str, directory: Path | str) -> list[Path]:
        """Every output of the job into ``directory``, streamed; each SHA-256 is checked."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        job = await self.get(job_id)
        return [await self._download(job_id, output, directory) for output in job.outputs]

    async def _download(self, job_id: str, output: Any, directory: Path) -> Path:
        path = downloads.target(directory, output)
        call = requests.output(job_id, output.name)

        async def attempt() -> Path:
            async with self._http.stream(call.method, call.url) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                digest = hashlib.sha256()
                with downloads.partial(path).open("wb") as out:
                    async for chunk in response.aiter_bytes():
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
            return await self._retrying(call)(attempt)
        except httpx.TransportError as exc:
            raise retries.unreachable(exc, self.server_url) from exc

    async def cancel(self, job_id: str) -> JobPublic:
        return requests.parsed(JobPublic, await self._send(requests.cancel(job_id)))

    async def requeue(self, job_id: str) -> JobPublic:
        return requests.parsed(JobPublic, await self._send(requests.requeue(job_id)))

    async def list(
        self, state: JobState | str | None = None, type: str | None = None, *, page_size: int = 100
    ) -> AsyncIterator[JobPublic]:
        """Jobs newest first, fetched a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page = requests.parsed(
                JobPage, await self._send(requests.list_page(state, type, page_size, cursor))
            )
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def list_page(
        self,
        state: JobState | str | None = None,
        type: str | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first; its ``next_cursor`` asks for the next (None: the last)."""
        return requests.parsed(JobPage, await self._send(requests.list_page(state, type, limit, cursor)))

    async def events(self, job_id: str) -> builtins.list[JobEventPublic]:
        """What happened to the job: claims, failures, lease expiries, stale completions..."""
        return requests.parsed_list(JobEventPublic, await self._send(requests.events(job_id)))

    async def stats(self, namespace: str | None = None) -> Stats:
        """Jobs per type, priority and state, and the agents (an admin key: ``namespace``, or all)."""
        return requests.parsed(Stats, await self._send(requests.stats(namespace)))

    async def types(self) -> JobTypeList:
        """The job types agents have registered: their parameters' schema, and who serves them."""
        return requests.parsed(JobTypeList, await self._send(requests.types()))

    # Admin operations (an admin key).

    async def create_key(
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
        return requests.parsed(KeyCreated, await self._send(call))

    async def rotate_key(self, key: str, grace_s: float | None = None) -> KeyCreated:
        """A new secret for the key (by id or prefix), shown in this answer only; the old one keeps
        working for ``grace_s`` seconds (default: the coordinator's, a day)."""
        return requests.parsed(KeyCreated, await self._send(requests.rotate_key(key, grace_s)))

    async def list_keys(self) -> builtins.list[KeyPublic]:
        return requests.parsed_list(KeyPublic, await self._send(requests.list_keys()))

    async def revoke_key(self, key: str) -> KeyPublic:
        """Revoke a key by its id or prefix; it stops working at once."""
        return requests.parsed(KeyPublic, await self._send(requests.revoke_key(key)))

    async def workers(self, *, include_gone: bool = False) -> builtins.list[WorkerPublic]:
        """The registered agents (with ``include_gone``, those that stopped too)."""
        return requests.parsed_list(WorkerPublic, await self._send(requests.workers(include_gone)))

    async def drain_worker(self, worker_id: str) -> WorkerPublic:
        """Let the agent finish what it runs and claim nothing new."""
        return requests.parsed(WorkerPublic, await self._send(requests.drain_worker(worker_id)))

    async def undrain_worker(self, worker_id: str) -> WorkerPublic:
        """Let a drained agent claim tasks again."""
        return requests.parsed(WorkerPublic, await self._send(requests.undrain_worker(worker_id)))

    async def requeue_jobs(
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
        return requests.parsed(BulkResult, await self._send(call))

    async def empty_queue(
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
        return requests.parsed(BulkResult, await self._send(call))

    async def purge(
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
        return requests.parsed(PurgeResult, await self._send(call))
