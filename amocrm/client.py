"""A small async amoCRM v4 client: one method per request, explicit errors.

Each public method sends exactly one HTTP request, so that an activity wrapping it
spends exactly one token of the amoCRM task queue's rate limit. The exceptions are OAuth
refreshes (about once a day, and after a 401 once): they go through the same pacer, so the
process never exceeds its budget, and the Temporal queue's limit simply does not see them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from amocrm.auth import LongLivedToken, TokenSource
from amocrm.errors import (
    AmoAuthError,
    AmoBlocked,
    AmoError,
    AmoOutcomeUnknown,
    AmoRateLimited,
    AmoRejected,
)
from amocrm.models import (
    AccountUser,
    Contact,
    CreatedLead,
    CreatedNote,
    Lead,
    LeadChange,
    MultitextValue,
    NewLead,
    NewNote,
    Pipeline,
    complex_item,
    echoed_request_id,
    note_item,
    parse_contact,
    parse_custom_field,
    parse_lead,
    parse_pipeline,
    parse_user,
    phones_body,
)
from amocrm.pacing import RequestPacer
from leadrelay.custom_fields import CustomField, FieldEntity
from leadrelay.text import may_hold_surrogates, replace_surrogates

USER_AGENT = "leadrelay/0.1"
CONTACTS_PATH = "/api/v4/contacts"
LEADS_PATH = "/api/v4/leads"
PAGE_SIZE = 250
"""amoCRM's largest page; lists longer than this continue at `_links.next`."""
EVENTS_PAGE_SIZE = 100
LIST_PAGE_SIZE = 250
OAUTH_TOKEN_PATH = "/oauth2/access_token"


# Without a retry_after, a run of 429s pauses the process 1, 2, 4 ... seconds, at most this.
RATE_LIMIT_PAUSE_CAP = 60.0


@dataclass
class _Pause:
    """After a 429 or a 403, no request leaves this process until `until` (monotonic).

    amoCRM counts requests per integration and per IP, not per activity, and a run of 429s
    turns into a 403 block of the whole account. So a 429 pauses every request of the
    process, not only the one that was refused: whoever else spends the budget (another
    integration, another worker) gets room, and the run of 429s ends.
    """

    until: float = 0.0
    blocked: bool = False
    rate_limited_streak: int = 0

    def remaining(self) -> float:
        return max(0.0, self.until - time.monotonic())

    def rate_limited(self, retry_after: float | None) -> None:
        self.rate_limited_streak += 1
        seconds = retry_after
        if seconds is None:
            seconds = min(2.0 ** (self.rate_limited_streak - 1), RATE_LIMIT_PAUSE_CAP)
        self._extend(seconds, blocked=False)

    def block(self, seconds: float) -> None:
        self._extend(seconds, blocked=True)

    def answered(self) -> None:
        self.rate_limited_streak = 0

    def refusal(self, remaining: float) -> AmoError:
        if self.blocked:
            return AmoBlocked(
                f"amoCRM blocked this account; not calling for {remaining:.0f}s more",
                retry_after=remaining,
                status=403,
            )
        return AmoRateLimited(
            f"amoCRM answered 429; this worker pauses all requests for {remaining:.1f}s more",
            retry_after=remaining,
            status=429,
        )

    def _extend(self, seconds: float, *, blocked: bool) -> None:
        until = time.monotonic() + seconds
        if until > self.until:
            self.until, self.blocked = until, blocked


