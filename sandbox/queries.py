"""Reading amoCRM list queries: PHP-style `filter[...]` parameters, ordering, paging, search."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException
from starlette.datastructures import QueryParams

from sandbox.render import Body
from sandbox.state import Contact, Event, Lead

T = TypeVar("T")

MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 50
# Below this many digits a query is too short to be taken for a phone number.
MIN_PHONE_QUERY_DIGITS = 5

_ID_FILTER = re.compile(r"filter\[id\](\[\d*\])?")
_PIPELINE_FILTER = re.compile(r"filter\[pipeline_id\](\[\d*\])?")
_TIME_FILTER = re.compile(r"filter\[(created_at|updated_at|closed_at)\]\[(from|to)\]")
_STAGE_FILTER = re.compile(r"filter\[statuses\]\[(\d+)\]\[(pipeline_id|status_id)\]")
_ORDER = re.compile(r"order\[(id|created_at|updated_at)\]")
_EVENT_TYPE_FILTER = re.compile(r"filter\[type\](\[\d*\])?")
_EVENT_ENTITY_FILTER = re.compile(r"filter\[entity\](\[\d*\])?")
_EVENT_TIME_FILTER = re.compile(r"filter\[created_at\]\[(from|to)\]")


def _int_param(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, f"{key} must be an integer") from None


@dataclass
class Paging:
    page: int
    limit: int

    @classmethod
    def read(
        cls, params: QueryParams, max_limit: int = MAX_PAGE_SIZE, cap: int | None = None
    ) -> "Paging":
        """`cap` (the `page_size` fault) shrinks every page, as a slow account might."""
        page = _int_param("page", params.get("page", "1"))
        limit = _int_param("limit", params.get("limit", str(min(DEFAULT_PAGE_SIZE, max_limit))))
        if page < 1:
            raise HTTPException(400, "page must be at least 1")
        if not 1 <= limit <= max_limit:
            raise HTTPException(400, f"Limit must be between 1 and {max_limit}")
        return cls(page, min(limit, cap or limit))

    def slice(self, items: Sequence[T]) -> tuple[Sequence[T], bool]:
        """This page's items, and whether another page follows."""
        start = (self.page - 1) * self.limit
        return items[start : start + self.limit], len(items) > start + self.limit

    def links(self, base: str, path: str, params: QueryParams, *, has_next: bool) -> Body:
        kept = [(key, value) for key, value in params.multi_items() if key != "page"]

        def href(page: int) -> str:
            return f"{base}{path}?{urlencode([*kept, ('page', str(page))])}"

        page_links: Body = {"self": {"href": href(self.page)}}
        if has_next:
            page_links["next"] = {"href": href(self.page + 1)}
        if self.page > 1:
            page_links["prev"] = {"href": href(self.page - 1)}
        return page_links


@dataclass
class LeadQuery:
    ids: set[int] | None = None
    pipeline_ids: set[int] | None = None
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    time_bounds: dict[tuple[str, str], int] = field(default_factory=dict)
    order_by: str = "id"
    descending: bool = False

    @classmethod
    def read(cls, params: QueryParams) -> "LeadQuery":
        query = cls()
        for key, value in params.multi_items():
            if _ID_FILTER.fullmatch(key):
                query.ids = (query.ids or set()) | {_int_param(key, value)}
            elif _PIPELINE_FILTER.fullmatch(key):
                query.pipeline_ids = (query.pipeline_ids or set()) | {_int_param(key, value)}
            elif match := _TIME_FILTER.fullmatch(key):
                query.time_bounds[(match[1], match[2])] = _int_param(key, value)
            elif match := _STAGE_FILTER.fullmatch(key):
                query.stages.setdefault(match[1], {})[match[2]] = _int_param(key, value)
            elif match := _ORDER.fullmatch(key):
                if value not in ("asc", "desc"):
                    raise HTTPException(400, f"{key} must be asc or desc")
                query.order_by, query.descending = match[1], value == "desc"
        return query

    def select(self, leads: list[Lead]) -> list[Lead]:
        chosen = [lead for lead in leads if self._matches(lead)]
        return sorted(chosen, key=self._sort_key, reverse=self.descending)

    def _sort_key(self, lead: Lead) -> tuple[int, int]:
        return (getattr(lead, self.order_by) or 0, lead.id)

    def _matches(self, lead: Lead) -> bool:
        if self.ids is not None and lead.id not in self.ids:
            return False
        if self.pipeline_ids is not None and lead.pipeline_id not in self.pipeline_ids:
            return False
        if self.stages and not any(
            stage.get("pipeline_id", lead.pipeline_id) == lead.pipeline_id
            and stage.get("status_id", lead.status_id) == lead.status_id
            for stage in self.stages.values()
        ):
            return False
        return all(
            _within(getattr(lead, attribute), bound, limit)
            for (attribute, bound), limit in self.time_bounds.items()
        )


def _within(moment: int | None, bound: str, limit: int) -> bool:
    """Whether `moment` is inside an inclusive `filter[...][from]` or `[to]` bound."""
    return moment is not None and (moment >= limit if bound == "from" else moment <= limit)


@dataclass
class EventQuery:
    types: set[str] | None = None
    entity_types: set[str] | None = None
    time_bounds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, params: QueryParams) -> "EventQuery":
        query = cls()
        for key, value in params.multi_items():
            # Several values come as an array or as one comma-separated value; amoCRM takes both.
            if _EVENT_TYPE_FILTER.fullmatch(key):
                query.types = (query.types or set()) | set(value.split(","))
            elif _EVENT_ENTITY_FILTER.fullmatch(key):
                query.entity_types = (query.entity_types or set()) | set(value.split(","))
            elif match := _EVENT_TIME_FILTER.fullmatch(key):
                query.time_bounds[match[1]] = _int_param(key, value)
        return query

    def select(self, events: list[Event]) -> list[Event]:
        """The matching events, newest first, as amoCRM lists them."""
        chosen = [event for event in events if self._matches(event)]
        return sorted(chosen, key=lambda event: (event.created_at, event.id), reverse=True)

    def _matches(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.entity_types is not None and event.entity_type not in self.entity_types:
            return False
        return all(
            _within(event.created_at, bound, limit) for bound, limit in self.time_bounds.items()
        )


def _digits(text: str) -> str:
    return "".join(character for character in text if character.isdigit())


def contact_matches(contact: Contact, query: str) -> bool:
    """amoCRM's search is full-text over filled fields; a substring match is close enough,
    plus digit matching so that a phone written any way finds the stored one."""
    needle = query.strip().casefold()
    if any(needle in text.casefold() for text in [contact.name, *contact.field_values()]):
        return True
    query_digits = _digits(query)
    return len(query_digits) >= MIN_PHONE_QUERY_DIGITS and any(
        query_digits in _digits(phone) for phone in contact.field_values("PHONE")
    )
