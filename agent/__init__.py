"""The Taskpost agent: registers with a coordinator, long-polls for leased tasks and runs handlers.

Modules, one job each:

- ``settings``: ``AgentSettings`` (``TASKPOST_*`` environment variables and ``.env``)
- ``client``: ``CoordinatorClient``, the one module that knows the coordinator's URLs
- ``errors``: the agent's exception tree
- ``runner``: the run loop (register, claim, heartbeat, shutdown)
- ``task_runner``: one attempt of one task (inputs, handler, outputs, completion)
- ``outbox``: finished attempts waiting to be reported
- ``sendable``: error, traceback and progress texts made fit for the coordinator's limits
- ``workdir``: the private work root, and the 0700 folders and 0600 files under it
- ``key_file``: the API key read from a file (``--api-key-file``)
- ``health``: the ``GET /health`` endpoint
- ``handlers``: the handler plugin contract and the built-in handlers
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
