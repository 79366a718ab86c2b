"""The secret that signs a namespace's webhook deliveries: read it, rotate it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from taskpost.server.api.deps import CoordinatorDep, TargetNamespaceDep
from taskpost.server.services import webhook_secrets
from taskpost.server.services.convert import require_datetime

router = APIRouter(tags=["webhooks"])


class WebhookSecretPublic(BaseModel):
    """The key of the HMAC-SHA256 in ``X-Taskpost-Signature`` (see ``taskpost.client.verify_webhook``)."""

    namespace: str
    secret: str
    created_at: datetime


def _public(found: webhook_secrets.WebhookSecret) -> WebhookSecretPublic:
    return WebhookSecretPublic(
        namespace=found.namespace, secret=found.secret, created_at=require_datetime(found.created_at)
    )


@router.get("/webhooks/secret")
async def get_secret(coord: CoordinatorDep, namespace: TargetNamespaceDep) -> WebhookSecretPublic:
    """The namespace's signing secret (a client key's own; an admin's ``?namespace=``), made on first use."""
    return _public(await webhook_secrets.secret_for(coord, namespace))


@router.post("/webhooks/secret/rotate")
async def rotate_secret(coord: CoordinatorDep, namespace: TargetNamespaceDep) -> WebhookSecretPublic:
    """Replace the namespace's signing secret: deliveries from now on are signed with the new one."""
    return _public(await webhook_secrets.rotate(coord, namespace))
