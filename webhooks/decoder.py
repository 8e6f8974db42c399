"""amoCRM webhook bodies decoded into events, whatever arrives, without ever raising.

amoCRM posts `application/x-www-form-urlencoded` bodies with PHP-style nested keys
(`leads[status][0][status_id]=142`) and every value a string; some callers send the same
structure as JSON. The ack path must answer within amoCRM's 2 seconds whatever the body,
so what cannot be understood is reported in `DecodedWebhook.problems` instead of raised.

Shape of decoded trees, for both formats: leaves are strings (JSON numbers, booleans and
nulls become the strings a PHP form would carry), a mapping whose keys are exactly
"0".."n-1" becomes a list in index order, any other mapping stays a dict (so `[0]`, `[2]`
stays `{"0": ..., "2": ...}`), and empty containers are `{}`. Lone UTF-16 surrogates, raw,
percent-encoded (`%ED%A0%BD`) or JSON-escaped (`\\ud83d`), are U+FFFD in names and values,
and are no problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from leadrelay.text import may_hold_surrogates, replace_surrogates

MAX_NESTING = 10
"""Keys in one path, the top-level name included; amoCRM's deepest (a custom field value,
`leads[status][0][custom_fields][0][values][0][value]`) has 8."""

_MAX_REPORTED_PROBLEMS = 20
# 19 digits hold any amoCRM id or unix time, and keep int() far from its 4300-digit limit.
_INTEGER = re.compile(r"\s*([+-]?[0-9]{1,19})\s*")
_LABEL_PART_LIMIT = 40
_JSON_TOO_DEEP = f"JSON nested deeper than {MAX_NESTING} levels; the deeper parts were dropped"


@dataclass(frozen=True)
class WebhookEvent:
    """One item of one entity/action group, e.g. `leads[status][0]`."""

    entity: str
    action: str
    entity_id: int | None
    status_id: int | None
    pipeline_id: int | None
    old_status_id: int | None
    old_pipeline_id: int | None
    last_modified: int | None
    # Excluded from the hash so events can live in sets despite holding a dict.
    item: dict[str, Any] = field(hash=False)

    @property
    def dedup_key(self) -> str:
        """Equal for redeliveries of one change, whether ids came as "142" or 142.

        Digital Pipeline webhooks carry no `last_modified`; a digest of the item stands in,
        so a lead leaving a stage and re-entering it with an identical item shares a key.
        """
        if self.last_modified is not None:
            version = str(self.last_modified)
        else:
            version = "sha256=" + _digest(self.item)
        return ":".join(
            (self.entity, _or_dash(self.entity_id), self.action, _or_dash(self.status_id), version)
        )


@dataclass(frozen=True)
class DecodedWebhook:
    events: tuple[WebhookEvent, ...]
    account_id: int | None
    account_subdomain: str | None
    problems: tuple[str, ...]

    @property
    def is_unparseable(self) -> bool:
        """Nothing usable came out and something went wrong (an empty body counts)."""
        return not self.events and bool(self.problems)


def parse_php_form(body: str) -> dict[str, Any]:
    """`a[b][0]=x&a[b][1]=y&a[c][]=z` → `{"a": {"b": ["x", "y"], "c": ["z"]}}`.

    Follows PHP where it matters for amoCRM: later pairs win when they collide (`a=1&a[b]=2`
    gives `{"a": {"b": "2"}}`, the reverse order gives `{"a": "1"}`), and `[]` appends after
    the highest index so far. Past `MAX_NESTING` keys, or after text that is not a `[...]`
    group, the rest of the name stays one literal key. Undecodable percent-escapes become
    U+FFFD. PHP's renaming of dots and spaces in the top-level name is not reproduced.
    """
    return _php_tree(parse_qsl(body, keep_blank_values=True))


def decode_webhook(raw: bytes, content_type: str | None) -> DecodedWebhook:
    """Events, account and problems from a webhook body; never raises.

    The body decides the format, because proxies and hand-written callers mislabel it: a
    body starting with `{` is JSON, and so is one starting with `[` when labelled JSON (so
    it is reported as a non-object); anything else is read as a PHP-style form.
    """
    problems: list[str] = []
    text = _utf8_text(raw, problems).removeprefix("\ufeff")
    body = text.lstrip()
    if not body:
        return DecodedWebhook((), None, None, ("body is empty",))
    if body.startswith("{") or (body.startswith("[") and _declares_json(content_type)):
        tree = _json_tree_from_text(body, problems)
    else:
        tree = _php_tree(_form_pairs(text, problems))
    if may_hold_surrogates(raw):
        tree = replace_surrogates(tree)

    events: list[WebhookEvent] = []
    account_id: int | None = None
    account_subdomain: str | None = None
    for name, group in tree.items():
        if name == "account":
            if isinstance(group, dict):
                account_id = _as_int(group.get("id"))
                account_subdomain = _as_text(group.get("subdomain"))
            else:
                problems.append("account is not a mapping")
        elif isinstance(group, dict):
            for action, items in group.items():
                events.extend(_group_events(name, action, items, problems))
        else:
            problems.append(f"{_label(name)} is not a group of actions")
    return DecodedWebhook(tuple(events), account_id, account_subdomain, _summarised(problems))


def _utf8_text(raw: bytes, problems: list[str]) -> str:
    try:
        return raw.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError:
        problems.append("body is not valid UTF-8; undecodable bytes were replaced")
        return raw.decode("utf-8", errors="replace")


def _declares_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _form_pairs(text: str, problems: list[str]) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, errors="surrogatepass")
    except UnicodeDecodeError:
        problems.append("percent-encoded bytes are not valid UTF-8; they were replaced")
        return parse_qsl(text, keep_blank_values=True)


class _Branch(dict[str, Any]):
    """A dict that remembers the next index for `[]`, as PHP arrays do."""

    __slots__ = ("next_index",)

    def __init__(self) -> None:
        super().__init__()
        self.next_index = 0

    def slot(self, segment: str) -> str:
        key = str(self.next_index) if segment == "" else segment
        index = _index(key)
        if index is not None and index >= self.next_index:
            self.next_index = index + 1
        return key


def _php_tree(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root = _Branch()
    for name, value in pairs:
        path = _split_name(name)
        node, key = root, path[0]
        for segment in path[1:]:
            child = node.get(key)
            if not isinstance(child, _Branch):
                child = node[key] = _Branch()
            node, key = child, child.slot(segment)
        node[key] = value
    # The top level names groups ("leads", "account"), never a list, even if they are digits.
    return {key: _settled(child) for key, child in root.items()}


def _split_name(name: str) -> list[str]:
    """`a[b][]` → ["a", "b", ""]; a name starting with `[` is taken literally."""
    opening = name.find("[")
    if opening <= 0:
        return [name]
    path = [name[:opening]]
    position = opening
    while name.startswith("[", position):
        closing = name.find("]", position + 1)
        if closing < 0:
            break
        # The last key allowed must end the name; otherwise the remainder becomes that key.
        if len(path) == MAX_NESTING - 1 and closing + 1 < len(name):
            break
        path.append(name[position + 1 : closing])
        position = closing + 1
    if position < len(name):
        path.append(name[position:])
    return path


def _settled(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    return _listed({key: _settled(child) for key, child in node.items()})


def _listed(branch: dict[str, Any]) -> dict[str, Any] | list[Any]:
    if branch and all(str(index) in branch for index in range(len(branch))):
        return [branch[str(index)] for index in range(len(branch))]
    return branch


def _index(key: str) -> int | None:
    """PHP's integer keys: canonical non-negative decimals ("7", not "07" nor "٧")."""
    if key.isascii() and key.isdigit() and len(key) <= 18 and (key == "0" or key[0] != "0"):
        return int(key)
    return None


