"""amoCRM's webhooks about leads (stage changes, notes), in its PHP-style form encoding."""

from collections.abc import Iterable
from urllib.parse import urlencode

from sandbox.state import JSON, Event, Lead, Note, SandboxAccount, Stage
from sandbox.webhook_outbox import WebhookSubscription

FormTree = dict[str, JSON]


def announce_status_changes(account: SandboxAccount, moves: Iterable[Event | None]) -> None:
    """Send one request's stage moves (None: a change that moved nothing) to every hook that
    wants them, all in one body, as amoCRM batches the items of one change."""
    events = [event for event in moves if event is not None]
    if not events:
        return
    for subscription in account.webhooks.subscriptions:
        if "status" in subscription.events:
            body = status_change_form(account, subscription, events)
            account.webhooks.send(subscription.url, body)


# amoCRM's numbers for note types in webhooks; the API names them.
_NOTE_TYPE_NUMBERS = {"common": 4, "call_in": 10, "call_out": 11, "service_message": 25}


def announce_notes(account: SandboxAccount, notes: Iterable[Note]) -> None:
    """`leads[note]` items: the note's own id is `note[id]`, its lead is `note[element_id]`."""
    items: list[JSON] = [
        {
            "note": {
                "id": note.id,
                "note_type": _NOTE_TYPE_NUMBERS.get(note.note_type, note.note_type),
                "text": note.params.get("text"),
                "element_id": note.entity_id,
                "element_type": 2,
                "date_create": note.created_at,
                "last_modified": note.updated_at,
            }
        }
        for note in notes
    ]
    if not items:
        return
    for subscription in account.webhooks.subscriptions:
        if "note" in subscription.events:
            sender: FormTree = {"id": subscription.account_id, "subdomain": subscription.subdomain}
            body = urlencode(_php_pairs({"leads": {"note": items}, "account": sender}))
            account.webhooks.send(subscription.url, body)


def status_change_form(
    account: SandboxAccount, subscription: WebhookSubscription, events: list[Event]
) -> str:
    if subscription.style == "account":
        items = [
            _full_lead(account.leads[event.entity_id], event, subscription) for event in events
        ]
        sender: FormTree = {
            "subdomain": subscription.subdomain,
            "id": subscription.account_id,
            "_links": {"self": f"https://{subscription.subdomain}.amocrm.ru"},
        }
    else:
        items = [_stage_move(event) for event in events]
        sender = {"id": subscription.account_id, "subdomain": subscription.subdomain}
    # urlencode percent-encodes brackets and UTF-8 and writes spaces as "+", as PHP's
    # http_build_query does for amoCRM.
    return urlencode(_php_pairs({"leads": {"status": items}, "account": sender}))


def _old_stage(event: Event) -> Stage:
    assert event.before is not None, "only lead_status_changed events are announced"
    return event.before


def _stage_move(event: Event) -> FormTree:
    """The short item a Digital Pipeline stage trigger sends."""
    old = _old_stage(event)
    return {
        "id": event.entity_id,
        "status_id": event.after.status_id,
        "pipeline_id": event.after.pipeline_id,
        "old_status_id": old.status_id,
        "old_pipeline_id": old.pipeline_id,
    }


def _full_lead(lead: Lead, event: Event, subscription: WebhookSubscription) -> FormTree:
    """The whole lead, as the account webhook (Settings → Webhooks) sends it."""
    return {
        "id": lead.id,
        "name": lead.name,
        "status_id": event.after.status_id,
        "old_status_id": _old_stage(event).status_id,
        "pipeline_id": event.after.pipeline_id,
        "price": lead.price,
        "responsible_user_id": lead.responsible_user_id,
        "last_modified": event.created_at,
        "modified_user_id": lead.responsible_user_id,
        "created_user_id": lead.responsible_user_id,
        "date_create": lead.created_at,
        "account_id": subscription.account_id,
        "custom_fields": [
            _custom_field(custom_field)
            for custom_field in lead.custom_fields_values or []
            # Lead custom fields are stored as the client sent them, unchecked.
            if isinstance(custom_field, dict)
        ],
    }


def _custom_field(custom_field: dict[str, JSON]) -> FormTree:
    values = custom_field.get("values")
    return {
        "id": custom_field.get("field_id"),
        "name": custom_field.get("field_name") or custom_field.get("field_code"),
        "values": [
            {"value": value.get("value"), "enum": value.get("enum_id")}
            for value in (values if isinstance(values, list) else [])
            if isinstance(value, dict)
        ],
    }


def _php_pairs(tree: JSON, key: str = "") -> list[tuple[str, str]]:
    """Flatten nested dicts and lists into PHP form keys: {"a": [{"b": 1}]} → a[0][b]=1.
    Absent (None) values are left out, as PHP leaves out nulls."""
    if tree is None:
        return []
    if isinstance(tree, dict):
        children = tree.items()
    elif isinstance(tree, list):
        children = enumerate(tree)
    else:
        return [(key, str(tree))]
    return [
        pair
        for name, child in children
        for pair in _php_pairs(child, f"{key}[{name}]" if key else str(name))
    ]
