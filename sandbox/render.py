"""Entities as amoCRM's API returns them (HAL JSON with `_links` and `_embedded`)."""

from sandbox.state import (
    ACCOUNT_ID,
    JSON,
    Contact,
    CustomField,
    Event,
    Lead,
    Note,
    Pipeline,
    SandboxAccount,
    Stage,
    Task,
    User,
)

Body = dict[str, JSON]


def links(href: str) -> Body:
    return {"self": {"href": href}}


def contact_json(contact: Contact, account: SandboxAccount, base: str, *, with_leads: bool) -> Body:
    embedded: Body = {"tags": _tags_json(account, contact.tag_ids), "companies": []}
    if with_leads:
        # amoCRM embeds only lead stubs here: no status, so callers must fetch the leads.
        embedded["leads"] = [
            {"id": lead_id, "_links": links(f"{base}/api/v4/leads/{lead_id}")}
            for lead_id in contact.lead_ids
        ]
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "responsible_user_id": contact.responsible_user_id,
        "group_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": contact.custom_fields_values,
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/contacts/{contact.id}"),
        "_embedded": embedded,
    }


def lead_json(lead: Lead, account: SandboxAccount, base: str, *, with_contacts: bool) -> Body:
    embedded: Body = {"tags": _tags_json(account, lead.tag_ids), "companies": []}
    if with_contacts:
        embedded["contacts"] = [
            {
                "id": contact_id,
                "is_main": index == 0,
                "_links": links(f"{base}/api/v4/contacts/{contact_id}"),
            }
            for index, contact_id in enumerate(lead.contact_ids)
        ]
    return {
        "id": lead.id,
        "name": lead.name,
        "price": lead.price,
        "responsible_user_id": lead.responsible_user_id,
        "group_id": 0,
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "loss_reason_id": None,
        "created_by": 0,
        "updated_by": 0,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "closed_at": lead.closed_at,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": lead.custom_fields_values,
        "score": None,
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/leads/{lead.id}"),
        "_embedded": embedded,
    }


def note_json(note: Note, base: str) -> Body:
    return {
        "id": note.id,
        "entity_id": note.entity_id,
        "created_by": 0,
        "updated_by": 0,
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "responsible_user_id": 0,
        "group_id": 0,
        "note_type": note.note_type,
        "params": note.params,
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/leads/{note.entity_id}/notes/{note.id}"),
    }


def task_json(task: Task, base: str) -> Body:
    return {
        "id": task.id,
        "text": task.text,
        "complete_till": task.complete_till,
        "entity_id": task.entity_id,
        "entity_type": task.entity_type,
        "task_type_id": task.task_type_id,
        "responsible_user_id": task.responsible_user_id,
        "is_completed": False,
        "created_by": 0,
        "updated_by": 0,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/tasks/{task.id}"),
    }


def event_json(event: Event, base: str) -> Body:
    entity_href = f"{base}/api/v4/{event.entity_type}s/{event.entity_id}"
    return {
        "id": event.id,
        "type": event.type,
        "entity_id": event.entity_id,
        "entity_type": event.entity_type,
        "created_by": 0,
        "created_at": event.created_at,
        "value_after": _stage_values(event.after),
        "value_before": _stage_values(event.before),
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/events/{event.id}"),
        "_embedded": {"entity": {"id": event.entity_id, "_links": links(entity_href)}},
    }


def _stage_values(stage: Stage | None) -> list[Body]:
    if stage is None:
        return []
    return [{"lead_status": {"id": stage.status_id, "pipeline_id": stage.pipeline_id}}]


def pipeline_json(pipeline: Pipeline, base: str) -> Body:
    href = f"{base}/api/v4/leads/pipelines/{pipeline.id}"
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "sort": pipeline.sort,
        "is_main": pipeline.is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": ACCOUNT_ID,
        "_links": links(href),
        "_embedded": {
            "statuses": [
                {
                    "id": status.id,
                    "name": status.name,
                    "sort": status.sort,
                    "is_editable": status.is_editable,
                    "pipeline_id": pipeline.id,
                    "color": status.color,
                    "type": status.type,
                    "account_id": ACCOUNT_ID,
                    "_links": links(f"{href}/statuses/{status.id}"),
                }
                for status in sorted(pipeline.statuses, key=lambda status: status.sort)
            ]
        },
    }


def _tags_json(account: SandboxAccount, tag_ids: list[int]) -> list[Body]:
    return [{"id": tag_id, "name": account.tags[tag_id].name, "color": None} for tag_id in tag_ids]


def custom_field_json(custom_field: CustomField, entity: str, base: str) -> Body:
    return {
        "id": custom_field.id,
        "name": custom_field.name,
        "type": custom_field.type,
        "code": custom_field.code,
        "sort": custom_field.sort,
        "entity_type": entity,
        "is_api_only": False,
        "enums": [
            {"id": option.id, "value": option.value, "sort": option.sort}
            for option in custom_field.enums
        ]
        or None,
        "account_id": ACCOUNT_ID,
        "_links": links(f"{base}/api/v4/{entity}/custom_fields/{custom_field.id}"),
    }


def user_json(user: User, base: str) -> Body:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "lang": "ru",
        "rights": {"is_admin": user.is_admin, "is_free": False, "is_active": True},
        "_links": links(f"{base}/api/v4/users/{user.id}"),
    }