def _json_tree_from_text(body: str, problems: list[str]) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except RecursionError:
        problems.append("JSON body is nested too deeply to read")
        return {}
    except ValueError as error:
        problems.append(f"body is not valid JSON: {error}")
        return {}
    if not isinstance(document, dict):
        problems.append(f"JSON body is a {type(document).__name__}, not an object")
        return {}
    return _json_children(document, 0, problems)


def _json_children(
    container: dict[str, Any] | list[Any], depth: int, problems: list[str]
) -> dict[str, Any]:
    """The form's shape from JSON: string leaves, lists for keys 0..n-1, depth capped."""
    entries = container.items() if isinstance(container, dict) else enumerate(container)
    branch: dict[str, Any] = {}
    for key, child in entries:
        if isinstance(child, dict | list):
            if depth + 1 >= MAX_NESTING:
                if _JSON_TOO_DEEP not in problems:
                    problems.append(_JSON_TOO_DEEP)
                continue
            branch[str(key)] = _listed(_json_children(child, depth + 1, problems))
        else:
            branch[str(key)] = _json_scalar_text(child)
    return branch


def _json_scalar_text(value: Any) -> str:
    """What PHP's http_build_query would send for this JSON scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _group_events(entity: str, action: str, items: Any, problems: list[str]) -> list[WebhookEvent]:
    if isinstance(items, list):
        entries: Iterable[tuple[str, Any]] = ((str(i), item) for i, item in enumerate(items))
    elif isinstance(items, dict):
        entries = items.items()
    else:
        problems.append(f"{_label(entity, action)} holds a value, not items")
        return []
    events: list[WebhookEvent] = []
    for index, item in entries:
        if isinstance(item, dict):
            events.append(_event(entity, action, item))
        else:
            problems.append(f"{_label(entity, action, index)} is not a mapping")
    return events


NOTE = "note"
CHAT_MESSAGE = "message"
UNSORTED = "unsorted"
"""Actions of items whose entity id is not their top-level `id`; see `_routed_event`."""

_ENTITY_TYPES = {
    "lead": "leads",
    "contact": "contacts",
    "company": "companies",
    "customer": "customers",
}
# A note's `element_type`, as amoCRM numbers entities.
_ELEMENT_TYPES = {"1": "contacts", "2": "leads", "3": "companies", "12": "customers"}


def _event(entity: str, action: str, item: dict[str, Any]) -> WebhookEvent:
    routed = _routed_event(entity, action, item)
    if routed is not None:
        return routed
    return WebhookEvent(
        entity=_entity_of(entity, item),
        action=action,
        entity_id=_as_int(item.get("id")),
        status_id=_as_int(item.get("status_id")),
        pipeline_id=_as_int(item.get("pipeline_id")),
        old_status_id=_as_int(item.get("old_status_id")),
        old_pipeline_id=_as_int(item.get("old_pipeline_id")),
        last_modified=_as_int(item.get("last_modified")),
        item=item,
    )


def _routed_event(group: str, action: str, item: dict[str, Any]) -> WebhookEvent | None:
    """Items that carry their entity's id elsewhere, as the entity they are about:

    - `leads[note]` (and `contacts[note]`...): the entity is `note.element_id`;
    - `message[add]` (a chat message, whose own id is a UUID): `entity_type` and
      `entity_id`, else the talk (`talks`, `talk_id`);
    - `unsorted[add]` (an incoming request, whose `uid` is a hex string): the lead it made,
      `lead_id`.

    Their action is then `note`, `message` or `unsorted`. They have no `last_modified` of
    their own, so their dedup key is a digest of the item, which holds their unique id.
    """
    if action == "add" and group == "message":
        entity = _ENTITY_TYPES.get(str(item.get("entity_type")), "leads")
        entity_id = _as_int(item.get("entity_id"))
        if entity_id is None:
            entity, entity_id = "talks", _as_int(item.get("talk_id"))
        return _about(entity, CHAT_MESSAGE, entity_id, item)
    if action == "add" and group == "unsorted":
        return _about("leads", UNSORTED, _as_int(item.get("lead_id")), item)
    note = item.get("note")
    if action == NOTE and isinstance(note, dict):
        entity = _ELEMENT_TYPES.get(str(note.get("element_type")), group)
        return _about(entity, NOTE, _as_int(note.get("element_id")), item)
    return None


def _about(entity: str, action: str, entity_id: int | None, item: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent(
        entity=entity,
        action=action,
        entity_id=entity_id,
        status_id=None,
        pipeline_id=_as_int(item.get("pipeline_id")),
        old_status_id=None,
        old_pipeline_id=None,
        last_modified=None,
        item=item,
    )


def _entity_of(group: str, item: dict[str, Any]) -> str:
    """Companies arrive under `contacts`; only the item's `type` tells them apart."""
    if group == "contacts" and item.get("type") == "company":
        return "companies"
    return group


def _as_int(value: Any) -> int | None:
    if isinstance(value, str) and (match := _INTEGER.fullmatch(value)):
        return int(match.group(1))
    return None


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _digest(item: dict[str, Any]) -> str:
    canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def _or_dash(number: int | None) -> str:
    return "-" if number is None else str(number)


def _label(*path: str) -> str:
    """`leads[add][0]`, with each part cut short so hostile names cannot bloat problems."""
    head, *rest = (part[:_LABEL_PART_LIMIT] for part in path)
    return head + "".join(f"[{part}]" for part in rest)


def _summarised(problems: list[str]) -> tuple[str, ...]:
    if len(problems) <= _MAX_REPORTED_PROBLEMS:
        return tuple(problems)
    hidden = len(problems) - _MAX_REPORTED_PROBLEMS
    return (*problems[:_MAX_REPORTED_PROBLEMS], f"… and {hidden} more problems")
