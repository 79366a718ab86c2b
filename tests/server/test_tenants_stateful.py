"""A stateful test of tenants: two client namespaces, an agent serving all and one restricted.

Hypothesis drives random sequences of submits (with colliding idempotency keys), claims,
output uploads and completions against the real app on a SQLite file; after every step no job,
output, stat or idempotency key may cross namespaces, and the restricted agent must never have
received another namespace's task.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from taskpost.protocol import API_PREFIX
from tests.server.conftest import Api, ManualClock, make_settings, running_api

NAMESPACES = ("acme", "globex")
AGENTS = ("shared", "acme-only")


class Tenants(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        data_dir = Path(self.stack.enter_context(tempfile.TemporaryDirectory())) / "data"
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal("asyncio"))
        self.api: Api = self.stack.enter_context(
            self.portal.wrap_async_context_manager(running_api(make_settings(data_dir), ManualClock()))
        )
        self.clients = {ns: self.call(self.api.new_key("client", ns)) for ns in NAMESPACES}
        self.worker_keys = {
            "shared": self.call(self.api.new_key("worker")),
            "acme-only": self.call(self.api.new_key("worker", "acme")),
        }
        self.agents = {
            name: self.call(self.api.register(headers=key, name=name))
            for name, key in self.worker_keys.items()
        }
        self.namespace_of: dict[str, str] = {}
        self.by_idempotency_key: dict[tuple[str, str], str] = {}
        self.held: dict[str, list[dict[str, Any]]] = {name: [] for name in AGENTS}
        self.completed: set[str] = set()

    def call(self, awaitable: Any) -> Any:
        async def run() -> Any:
            return await awaitable

        return self.portal.call(run)

    def request(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        return self.call(self.api.http.request(method, API_PREFIX + path, headers=headers, **kwargs))

    def teardown(self) -> None:
        self.stack.close()

    @rule(ns=st.sampled_from(NAMESPACES), key=st.sampled_from([None, "k1", "k2"]))
    def submit(self, ns: str, key: str | None) -> None:
        body: dict[str, Any] = {"type": "noop", "params": {"ns": ns}}
        if key:
            body["idempotency_key"] = key
        response = self.request("POST", "/jobs", self.clients[ns], json=body)
        job = response.json()["job"]
        assert job["namespace"] == ns and job["params"] == {"ns": ns}
        existing = self.by_idempotency_key.get((ns, key)) if key else None
        if existing:
            assert response.status_code == 200 and job["id"] == existing
            return
        assert response.status_code == 201, response.text
        assert job["id"] not in self.namespace_of
        self.namespace_of[job["id"]] = ns
        if key:
            self.by_idempotency_key[(ns, key)] = job["id"]

    @rule(agent=st.sampled_from(AGENTS), max_tasks=st.integers(1, 3))
    def claim(self, agent: str, max_tasks: int) -> None:
        tasks = self.call(self.api.claim(self.agents[agent], max_tasks, headers=self.worker_keys[agent]))
        for task in tasks:
            if agent == "acme-only":
                assert self.namespace_of[task["job_id"]] == "acme", "a restricted agent got another's task"
            assert task["params"] == {"ns": self.namespace_of[task["job_id"]]}
        self.held[agent].extend(tasks)

    @rule(agent=st.sampled_from(AGENTS))
    def finish(self, agent: str) -> None:
        key = self.worker_keys[agent]
        for task in self.held[agent]:
            job_id = task["job_id"]
            ns = self.namespace_of[job_id]
            upload = self.request(
                "PUT",
                f"/tasks/{job_id}/outputs/out.txt",
                {**key, "X-Lease-Token": task["lease_token"]},
                content=f"{ns}:{job_id}".encode(),
            )
            assert upload.status_code == 201, upload.text
            ack = self.call(self.api.complete(self.agents[agent], task, headers=key, result={"ns": ns}))
            assert ack["accepted"]
            self.completed.add(job_id)
        self.held[agent] = []

    @invariant()
    def each_namespace_sees_exactly_its_jobs(self) -> None:
        for ns, key in self.clients.items():
            page = self.request("GET", "/jobs?limit=1000", key).json()
            mine = {job_id for job_id, owner in self.namespace_of.items() if owner == ns}
            assert {job["id"] for job in page["jobs"]} == mine
            assert all(job["namespace"] == ns for job in page["jobs"])
            stats = self.request("GET", "/stats", key).json()
            assert sum(stats["totals"].values()) == len(mine)
            assert {agent["name"] for agent in stats["workers"]} == (
                set(AGENTS) if ns == "acme" else {"shared"}
            )

    @invariant()
    def outputs_and_results_stay_home(self) -> None:
        for job_id in self.completed:
            owner = self.namespace_of[job_id]
            for ns, key in self.clients.items():
                output = self.request("GET", f"/jobs/{job_id}/outputs/out.txt", key)
                job = self.request("GET", f"/jobs/{job_id}", key)
                if ns == owner:
                    assert output.content == f"{owner}:{job_id}".encode()
                    assert job.json()["result"] == {"ns": owner}
                else:
                    assert output.status_code == job.status_code == 404


TestTenants = Tenants.TestCase
TestTenants.settings = settings(
    max_examples=12,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
