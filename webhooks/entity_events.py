"""Decoded webhook events as the entity events that cross the Temporal boundary."""

from __future__ import annotations

from leadrelay.events import EntityEvent
from webhooks.decoder import WebhookEvent


def entity_event(event: WebhookEvent, *, source: str, received_at: str) -> EntityEvent | None:
    """None for an event that names no entity id: it cannot be routed to a workflow."""
    if event.entity_id is None:
        return None
    return EntityEvent(
        dedup_key=event.dedup_key,
        source=source,
        entity=event.entity,
        action=event.action,
        entity_id=event.entity_id,
        status_id=event.status_id,
        pipeline_id=event.pipeline_id,
        old_status_id=event.old_status_id,
        last_modified=event.last_modified,
        received_at=received_at,
        item=event.item,
    )
