"""Jobs that read a file on an agent's machine (``params.local_path``): which agents may run them.

An absolute path goes to agents whose files root contains it. A submit may name that root with
the label ``files-root:<dir>`` (checked as it is); otherwise the coordinator adds the label of a
root that live agents serving the type have, the one most of them share. A relative path is
looked up by the agents under each of their roots: one that lacks the file declines the task
(server.services.declines), and the job goes to the next. Either way, a path that no live agent
can read is refused at submit (422 naming ``params.local_path``) rather than left to wait.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from taskpost.protocol import FILES_ROOT_LABEL, LOCAL_PATH_PARAM, JobCreate, Role
from taskpost.protocol.fields import MAX_LABELS
from taskpost.server.coordinator import Coordinator
from taskpost.server.errors import InvalidParams
from taskpost.server.services.keys import KEYS, namespaces_of
from taskpost.server.services.workers import WORKERS

FIELD = f"params.{LOCAL_PATH_PARAM}"


def roots_of(labels: Iterable[str]) -> list[str]:
    """The files roots named by ``files-root:<dir>`` labels."""
    prefix = FILES_ROOT_LABEL
    return sorted({label.removeprefix(prefix) for label in labels if label.startswith(prefix)})


@dataclass(frozen=True)
class LiveAgent:
    """An agent that may claim now: registered, seen lately, not draining."""

    worker_id: str
    worker_type: str
    task_types: frozenset[str]
    labels: frozenset[str]
    namespaces: tuple[str, ...]
    """Those its key may claim from; empty: all."""

    @property
    def roots(self) -> list[str]:
        return roots_of(self.labels)

    def can_run(self, job_type: str, worker_type: str | None, labels: Iterable[str], namespace: str) -> bool:
        """Whether the claim would hand this agent a job of these facts."""
        return (
            job_type in self.task_types
            and (worker_type is None or worker_type == self.worker_type)
            and self.labels.issuperset(labels)
            and (not self.namespaces or namespace in self.namespaces)
        )


async def live_agents(conn: AsyncConnection, coord: Coordinator, now: float) -> list[LiveAgent]:
    """The agents that claim now, on every replica (read from the workers table)."""
    query = (
        select(
            WORKERS.c.id,
            WORKERS.c.worker_type,
            WORKERS.c.task_types,
            WORKERS.c.labels,
            KEYS.c.role,
            KEYS.c.namespaces,
        )
        .outerjoin(KEYS, KEYS.c.id == WORKERS.c.key_id)
        .where(
            WORKERS.c.deregistered_at.is_(None),
            WORKERS.c.draining.is_(False),
            WORKERS.c.last_seen_at > now - coord.settings.worker_gone_s,
        )
    )
    agents = []
    for row in await conn.execute(query):
        # An agent registered with an admin key claims from every namespace.
        served = namespaces_of(Role.WORKER, row.namespaces) if row.role == Role.WORKER.value else ()
        agents.append(
            LiveAgent(row.id, row.worker_type, frozenset(row.task_types), frozenset(row.labels), served)
        )
    return agents


def _path_of(spec: JobCreate) -> PurePosixPath | None:
    """The job's ``local_path``, if it has one that can be routed; InvalidParams otherwise."""
    value = spec.params.get(LOCAL_PATH_PARAM)
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidParams(f"{FIELD} must be a non-empty path", field=FIELD)
    if value.startswith("~"):
        raise InvalidParams(
            f"{FIELD} must be absolute or relative to an agent's files root; '~' is not expanded",
            field=FIELD,
        )
    return PurePosixPath(value)


def _check_explicit_root(spec: JobCreate, path: PurePosixPath, roots: list[str]) -> None:
    if not any(path.is_relative_to(root) for root in roots):
        raise InvalidParams(
            f"a job with local_path must carry the label {FILES_ROOT_LABEL}<dir> of an agent's files root"
            f' that contains it, e.g. labels: ["{FILES_ROOT_LABEL}{path.parent}"]',
            field="labels",
        )


def _no_escape(path: PurePosixPath) -> None:
    if ".." in path.parts:
        raise InvalidParams(f"{FIELD} may not contain '..': name the file inside a files root", field=FIELD)


def _unreachable(spec: JobCreate, path: PurePosixPath, agents: Sequence[LiveAgent]) -> InvalidParams:
    roots = sorted({root for agent in agents for root in agent.roots})
    if path.is_absolute():
        problem = f"no live agent running {spec.type!r} has a files root containing {str(path)!r}"
    else:
        problem = f"no live agent running {spec.type!r} has a files root to look up {str(path)!r} in"
    return InvalidParams(
        f"{problem} (files roots known: {', '.join(roots) or 'none'}); start an agent with"
        " --files-root DIR, or upload the file",
        field=FIELD,
        roots=roots,
    )


def _with_root(spec: JobCreate, path: PurePosixPath, agents: Sequence[LiveAgent]) -> JobCreate:
    """``spec`` with the label of the root that most live agents containing ``path`` share."""
    shared = Counter(root for agent in agents for root in agent.roots if path.is_relative_to(root))
    if not shared:
        raise _unreachable(spec, path, agents)
    if len(spec.labels) >= MAX_LABELS:
        raise InvalidParams(f"a job with local_path has at most {MAX_LABELS - 1} labels", field="labels")
    # Ties go to the deepest root: the fewest agents that hold more than this file.
    root = max(shared, key=lambda name: (shared[name], len(name), name))
    return spec.model_copy(update={"labels": [*spec.labels, FILES_ROOT_LABEL + root]})


async def check(coord: Coordinator, namespace: str, specs: list[JobCreate]) -> list[JobCreate]:
    """The specs, those naming a ``local_path`` routed to live agents that can read it.

    InvalidParams (422) for a path no live agent serving the type can reach. A spec whose
    labels name files roots is checked against them alone, as before routing existed.
    """
    agents: list[LiveAgent] | None = None
    routed: list[JobCreate] = []
    for spec in specs:
        path = _path_of(spec)
        explicit = roots_of(spec.labels)
        if path is None or (path.is_absolute() and explicit):
            if path is not None:
                _check_explicit_root(spec, path, explicit)
            routed.append(spec)
            continue
        _no_escape(path)
        if agents is None:
            async with coord.db.read() as conn:
                agents = await live_agents(conn, coord, coord.clock())
        worker_type = spec.worker_type.value if spec.worker_type else None
        eligible = [a for a in agents if a.can_run(spec.type, worker_type, spec.labels, namespace)]
        if path.is_absolute():
            spec = _with_root(spec, path, eligible)
        elif not any(agent.roots for agent in eligible):
            raise _unreachable(spec, path, eligible)
        routed.append(spec)
    return routed
