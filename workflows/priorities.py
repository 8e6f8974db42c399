"""The amoCRM queue's order: a Temporal task-queue priority and fairness key per call.

When the queue holds a backlog, the server hands out lower priority keys first:
1 a new person under way (the email search after a phone miss, the read of a found
contact's leads, the lead create), 2 a new person's first search, 3 submission notes and
updates of known leads, 4 webhook re-reads and rule actions, 5 reconciliation, token
keep-alive and catalogue reads.
Keys 1 and 2 together are the new people's searches and creates. A person under way goes
before the next person is started: in a burst, leads then reach amoCRM at a steady pace
from the first second, and a batch fills with people who are ready, instead of every
person waiting for the last first search.
Within a level, fairness keys share the queue evenly (server flag
`matching.enableFairness=true`), so a flood on one form cannot starve the others.
"""

from __future__ import annotations

from temporalio.common import Priority

PERSON_UNDER_WAY = 1
NEW_PERSON = 2
KNOWN_LEAD = 3
WEBHOOK = 4
BACKGROUND = 5

# Temporal caps a fairness key's length; form names are slugs, far shorter.
FAIRNESS_KEY_MAX = 64


def form_key(form: str) -> str:
    return f"form:{form}"[:FAIRNESS_KEY_MAX]


def new_person(form: str) -> Priority:
    """A new person's first search."""
    return Priority(priority_key=NEW_PERSON, fairness_key=form_key(form))


def person_under_way(form: str) -> Priority:
    """A new person's calls after the first search, up to the lead's create."""
    return Priority(priority_key=PERSON_UNDER_WAY, fairness_key=form_key(form))


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
