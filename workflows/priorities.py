"""The amoCRM queue's order: a Temporal task-queue priority and fairness key per call.

When the queue holds a backlog, the server hands out lower priority keys first:
1 searches and creates for new people, 2 submission notes and updates of known leads,
3 webhook re-reads and rule actions, 4 reconciliation, token keep-alive and catalogue reads.
Within a level, fairness keys share the queue evenly (server flag
`matching.enableFairness=true`), so a flood on one form cannot starve the others.
"""

from __future__ import annotations

from temporalio.common import Priority

NEW_PERSON = 1
KNOWN_LEAD = 2
WEBHOOK = 3
BACKGROUND = 4

# Temporal caps a fairness key's length; form names are slugs, far shorter.
FAIRNESS_KEY_MAX = 64


def form_key(form: str) -> str:
    return f"form:{form}"[:FAIRNESS_KEY_MAX]


def new_person(form: str) -> Priority:
    return Priority(priority_key=NEW_PERSON, fairness_key=form_key(form))


def known_lead(form: str) -> Priority:
    return Priority(priority_key=KNOWN_LEAD, fairness_key=form_key(form))


def workflow_of_form(form: str) -> Priority:
    """A lead workflow's own tasks: the default priority, fair between forms."""
    return Priority(fairness_key=form_key(form))


def batch(level: int, kind: str) -> Priority:
    """A batch mixes forms; its own key keeps it from queueing behind one form's flood."""
    return Priority(priority_key=level, fairness_key=f"batch:{kind}")


WEBHOOKS = Priority(priority_key=WEBHOOK, fairness_key="webhooks")
BACKGROUND_READS = Priority(priority_key=BACKGROUND, fairness_key="background")
