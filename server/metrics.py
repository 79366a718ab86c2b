"""The coordinator's Prometheus metrics, each process with a registry of its own.

Counters and histograms count what happened in this process (Prometheus sums the replicas);
the gauges are set from the jobs and workers tables just before each scrape (see
server.api.routes_metrics), so they read the same on every replica. Service code calls one
method per event, e.g. ``coord.metrics.completed(job_type, run_s)``; docs/metrics.md lists
every metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from taskpost.protocol import JobState, WorkerPublic, WorkerType

JOB_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
HTTP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Work a scaler must provide for: waiting, running, or failed and waiting for its retry.
QUEUE_DEPTH_STATES = frozenset({JobState.QUEUED.value, JobState.PROCESSING.value, JobState.FAILED.value})
AGENT_STATES = ("idle", "busy", "draining")


@dataclass(frozen=True)
class JobCount:
    """How many jobs of one namespace, type, priority and state there are."""

    namespace: str
    type: str
    priority: str
    state: str
    count: int


class Metrics:
    """Every metric of one coordinator process, in its own ``CollectorRegistry``.

    Never the global registry: two apps in one process (tests, several coordinators in one
    interpreter) would otherwise register the same names twice.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Gauge(
            "taskpost_jobs",
            "Jobs in the table by namespace, type, priority and state.",
            ("namespace", "type", "priority", "state"),
            registry=r,
        )
        self.queue_depth = Gauge(
            "taskpost_queue_depth",
            "Jobs of a type that are queued, processing, or failed and waiting for a retry.",
            ("type",),
            registry=r,
        )
        self.agents = Gauge(
            "taskpost_agents", "Agents alive by worker type and state.", ("worker_type", "state"), registry=r
        )
        self._submitted = Counter(
            "taskpost_jobs_submitted",
            "Jobs submitted (new jobs, not idempotent repeats).",
            ("namespace", "type", "priority"),
            registry=r,
        )
        self._claimed = Counter(
            "taskpost_jobs_claimed", "Attempts handed out to agents.", ("type",), registry=r
        )
        self._completed = Counter("taskpost_jobs_completed", "Jobs that succeeded.", ("type",), registry=r)
        self._attempts_failed = Counter(
            "taskpost_attempts_failed",
            "Attempts that failed (handler errors, lease expiries, timeouts), by error kind.",
            ("type", "kind"),
            registry=r,
        )
        self._retries = Counter(
            "taskpost_retries", "Failed attempts whose job will run again.", ("type",), registry=r
        )
        self._lease_expiries = Counter(
            "taskpost_lease_expiries",
            "Attempts ended because their agent stopped heartbeating.",
            ("type",),
            registry=r,
        )
        self._dead = Counter(
            "taskpost_jobs_dead", "Jobs moved to the dead-letter state.", ("type",), registry=r
        )
        self._stale_refused = Counter(
            "taskpost_stale_completions_refused",
            "Completions refused because their lease was no longer live.",
            registry=r,
        )
        self._wait = Histogram(
            "taskpost_job_wait_seconds",
            "From submit to the first claim of a job.",
            ("type",),
            buckets=JOB_SECONDS_BUCKETS,
            registry=r,
        )
        self._run = Histogram(
            "taskpost_job_run_seconds",
            "From claim to success of the attempt that completed a job.",
            ("type",),
            buckets=JOB_SECONDS_BUCKETS,
            registry=r,
        )
        self._http = Histogram(
            "taskpost_http_request_duration_seconds",
            "HTTP requests by route template, method and status (event streams left out).",
            ("route", "method", "status"),
            buckets=HTTP_SECONDS_BUCKETS,
            registry=r,
        )
        self.table_read_at: float | None = None
        """When (time.monotonic) the gauges were last set from the tables."""

    # Events: one call at each place in the services where it happens.

    def submitted(self, namespace: str, job_type: str, priority: str, n: int = 1) -> None:
        self._submitted.labels(namespace, job_type, priority).inc(n)

    def claimed(self, job_type: str, waited_s: float | None) -> None:
        """An attempt handed out; ``waited_s`` since submit on a job's first claim, else None."""
        self._claimed.labels(job_type).inc()
        if waited_s is not None:
            self._wait.labels(job_type).observe(max(waited_s, 0.0))

    def completed(self, job_type: str, run_s: float | None) -> None:
        self._completed.labels(job_type).inc()
        if run_s is not None:
            self._run.labels(job_type).observe(max(run_s, 0.0))

    def attempt_failed(self, job_type: str, kind: str) -> None:
        self._attempts_failed.labels(job_type, kind).inc()

    def retried(self, job_type: str) -> None:
        self._retries.labels(job_type).inc()

    def lease_expired(self, job_type: str) -> None:
        self._lease_expiries.labels(job_type).inc()

    def dead(self, job_type: str) -> None:
        self._dead.labels(job_type).inc()

    def stale_completion_refused(self) -> None:
        self._stale_refused.inc()

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._http.labels(route, method, str(status)).observe(seconds)

    def failed_attempt_went(self, job_type: str, kind: str, state: str) -> None:
        """A failed attempt, and where its job went (server.services.transitions.after_failure)."""
        self.attempt_failed(job_type, kind)
        if state in (JobState.QUEUED.value, JobState.FAILED.value):
            self.retried(job_type)
        elif state == JobState.DEAD.value:
            self.dead(job_type)

    # Gauges: set from the tables before a scrape.

    def set_tables(self, counts: Iterable[JobCount], agents: Iterable[WorkerPublic], read_at: float) -> None:
        """Replace the table gauges; label sets that are gone (a purged type) go with them."""
        self.jobs.clear()
        self.queue_depth.clear()
        depth: dict[str, int] = {}
        for entry in counts:
            self.jobs.labels(entry.namespace, entry.type, entry.priority, entry.state).set(entry.count)
            in_queue = entry.count if entry.state in QUEUE_DEPTH_STATES else 0
            depth[entry.type] = depth.get(entry.type, 0) + in_queue
        for job_type, count in depth.items():
            self.queue_depth.labels(job_type).set(count)
        self.agents.clear()
        by_state = {(worker_type.value, state): 0 for worker_type in WorkerType for state in AGENT_STATES}
        for agent in agents:
            if agent.alive:
                by_state[(agent.worker_type.value, _agent_state(agent))] += 1
        for (worker_type, state), count in by_state.items():
            self.agents.labels(worker_type, state).set(count)
        self.table_read_at = read_at

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


def _agent_state(agent: WorkerPublic) -> str:
    if agent.draining:
        return "draining"
    return "busy" if agent.running_tasks > 0 else "idle"
