"""One workflow per person: every submission of theirs becomes one lead in amoCRM.

The workflow ID is the contact key, and the API signals-with-start it, so submissions
that arrive together collapse into one run and are handled one at a time, in order.
After the last one it stays open for a quiet window, so a later submission updates the
lead it already knows instead of searching amoCRM again.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import assert_never

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import (
        AmoActivities,
        AmoFailure,
        ContactPhone,
        ContactQuery,
        LeadNote,
        LeadTags,
    )
    from activities.fields import FieldActivities, FieldsRequest
    from activities.routing import RoutingActivities
    from amocrm.models import Contact, CreatedLead, Lead, LeadChange, NewContact, NewLead
    from leadrelay import search_attributes as sa
    from leadrelay.bounded import cut_submission, cut_text
    from leadrelay.contact import KeyKind, key_kind
    from leadrelay.custom_fields import CatalogueRequest, FieldCatalogue, RefusedValue
    from leadrelay.lead_fields import LeadFields
    from leadrelay.limits import (
        DEAD_LETTERS_KEPT,
        LEAD_PENDING_BYTES,
        OPERATOR_NOTE_CHARS,
        OPERATOR_REQUESTS_KEPT,
        PROCESSED_IDS_KEPT,
        SKIPPED_KEPT,
        SKIPPED_SUBMISSION_BYTES,
    )
    from leadrelay.models import (
        DeadLetter,
        FailureKind,
        LeadError,
        LeadStart,
        LeadState,
        OperatorRequest,
        OperatorRequestKind,
        Route,
        SkippedSubmission,
        Step,
        Submission,
    )
    from leadrelay.notes import note_marker, submission_note
    from leadrelay.settings import AMOCRM_TASK_QUEUE
    from workflows import priorities
    from workflows.amocrm_calls import (
        AMOCRM_ATTEMPT_TIMEOUT,
        PAGED_READS_PATCH,
        ROUTING_RETRY,
        WRITE_ONCE,
        add_note_once,
        call_amocrm,
        failure_type,
        find_contacts,
        lead_error,
        read_field_catalogue,
        read_leads,
        rejection_of,
        write_once,
    )
    from workflows.batch_requests import BatchReplies, add_note_batched, batched_create
    from workflows.batcher import ANSWER_SIGNAL, BatchAnswer
    from workflows.inbox import (
        Inbox,
        Offered,
        continue_as_new_now,
        history_is_full,
        next_run,
        payload_size,
    )
    from workflows.parking import OperatorSignals, Parking

# Created leads are counted by the create activity (leadrelay_leads_created).
LEAD_OUTCOMES = {
    Step.UPDATED: ("leadrelay_leads_updated", "Submissions noted on an existing open lead"),
    Step.FAILED: ("leadrelay_leads_failed", "Submissions parked for an operator"),
}
DEAD_LETTERS_METRIC = (
    "leadrelay_submissions_dead_lettered",
    "Submissions a lead workflow could not keep (its pending budget was full even cut)",
)
# Workflows recorded before search attributes existed replay without them.
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
# Workflows recorded before it searched again after every failed create, refusals included.
CREATE_REFUSAL_PATCH = "create-write-once"
# Workflows recorded before amoCRM fields, responsible users and the email search after a
# phone miss replay without them.
FIELDS_PATCH = "fields-and-one-contact"
# Creates and submission notes go through the batchers (workflows/batcher.py).
BATCHED_WRITES_PATCH = "batched-writes"
# Workflows recorded before a field catalogue was read a page an activity replay the one
# activity that read every page.
CATALOGUE_PAGES_PATCH = "catalogue-pages"
RESPONSIBLE_LABEL = "Ответственный"


@workflow.defn
class LeadWorkflow(OperatorSignals):
    @workflow.init
    def __init__(self, start: LeadStart) -> None:
        self._state = start.carried or LeadState(lead_key=start.lead_key)
        self._quiet_window = timedelta(seconds=start.quiet_window_seconds)
        self._inbox = Inbox(
            self._state.pending,
            self._state.processed_ids,
            _submission_id,
            remember=PROCESSED_IDS_KEPT,
            budget_bytes=LEAD_PENDING_BYTES,
            cut=self._cut,
        )
        self._parking = Parking()
        # Per submission: what goes into amoCRM's fields, and whether the version writes them.
        self._fields = LeadFields()
        self._with_fields = False
        self._responsible_user_id: int | None = None
        self._batch_replies = BatchReplies()
        # The fairness key of amoCRM calls: the form of the submission being processed.
        self._form = ""

    @workflow.run
    async def run(self, start: LeadStart) -> LeadState:
        self._enter(self._state.step)
        while True:
            submission = await self._inbox.next(
                self._quiet_window,
                wake_also=lambda: bool(self._state.operator_requests) or history_is_full(),
            )
            if self._state.operator_requests:
                await self._serve(self._state.operator_requests.pop(0))
                continue
            if submission is None:
                if history_is_full():  # repeats alone can fill it: they are events too
                    await continue_as_new_now(next_run(start, self._state))
                break
            await self._parking.take_turn(
                functools.partial(self._process, submission),
                functools.partial(self._park, submission),
                functools.partial(self._finish, submission),
                parked=self._state.parked_submission_id == submission.submission_id,
                next_run=lambda: next_run(start, self._state),
                per_run=start.submissions_per_run,
            )
        self._enter(Step.DONE)
        return self._state

    @workflow.signal
    def submit(self, submission: Submission) -> None:
        self._state.submissions_seen += 1
        offered = self._inbox.offer(submission)
        if offered is Offered.REPEAT:
            self._state.duplicates_dropped += 1
        elif offered is Offered.CUT:
            self._state.submissions_cut += 1
        elif offered is Offered.REFUSED:
            self._dead_letter(submission)
        self._show_details()

    @workflow.signal(name=ANSWER_SIGNAL)
    def batch_answer(self, answer: BatchAnswer) -> None:
        """A batcher's answer to a create or a note this workflow asked for."""
        self._batch_replies.receive(answer)

    @workflow.signal
    def resync(self) -> None:
        """Re-read the contact and its leads from amoCRM, e.g. after a manual merge."""
        self._request(OperatorRequest(OperatorRequestKind.RESYNC))

    @workflow.signal
    def add_note(self, text: str) -> None:
        self._request(
            OperatorRequest(OperatorRequestKind.NOTE, cut_text(text, OPERATOR_NOTE_CHARS))
        )

    @workflow.query
    def state(self) -> LeadState:
        return self._state

    # --- operator requests ----------------------------------------------------

    def _request(self, request: OperatorRequest) -> None:
        if len(self._state.operator_requests) >= OPERATOR_REQUESTS_KEPT:
            self._state.last_error = LeadError(
                FailureKind.TOO_MANY_REQUESTS,
                f"{OPERATOR_REQUESTS_KEPT} operator requests are queued; {request.kind} refused",
                workflow.now().isoformat(),
            )
            return
        self._state.operator_requests.append(request)

    async def _serve(self, request: OperatorRequest) -> None:
        try:
            match request.kind:
                case OperatorRequestKind.RESYNC:
                    await self._resync()
                case OperatorRequestKind.NOTE:
                    await self._add_operator_note(request.text or "")
                case unknown:
                    assert_never(unknown)
        except ActivityError as err:
            self._state.last_error = lead_error(err)
        self._show_details()

    async def _add_operator_note(self, text: str) -> None:
        if self._state.lead_id is None:
            self._state.last_error = LeadError(
                FailureKind.NO_LEAD_YET,
                "no amoCRM lead to add the note to",
                workflow.now().isoformat(),
            )
            return
        note = LeadNote(self._state.lead_id, text)
        await call_amocrm(
            AmoActivities.add_lead_note,
            note,
            summary="add operator note",
            priority=self._known_lead_priority(),
        )

    async def _resync(self) -> None:
        key = self._state.lead_key
        match key_kind(key):
            case KeyKind.PHONE:
                query = ContactQuery(phone=key, email=None)
            case KeyKind.EMAIL:
                query = ContactQuery(phone=None, email=key)
            case unknown:
                assert_never(unknown)
        contacts = await find_contacts(
            query, summary="resync: search", priority=self._known_lead_priority()
        )
        self._state.contact_id = min((c.id for c in contacts), default=None)
        lead_ids = sorted({lead_id for contact in contacts for lead_id in contact.lead_ids})
        leads = (
            await read_leads(
                lead_ids, summary="resync: read leads", priority=self._known_lead_priority()
            )
            if lead_ids
            else []
        )
        open_ids = [lead.id for lead in leads if lead.is_open]
        if self._state.lead_id not in open_ids:
            self._state.lead_id = max(open_ids, default=None)
        self._enter(Step.UPDATED if self._state.lead_id else self._state.step)

    # --- the business process -------------------------------------------------

    def _park(self, submission: Submission, err: ActivityError) -> None:
        """A failure retrying cannot fix: the submission waits for `retry` or `skip`."""
        self._state.parked_submission_id = submission.submission_id
        self._state.last_error = lead_error(err, submission_id=submission.submission_id)
        self._enter(Step.FAILED)
        workflow.logger.error("lead %s needs an operator: %s", self._state.lead_key, err)

    def _finish(self, submission: Submission, done: bool) -> None:
        self._state.parked_submission_id = None
        self._inbox.done(submission)
        if done:
            self._state.submissions_processed += 1
        else:
            self._set_aside(submission)

    def _set_aside(self, submission: Submission) -> None:
        state = self._state
        if payload_size(submission) > SKIPPED_SUBMISSION_BYTES:
            submission = self._cut(submission)
        state.skipped.append(
            SkippedSubmission(submission, state.last_error, workflow.now().isoformat())
        )
        del state.skipped[:-SKIPPED_KEPT]
        state.submissions_skipped += 1
        workflow.logger.warning(
            "lead %s: submission %s skipped", state.lead_key, submission.submission_id
        )
        self._enter(Step.SKIPPED)

    async def _process(self, submission: Submission) -> None:
        self._form = submission.form
        self._decide_patches()
        route = await workflow.execute_local_activity_method(
            RoutingActivities.route_submission,
            submission,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=ROUTING_RETRY,
        )
        self._fields = await self._prepare_fields(submission) if self._with_fields else LeadFields()
        self._responsible_user_id = route.responsible_user_id if self._with_fields else None
        if await self._update_known_lead(route):
            self._enter(Step.UPDATED)
        else:
            await self._find_or_create_lead(submission, route)
        await self._add_submission_note(submission)
        self._show_details()

    def _decide_patches(self) -> None:
        """Patches read after a local activity are decided before it.

        A local activity's result can be recorded in an earlier workflow task than the
        commands that follow it, but on replay it resolves at once; a patch first read
        after it would then look for its marker in the wrong task. `workflow.patched`
        keeps its first answer for the run, so later reads agree with this one.
        """
        self._with_fields = workflow.patched(FIELDS_PATCH)
        workflow.patched(PAGED_READS_PATCH)
        workflow.patched(CATALOGUE_PAGES_PATCH)

    async def _prepare_fields(self, submission: Submission) -> LeadFields:
        """The submission's values converted for the account's fields. The worker converts
        with its cached catalogues; one it lacks is read here, on the amoCRM queue."""
        catalogues: list[FieldCatalogue] = []
        while True:
            prepared = await workflow.execute_local_activity_method(
                FieldActivities.prepare_fields,
                FieldsRequest(submission, catalogues),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=ROUTING_RETRY,
            )
            if not prepared.catalogues_needed:
                return prepared.fields
            try:
                catalogues = [
                    await self._read_catalogue(needed) for needed in prepared.catalogues_needed
                ]
            except ActivityError as err:
                if failure_type(err) not in AmoFailure.NON_RETRYABLE:
                    raise
                # The fields are optional: without a catalogue, the note alone carries them.
                workflow.logger.warning("no field catalogue for %s: %s", submission.form, err)
                return LeadFields()

    async def _read_catalogue(self, needed: CatalogueRequest) -> FieldCatalogue:
        if workflow.patched(CATALOGUE_PAGES_PATCH):
            return await read_field_catalogue(needed, priority=priorities.BACKGROUND_READS)
        return await call_amocrm(
            AmoActivities.read_field_catalogue,
            needed,
            summary=f"read {needed.entity} field catalogue",
            priority=priorities.BACKGROUND_READS,
        )

    async def _update_known_lead(self, route: Route) -> bool:
        """A later submission: update the lead this workflow knows, if it is still open."""
        if self._state.lead_id is None or route.pipeline_id != self._state.lead_route_pipeline_id:
            return False
        self._enter(Step.UPDATING)
        leads = await read_leads(
            [self._state.lead_id], summary="read known lead", priority=self._known_lead_priority()
        )
        if not leads or not leads[0].is_open:
            self._state.lead_id = None
            return False
        await self._complete_lead(leads[0], route)
        return True

    async def _find_or_create_lead(self, submission: Submission, route: Route) -> None:
        """Creates are written once: after a lost answer the search runs again first."""
        found: Lead | CreatedLead | None = await self._find_open_lead(submission, route)
        if found is None:
            found = await write_once(
                functools.partial(self._create_lead, submission, route),
                functools.partial(self._find_open_lead, submission, route),
                on_failure=functools.partial(self._create_failed, submission),
                refusal_patch=CREATE_REFUSAL_PATCH,
            )
        if isinstance(found, CreatedLead):
            self._state.contact_id = found.contact_id or self._state.contact_id
            self._adopt(found.lead_id, route)
            self._enter(Step.CREATED)
        else:
            self._adopt(found.id, route)
            await self._complete_lead(found, route)
            self._enter(Step.UPDATED)

    async def _find_open_lead(self, submission: Submission, route: Route) -> Lead | None:
        """The person's open lead in the route's pipeline; remembers their contact."""
        self._enter(Step.SEARCHING)
        contacts = await self._search_contacts(submission)
        if not contacts:
            return None
        lead_ids = sorted({lead_id for contact in contacts for lead_id in contact.lead_ids})
        return await self._open_lead_in_pipeline(lead_ids, route)

    async def _search_contacts(self, submission: Submission) -> list[Contact]:
        """The person's contacts by phone, else by email. A phone amoCRM does not know is
        searched by the email too, and added to the contact found, so one person keeps one
        contact and the next phone search finds it."""
        query = ContactQuery(
            phone=submission.phone, email=None if submission.phone else submission.email
        )
        contacts = await find_contacts(
            query, summary="search contact", priority=priorities.new_person(submission.form)
        )
        by_email = False
        if not contacts and self._with_fields and submission.phone and submission.email:
            contacts = await find_contacts(
                ContactQuery(phone=None, email=submission.email),
                summary="search contact by email",
                priority=priorities.person_under_way(submission.form),
            )
            by_email = bool(contacts)
        if not contacts:
            return []
        contact = min(contacts, key=lambda found: found.id)
        self._state.contact_id = contact.id
        if self._with_fields and contact.responsible_user_id is not None:
            self._responsible_user_id = contact.responsible_user_id
        if by_email and submission.phone:
            await self._add_phone(contact, submission.phone)
        return contacts

    async def _add_phone(self, contact: Contact, phone: str) -> None:
        try:
            await call_amocrm(
                AmoActivities.add_contact_phone,
                ContactPhone(contact.id, phone, contact.phone_values),
                summary="add phone to contact",
                priority=self._known_lead_priority(),
            )
        except ActivityError as err:
            if failure_type(err) != FailureKind.REJECTED:
                raise
            # The lead matters more than the phone: it is in the note either way.
            workflow.logger.warning("phone not added to contact %s: %s", contact.id, err)
            self._fields.refused.append(RefusedValue(0, "Телефон контакта", phone, str(err)))

    async def _open_lead_in_pipeline(self, lead_ids: list[int], route: Route) -> Lead | None:
        if not lead_ids:
            return None
        leads = await read_leads(
            lead_ids,
            summary="read the contact's leads",
            priority=priorities.person_under_way(self._form),
        )
        open_leads = [lead for lead in leads if lead.is_open]
        if not open_leads:
            return None
        pipeline_id = route.pipeline_id or await self._main_pipeline_id()
        in_pipeline = [lead for lead in open_leads if lead.pipeline_id == pipeline_id]
        return max(in_pipeline, key=lambda lead: lead.id, default=None)

    async def _create_lead(self, submission: Submission, route: Route) -> CreatedLead:
        """A 400 over optional parts (a field, the manager) was not applied: they are
        dropped, named in the note, and the lead is created at once without them."""
        self._enter(Step.CREATING)
        while True:
            try:
                return await self._write_lead(submission, self._new_lead(submission, route))
            except ActivityError as err:
                if not self._drop_rejected(err):
                    raise

    async def _write_lead(self, submission: Submission, new_lead: NewLead) -> CreatedLead:
        """One try: in a batch when a batcher runs, else alone."""
        if workflow.patched(BATCHED_WRITES_PATCH):
            created = await batched_create(
                self._batch_replies, new_lead, submission.form, submission.received_at
            )
            if created is not None:
                return created
        return await workflow.execute_activity_method(
            AmoActivities.create_lead,
            new_lead,
            task_queue=AMOCRM_TASK_QUEUE,
            start_to_close_timeout=AMOCRM_ATTEMPT_TIMEOUT,
            retry_policy=WRITE_ONCE,
            summary="create lead + contact" if new_lead.contact_id is None else "create lead",
            priority=priorities.person_under_way(submission.form),
        )

    def _new_lead(self, submission: Submission, route: Route) -> NewLead:
        """A new lead (UTM, form fields, budget, manager) and, if amoCRM lacks one, its contact.

        A lead for a known contact goes to the contact's own responsible user; a new contact
        gets its lead's manager.
        """
        contact_id = self._state.contact_id
        fields = self._fields
        responsible = self._responsible_user_id
        new_contact = None
        if contact_id is None:
            new_contact = NewContact(
                submission.name,
                submission.phone,
                submission.email,
                custom_fields=fields.contact,
                responsible_user_id=responsible,
            )
        return NewLead(
            name=route.lead_name,
            pipeline_id=route.pipeline_id,
            status_id=route.status_id,
            tags=route.tags,
            contact_id=contact_id,
            new_contact=new_contact,
            request_id=submission.submission_id[:32],
            custom_fields=[*fields.utm, *fields.lead],
            price=fields.price,
            responsible_user_id=responsible,
        )

    def _drop_rejected(self, err: ActivityError) -> bool:
        """Leave out what amoCRM refused, if that is only optional parts; whether it was."""
        rejection = rejection_of(err)
        if rejection is None:
            return False
        dropped = False
        if rejection.responsible_user and self._responsible_user_id is not None:
            refused_user = str(self._responsible_user_id)
            self._fields.refused.append(
                RefusedValue(0, RESPONSIBLE_LABEL, refused_user, "amoCRM отклонил")
            )
            self._responsible_user_id = None
            dropped = True
        lead_ids, contact_ids = set(rejection.lead_field_ids), set(rejection.contact_field_ids)
        sent = {value.field_id for value in [*self._fields.utm, *self._fields.lead]}
        sent_contact = {value.field_id for value in self._fields.contact}
        if lead_ids & sent or contact_ids & sent_contact:
            self._fields = self._fields.without(lead_ids, contact_ids)
            dropped = True
        if dropped:
            workflow.logger.warning("left out what amoCRM refused (%s): %s", rejection, err)
        return dropped

    def _create_failed(self, submission: Submission, err: ActivityError) -> None:
        self._state.last_error = lead_error(err, submission_id=submission.submission_id)
        self._enter(Step.WAITING_RETRY)

    async def _add_submission_note(self, submission: Submission) -> None:
        note = LeadNote(self._known_lead_id(), submission_note(submission, self._fields.refused))
        priority = priorities.known_lead(submission.form)
        if workflow.patched(BATCHED_WRITES_PATCH):
            await add_note_batched(
                self._batch_replies,
                note,
                note_marker(submission),
                form=submission.form,
                received_at=submission.received_at,
                priority=priority,
                summary="add submission note",
            )
        else:
            await add_note_once(
                note, note_marker(submission), summary="add submission note", priority=priority
            )

    async def _complete_lead(self, lead: Lead, route: Route) -> None:
        """An open lead gets the form's missing tags and its empty UTM and form fields, in
        one PATCH: first touch wins, and nothing a manager typed is overwritten."""
        missing = [tag for tag in route.tags if tag not in lead.tags]
        if not self._with_fields:
            if missing:
                await call_amocrm(
                    AmoActivities.add_lead_tags,
                    LeadTags(lead.id, missing),
                    summary="add form tags",
                    priority=self._known_lead_priority(),
                )
            return
        while True:
            empty = [
                value
                for value in [*self._fields.utm, *self._fields.lead]
                if value.field_id not in lead.filled_field_ids
            ]
            if not missing and not empty:
                return
            try:
                await call_amocrm(
                    AmoActivities.update_lead,
                    LeadChange(lead.id, tags_to_add=missing, custom_fields=empty),
                    summary="add form tags and empty fields",
                    priority=self._known_lead_priority(),
                )
                return
            except ActivityError as err:
                if not self._drop_rejected(err):
                    raise

    async def _main_pipeline_id(self) -> int:
        if self._state.main_pipeline_id is None:
            self._state.main_pipeline_id = await call_amocrm(
                AmoActivities.main_pipeline_id,
                summary="find the main pipeline",
                priority=priorities.BACKGROUND_READS,
            )
        return self._state.main_pipeline_id

    # --- plumbing -------------------------------------------------------------

    def _cut(self, submission: Submission) -> Submission:
        info = workflow.info()
        return cut_submission(
            submission, f"истории Temporal: workflow {info.workflow_id}, run {info.run_id}"
        )

    def _dead_letter(self, submission: Submission) -> None:
        state = self._state
        state.dead_lettered += 1
        state.dead_letters.append(
            DeadLetter(
                submission_id=submission.submission_id,
                form=submission.form,
                received_at=submission.received_at,
                reason=f"pending submissions exceeded {LEAD_PENDING_BYTES} bytes even cut",
                run_id=workflow.info().run_id,
            )
        )
        del state.dead_letters[:-DEAD_LETTERS_KEPT]
        workflow.metric_meter().create_counter(*DEAD_LETTERS_METRIC).add(1)
        workflow.logger.error(
            "lead %s: submission %s dead-lettered", state.lead_key, submission.submission_id
        )

    def _adopt(self, lead_id: int, route: Route) -> None:
        self._state.lead_id = lead_id
        self._state.lead_route_pipeline_id = route.pipeline_id

    def _known_lead_priority(self) -> Priority:
        return priorities.known_lead(self._form)

    def _known_lead_id(self) -> int:
        assert self._state.lead_id is not None, "a processed submission always has a lead"
        return self._state.lead_id

    def _enter(self, step: Step) -> None:
        if step in LEAD_OUTCOMES and step != self._state.step:
            workflow.metric_meter().create_counter(*LEAD_OUTCOMES[step]).add(1)
        self._state.step = step
        self._show_details()
        if workflow.patched(SEARCH_ATTRIBUTES_PATCH):
            self._upsert_search_attributes()

    def _upsert_search_attributes(self) -> None:
        state = self._state
        updates = [sa.LEAD_KEY.value_set(state.lead_key)]
        match key_kind(state.lead_key):
            case KeyKind.PHONE:
                updates.append(sa.LEAD_PHONE.value_set(state.lead_key))
            case KeyKind.EMAIL:
                updates.append(sa.LEAD_EMAIL.value_set(state.lead_key))
            case unknown:
                assert_never(unknown)
        if state.pending:
            updates.append(sa.LEAD_FORM.value_set(state.pending[0].form))
        if state.lead_id is not None:
            updates.append(sa.AMO_LEAD_ID.value_set(str(state.lead_id)))
        if state.contact_id is not None:
            updates.append(sa.AMO_CONTACT_ID.value_set(str(state.contact_id)))
        if state.step in sa.LEAD_STATES:
            updates.append(sa.LEAD_STATE.value_set(sa.LEAD_STATES[state.step]))
        current = workflow.info().typed_search_attributes
        if any(current.get(update.key) != update.value for update in updates):
            workflow.upsert_search_attributes(updates)

    def _show_details(self) -> None:
        state = self._state
        lines = [
            f"**step** {state.step}",
            f"**amoCRM** contact {state.contact_id} · lead {state.lead_id}",
            f"**submissions** {state.submissions_processed} processed, "
            f"{len(state.pending)} pending, {state.duplicates_dropped} repeats dropped",
        ]
        if state.submissions_cut or state.dead_lettered:
            lines.append(
                f"**bounded** {state.submissions_cut} kept cut, "
                f"{state.dead_lettered} dead letters (see the `state` query)"
            )
        if state.submissions_skipped:
            lines.append(
                f"**skipped** {state.submissions_skipped} set aside by an operator "
                "(see `skipped` in the `state` query)"
            )
        if state.last_error:
            lines.append(f"**last error** {state.last_error.kind}: {state.last_error.message}")
        workflow.set_current_details("\n\n".join(lines))


def _submission_id(submission: Submission) -> str:
    return submission.submission_id
