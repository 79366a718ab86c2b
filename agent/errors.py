"""Exceptions of the agent.

AgentError
 ├── AuthError                the API key was refused (fatal)
 ├── WorkerUnknown            the coordinator does not know this worker id (register again)
 ├── LeaseLost                the task's lease is no longer ours (drop the task)
 ├── CoordinatorUnavailable   network error, timeout, 5xx or 429 (retry later)
 ├── CoordinatorError         any other refusal (4xx); not worth retrying as is
 ├── IntegrityError           a downloaded file does not match its sha256
 └── ConfigError              the agent cannot start with this configuration
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error the agent raises."""


class AuthError(AgentError):
    """The coordinator refused the API key: check TASKPOST_API_KEY."""


class WorkerUnknown(AgentError):
    """The coordinator does not know this worker id; the agent must register again."""


class LeaseLost(AgentError):
    """The lease on this task was lost: stop the task and drop its result."""


class CoordinatorUnavailable(AgentError):
    """The coordinator could not be reached or answered with a server error; try again later."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """The coordinator's ``Retry-After``: no request before that many seconds have passed."""


class CoordinatorError(AgentError):
    """The coordinator refused a request for a reason other than auth, lease or worker id."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class IntegrityError(AgentError):
    """A downloaded file does not match the sha256 the coordinator announced."""


class ConfigError(AgentError):
    """The agent cannot start with this configuration."""
