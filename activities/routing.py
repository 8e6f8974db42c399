"""Reading the forms file (form routes and event rules) happens here, because it is I/O.

It runs as a local activity on the workflow worker: it makes no amoCRM request, and it
runs again on every retry, so a fixed forms file applies to a failed submission.
"""

from __future__ import annotations

from temporalio import activity

from leadrelay.events import EntityEvent, PlannedAction
from leadrelay.forms import FormsFile
from leadrelay.models import Route, Submission


class RoutingActivities:
    def __init__(self, forms: FormsFile) -> None:
        self._forms = forms

    @activity.defn(name="leadrelay.route_submission")
    def route_submission(self, submission: Submission) -> Route:
        return self._forms.current().route(submission)

    @activity.defn(name="leadrelay.plan_actions")
    def plan_actions(self, event: EntityEvent) -> list[PlannedAction]:
        return self._forms.current().plan(event)
