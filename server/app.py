"""``create_app(settings)``: the coordinator as an ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskpost.protocol import API_PREFIX
from taskpost.server.api import (
    routes_admin,
    routes_events,
    routes_health,
    routes_jobs,
    routes_metrics,
    routes_queues,
    routes_types,
    routes_webhooks,
    routes_workers,
)
from taskpost.server.api.auth import AuthMiddleware
from taskpost.server.api.errors import install_error_handlers
from taskpost.server.api.http_metrics import HttpMetricsMiddleware
from taskpost.server.api.limits import BodyLimitMiddleware
from taskpost.server.api.openapi import install_openapi
from taskpost.server.coordinator import Coordinator
from taskpost.server.dashboard import install as install_dashboard
from taskpost.server.services import keys, reaper, replicas
from taskpost.server.services.webhooks import WebhookDispatcher
from taskpost.server.settings import Settings
from taskpost.server.version import VERSION

logger = logging.getLogger(__name__)


async def start(coord: Coordinator) -> None:
    """Prepare the database; print a bootstrap admin key the first time; join the replicas."""
    await coord.db.create_schema(auto_migrate=coord.settings.auto_migrate)
    configured = coord.settings.admin_key.get_secret_value() if coord.settings.admin_key else None
    generated = await keys.ensure_admin_key(coord, configured)
    if generated:
        # Printed once, to the terminal, never logged: the database keeps only its hash.
        print(
            f"\nTaskpost bootstrap admin key (shown once, store it now):\n  {generated}\n",
            file=sys.stderr,
            flush=True,
        )
    replicas.log_restart(await replicas.join(coord))


def create_app(settings: Settings | None = None, coordinator: Coordinator | None = None) -> FastAPI:
    settings = settings or Settings()
    coord = coordinator or Coordinator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await start(coord)
        await coord.notifier.start()
        await coord.job_changes.start()
        await coord.events.start()
        reaper_task = asyncio.create_task(reaper.run_forever(coord), name="taskpost-reaper")
        webhooks = WebhookDispatcher(coord)
        webhooks.start()
        try:
            yield
        finally:
            await webhooks.aclose()
            await coord.notifier.aclose()
            await coord.job_changes.aclose()
            if coord.event_hub is not None:
                await coord.event_hub.aclose()
            await coord.events.aclose()
            reaper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper_task
            await coord.blobs.aclose()
            await coord.db.close()

    app = FastAPI(title="Taskpost coordinator", version=VERSION, lifespan=lifespan)
    app.state.coordinator = coord
    install_error_handlers(app)
    app.include_router(routes_health.router)
    routes_metrics.install(app, coord)
    for router in (routes_jobs.router, routes_workers.router, routes_admin.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(routes_webhooks.router, prefix=API_PREFIX)
    app.include_router(routes_types.router, prefix=API_PREFIX)
    app.include_router(routes_queues.router, prefix=API_PREFIX)
    install_dashboard(app, coord)  # /dashboard: its own cookie sign-in, outside /api/v1
    app.include_router(routes_events.router, prefix=API_PREFIX)
    install_openapi(app)
    # Each add_middleware wraps the app built so far, so the one added last runs first. Body
    # limits come before auth here, so that auth runs first: no body is read for a caller
    # that is not authenticated. Middleware that must see a request before auth goes below.
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=coord.settings.max_json_bytes,
        max_upload_bytes=coord.settings.max_upload_bytes,
    )
    app.add_middleware(AuthMiddleware, coordinator=coord)
    # Outermost, so that the time of requests refused before routing (401, 413) counts too.
    app.add_middleware(HttpMetricsMiddleware, metrics=coord.metrics)  # added last: it runs first
    return app
