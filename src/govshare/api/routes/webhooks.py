"""The department's webhooks, for its administrators: where its notifications
are POSTed, signed (docs/events.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from govshare.api.deps import AdminUser, ServicesDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import DeliveryOut, WebhookCreate, WebhookCreated, WebhookOut
from govshare.broker.webhooks import add_webhook, list_deliveries, list_webhooks, remove_webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=list[WebhookOut], responses=problem_responses(401, 403, 500))
def get_webhooks(_admin: AdminUser, svc: ServicesDep) -> list[WebhookOut]:
    """This department's webhooks, with their deliveries counted (never a secret)."""
    return [WebhookOut.of(w) for w in list_webhooks(svc)]


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 422, 500),
)
def create_webhook(body: WebhookCreate, admin: AdminUser, svc: ServicesDep) -> WebhookCreated:
    """POST this department's notifications from now on to ``url`` (http or
    https), signed with ``secret`` (generated unless given; returned this once)."""
    added = add_webhook(svc, admin, body.url, body.secret)
    hook = next(w for w in list_webhooks(svc) if w.id == added.webhook.id)
    return WebhookCreated(
        webhook=WebhookOut.of(hook), secret=added.secret, generated=added.generated
    )


@router.delete(
    "/{webhook_id}", response_model=WebhookOut, responses=problem_responses(401, 403, 404, 422, 500)
)
def delete_webhook(webhook_id: WebhookId, _admin: AdminUser, svc: ServicesDep) -> WebhookOut:
    """Remove a webhook: its secret and deliveries are forgotten, nothing more is sent."""
    hook = next((w for w in list_webhooks(svc) if w.id == webhook_id), None)
    remove_webhook(svc, webhook_id)  # raises webhook.unknown when there is none
    assert hook is not None
    return WebhookOut.of(hook)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=list[DeliveryOut],
    responses=problem_responses(401, 403, 404, 422, 500),
)
def get_deliveries(
    webhook_id: WebhookId,
    _admin: AdminUser,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """A webhook's delivery log, newest first: attempts, last status and error,
    next attempt."""
    return [DeliveryOut(**d.__dict__) for d in list_deliveries(svc, webhook_id, limit)]
