"""Converting a submission's values for amoCRM's fields, with the account's catalogues cached.

`prepare_fields` is a local activity on the workflow worker: it makes no amoCRM request. It
converts with the catalogues this worker process holds. When one is missing or older than
`LEADRELAY_FIELD_CATALOGUE_TTL_SECONDS`, it answers with what must be read; the workflow
reads it through the rate-limited amoCRM queue, a page an activity, and hands it back, and
the cache keeps it for the next submissions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio import activity

from leadrelay.custom_fields import CatalogueRequest, CustomField, FieldCatalogue, FieldEntity
from leadrelay.forms import FormsFile
from leadrelay.lead_fields import LeadFields, fill_fields
from leadrelay.models import Submission


@dataclass
class _Catalogue:
    loaded_at: float
    fields: dict[int, CustomField]
    covers: set[int] | None  # the ids looked for; None: the whole catalogue


class FieldCatalogueCache:
    """The account's field catalogues as this worker last read them, for `ttl_seconds`."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._catalogues: dict[FieldEntity, _Catalogue] = {}

    def install(self, catalogue: FieldCatalogue) -> None:
        covers = None if catalogue.covers is None else set(catalogue.covers)
        fields = {custom_field.id: custom_field for custom_field in catalogue.fields}
        self._catalogues[catalogue.entity] = _Catalogue(self._clock(), fields, covers)

    def knows(self, entity: FieldEntity, field_ids: list[int]) -> bool:
        """Whether a fresh catalogue says, for each id, what the field is or that there is none."""
        catalogue = self._catalogues.get(entity)
        if catalogue is None or self._clock() - catalogue.loaded_at > self._ttl:
            return False
        return catalogue.covers is None or catalogue.covers.issuperset(field_ids)

    def lookup(self, entity: FieldEntity, field_id: int) -> CustomField | None:
        catalogue = self._catalogues.get(entity)
        return catalogue.fields.get(field_id) if catalogue else None


@dataclass
class FieldsRequest:
    submission: Submission
    # Catalogues the workflow just read because the last answer asked for them.
    catalogues: list[FieldCatalogue] = field(default_factory=list)


@dataclass
class PreparedFields:
    fields: LeadFields
    # Non-empty: nothing was converted; read these catalogues and ask again with them.
    catalogues_needed: list[CatalogueRequest] = field(default_factory=list)


class FieldActivities:
    def __init__(self, forms: FormsFile, cache: FieldCatalogueCache) -> None:
        self._forms = forms
        self._cache = cache

    @activity.defn(name="leadrelay.prepare_fields")
    def prepare_fields(self, request: FieldsRequest) -> PreparedFields:
        for catalogue in request.catalogues:
            self._cache.install(catalogue)
        forms = self._forms.current()
        mapping = forms.field_mapping(request.submission.form)
        # A read covers every field the forms file names, so that it serves other forms too.
        every_field = forms.mapped_field_ids()
        needed = [
            CatalogueRequest(entity, every_field[entity])
            for entity, field_ids in mapping.wanted(request.submission).items()
            if not self._cache.knows(entity, field_ids)
        ]
        # With catalogues in hand, convert even if the forms file changed meanwhile: a field
        # still unknown is then reported as missing rather than read again in a loop.
        if needed and not request.catalogues:
            return PreparedFields(LeadFields(), needed)
        return PreparedFields(fill_fields(mapping, request.submission, self._cache.lookup))