class AmoClient:
    def __init__(
        self,
        base_url: str,
        tokens: str | TokenSource,
        *,
        requests_per_second: float,
        timeout: float = 20.0,
        block_backoff: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )
        self._tokens = LongLivedToken(tokens) if isinstance(tokens, str) else tokens
        self._pacer = RequestPacer(requests_per_second)
        self._pause = _Pause()
        self._block_backoff = block_backoff

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AmoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- contacts -------------------------------------------------------------

    async def search_contacts(
        self, query: str, next_page: str | None = None
    ) -> tuple[list[Contact], str | None]:
        """One page of contacts matching `query`, and the next page's link (None: last).

        Pass the link back as `next_page` to read the page after.
        """
        if next_page is not None:
            body = await self._request("GET", _same_list(next_page, CONTACTS_PATH))
        else:
            params = {"query": query, "with": "leads", "limit": str(PAGE_SIZE)}
            body = await self._request("GET", CONTACTS_PATH, params=params)
        contacts = [parse_contact(raw) for raw in _embedded(body, "contacts")]
        return contacts, _next_page(body, CONTACTS_PATH)

    async def set_contact_phones(self, contact_id: int, phones: Sequence[MultitextValue]) -> None:
        """All of the contact's phones: amoCRM replaces a multitext field's values whole."""
        await self._request("PATCH", f"/api/v4/contacts/{contact_id}", json=phones_body(phones))

    # --- leads ----------------------------------------------------------------

    async def create_leads_complex(self, leads: Sequence[NewLead]) -> list[CreatedLead]:
        """Up to 50 leads, each with its contact. Each answer carries its item's request_id."""
        body = await self._request(
            "POST", "/api/v4/leads/complex", json=[complex_item(lead) for lead in leads]
        )
        if not isinstance(body, list):
            raise AmoOutcomeUnknown(f"leads/complex answered {type(body).__name__}, not a list")
        return [
            CreatedLead(
                lead_id=int(item["id"]),
                contact_id=int(item["contact_id"]) if item.get("contact_id") else None,
                merged=bool(item.get("merged")),
                request_id=echoed_request_id(item),
            )
            for item in body
        ]

    async def add_lead_notes(self, notes: Sequence[NewNote]) -> list[CreatedNote]:
        """Notes on several leads in one request. Each answer carries its item's request_id."""
        body = await self._request(
            "POST", "/api/v4/leads/notes", json=[note_item(note) for note in notes]
        )
        return [
            CreatedNote(
                note_id=int(item["id"]),
                lead_id=int(item["entity_id"]),
                request_id=echoed_request_id(item),
            )
            for item in _embedded(body, "notes")
        ]

    async def get_leads(
        self, ids: Sequence[int], next_page: str | None = None
    ) -> tuple[list[Lead], str | None]:
        """One page of the leads with these ids, and the next page's link (None: last).

        A deleted lead is simply not in the list.
        """
        if next_page is not None:
            body = await self._request("GET", _same_list(next_page, LEADS_PATH))
        else:
            params = [("filter[id][]", str(lead_id)) for lead_id in ids]
            params.append(("limit", str(PAGE_SIZE)))
            body = await self._request("GET", LEADS_PATH, params=params)
        return [parse_lead(raw) for raw in _embedded(body, "leads")], _next_page(body, LEADS_PATH)

    async def add_lead_tags(self, lead_id: int, tags: Sequence[str]) -> None:
        await self.update_lead(LeadChange(lead_id, tags_to_add=list(tags)))

    async def update_lead(self, change: LeadChange) -> None:
        await self._request("PATCH", f"/api/v4/leads/{change.lead_id}", json=change.body())

    async def add_lead_note(self, lead_id: int, text: str) -> None:
        await self._request(
            "POST",
            "/api/v4/leads/notes",
            json=[{"entity_id": lead_id, "note_type": "common", "params": {"text": text}}],
        )

    async def lead_note_texts(self, lead_id: int) -> list[str]:
        """The texts of the lead's newest notes (one page)."""
        body = await self._request(
            "GET",
            f"/api/v4/leads/{lead_id}/notes",
            params={"limit": "250", "order[id]": "desc"},
        )
        return [
            str((note.get("params") or {}).get("text") or "") for note in _embedded(body, "notes")
        ]

    async def get_lead_with_contacts(self, lead_id: int) -> dict[str, Any] | None:
        """The lead as amoCRM has it now, raw, with its contacts' ids; None when it was
        deleted (amoCRM answers a deleted lead with 204 and no body)."""
        body = await self._request("GET", f"{LEADS_PATH}/{lead_id}", params={"with": "contacts"})
        if body is None:
            return None
        if not isinstance(body, dict):
            raise AmoOutcomeUnknown(f"GET {LEADS_PATH}/{lead_id} answered a {type(body).__name__}")
        return body

    async def add_lead_task(self, lead_id: int, text: str, complete_till: int) -> None:
        await self._request(
            "POST",
            "/api/v4/tasks",
            json=[
                {
                    "text": text,
                    "complete_till": complete_till,
                    "entity_id": lead_id,
                    "entity_type": "leads",
                    "task_type_id": 1,
                }
            ],
        )

    async def lead_task_texts(self, lead_id: int) -> list[str]:
        """The texts of the lead's newest tasks (one page)."""
        body = await self._request(
            "GET",
            "/api/v4/tasks",
            params={
                "filter[entity_type]": "leads",
                "filter[entity_id][]": str(lead_id),
                "limit": "250",
                "order[id]": "desc",
            },
        )
        return [str(task.get("text") or "") for task in _embedded(body, "tasks")]

    async def lead_status_events(
        self, created_from: int, page: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of `lead_status_changed` events since a time, and whether more follow.

        No upper bound: amoCRM's clock may run ahead of ours.
        """
        body = await self._request(
            "GET",
            "/api/v4/events",
            params={
                "filter[type]": "lead_status_changed",
                "filter[created_at][from]": str(created_from),
                "limit": str(EVENTS_PAGE_SIZE),
                "page": str(page),
            },
        )
        return _embedded(body, "events"), _has_next(body)

    async def main_pipeline_id(self) -> int:
        for pipeline in await self.pipelines():
            if pipeline.is_main:
                return pipeline.id
        raise AmoRejected("the account has no main pipeline")

    async def pipelines(self) -> list[Pipeline]:
        """Every lead pipeline with its statuses (amoCRM does not page this list)."""
        body = await self._request("GET", "/api/v4/leads/pipelines")
        return [parse_pipeline(raw) for raw in _embedded(body, "pipelines")]

    # --- the account's catalogues ---------------------------------------------

    async def custom_fields_page(
        self, entity: FieldEntity, page: int = 1
    ) -> tuple[list[CustomField], bool]:
        """One page (250) of the entity's field catalogue, and whether more follow."""
        found, more = await self._list_page(
            f"/api/v4/{entity}/custom_fields", "custom_fields", page
        )
        return [parse_custom_field(raw) for raw in found], more

    async def users_page(self, page: int = 1) -> tuple[list[AccountUser], bool]:
        found, more = await self._list_page("/api/v4/users", "users", page)
        return [parse_user(raw) for raw in found], more

    async def _list_page(self, path: str, key: str, page: int) -> tuple[list[dict[str, Any]], bool]:
        body = await self._request(
            "GET", path, params={"limit": str(LIST_PAGE_SIZE), "page": str(page)}
        )
        return _embedded(body, key), _has_next(body)

    # --- auth -----------------------------------------------------------------

    async def keep_token_alive(self, max_age_seconds: float) -> bool:
        """Refresh an OAuth pair older than this (at most one request); whether it did."""
        return await self._tokens.keep_alive(max_age_seconds, self._grant)

    # --- transport ------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        token = await self._tokens.access_token(self._grant)
        response = await self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            renewed = await self._tokens.refresh_after_unauthorized(token, self._grant)
            if renewed is not None:
                # amoCRM applied nothing under the rejected token, so even a write is safe
                # to send again; a second 401 is final.
                response = await self._send(method, path, renewed, **kwargs)
        return self._decode(method, path, response)

    async def _grant(self, fields: dict[str, str]) -> Any:
        response = await self._send("POST", OAUTH_TOKEN_PATH, None, json=fields)
        return self._decode("POST", OAUTH_TOKEN_PATH, response)

    async def _send(
        self, method: str, path: str, token: str | None, **kwargs: Any
    ) -> httpx.Response:
        async with self._pacer.turn():
            # Checked after the wait: a pause may have begun while this request queued.
            paused_for = self._pause.remaining()
            if paused_for:
                raise self._pause.refusal(paused_for)
            headers = {"Authorization": f"Bearer {token}"} if token else None
            try:
                return await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as err:
                raise AmoOutcomeUnknown(f"{method} {path}: {type(err).__name__}: {err}") from err

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status != 429:
            self._pause.answered()  # any other answer ends a run of 429s
        request_id = response.headers.get("X-Request-Id")
        where = f"{method} {path} -> {status}"
        if status == 204:
            return None
        if 200 <= status < 300:
            try:
                return _json(response)
            except json.JSONDecodeError as err:
                raise AmoOutcomeUnknown(f"{where}: body is not JSON", status=status) from err
        problem = _problem(response)
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        message = f"{where}: {detail}"
        # OAuth failures say what is wrong only in `hint`, e.g. "Token has been revoked".
        if problem.get("hint"):
            message = f"{message} ({problem['hint']})"
        if status == 429:
            retry_after = _retry_after(response, problem)
            self._pause.rate_limited(retry_after)
            raise AmoRateLimited(
                message, retry_after=retry_after, status=status, request_id=request_id
            )
        if status == 403:
            self._pause.block(self._block_backoff)
            raise AmoBlocked(
                message, retry_after=self._block_backoff, status=status, request_id=request_id
            )
        if status in (401, 402):
            raise AmoAuthError(message, status=status, request_id=request_id)
        if status >= 500:
            raise AmoOutcomeUnknown(message, status=status, request_id=request_id)
        errors = _validation_errors(problem)
        problems = [
            f"{error.get('path')}: {error.get('code')} {error.get('detail') or ''}".strip()
            for error in errors
        ]
        if problems:
            message = f"{message}: {'; '.join(problems)}"
        raise AmoRejected(
            message,
            problems=problems,
            paths=[str(error.get("path") or "") for error in errors],
            rejected_items=_rejected_items(problem),
            status=status,
            request_id=request_id,
        )


def _embedded(body: Any, key: str) -> list[dict[str, Any]]:
    """A 204 (None) means an empty list, which is how amoCRM answers an empty search."""
    if body is None:
        return []
    return list((body.get("_embedded") or {}).get(key) or [])


def _next_page(body: Any, path: str) -> str | None:
    """The `_links.next` href of a list page, as a path and query on our base URL."""
    links = body.get("_links") if isinstance(body, dict) else None
    following = links.get("next") if isinstance(links, dict) else None
    href = following.get("href") if isinstance(following, dict) else None
    if not isinstance(href, str):
        return None
    parts = urlsplit(href)
    return urlunsplit(("", "", parts.path, parts.query, "")) if parts.path == path else None


def _same_list(next_page: str, path: str) -> str:
    """A next-page link is only followed within the list it came from."""
    if urlsplit(next_page).path != path:
        raise AmoRejected(f"next page {next_page!r} is not a page of {path}")
    return next_page


def _has_next(body: Any) -> bool:
    return body is not None and "next" in (body.get("_links") or {})


def _json(response: httpx.Response) -> Any:
    """amoCRM echoes what it was given, lone surrogates included (`"\\ud83d"` in a contact's
    name): they become U+FFFD, so that no answer can fail a Temporal payload or a request."""
    body = response.json()
    return replace_surrogates(body) if may_hold_surrogates(response.content) else body


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = _json(response)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response, problem: dict[str, Any]) -> float | None:
    for raw in (problem.get("retry_after"), response.headers.get("Retry-After")):
        try:
            return max(0.0, float(raw)) if raw is not None else None
        except (TypeError, ValueError):
            continue
    return None


def _validation_errors(problem: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        error
        for group in problem.get("validation-errors") or []
        if isinstance(group, dict)
        for error in group.get("errors") or []
        if isinstance(error, dict)
    ]


def _rejected_items(problem: dict[str, Any]) -> list[str]:
    """The request_ids of the batch items amoCRM named in its validation errors."""
    return [
        str(group["request_id"])
        for group in problem.get("validation-errors") or []
        if isinstance(group, dict) and group.get("request_id") is not None
    ]


__all__ = ["AmoClient", "AmoError"]
