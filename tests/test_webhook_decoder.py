"""amoCRM webhook decoding: the real bodies, the conventions, and never raising."""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadrelay.text import may_hold_surrogates
from webhooks import MAX_NESTING, DecodedWebhook, decode_webhook, parse_php_form

FORM = "application/x-www-form-urlencoded"

# seed-forms.md section 2, shown decoded, one pair per line.
ACCOUNT_STATUS_CHANGE = """\
leads[status][0][id]=25399013
leads[status][0][name]=Профтест: Айгерим
leads[status][0][status_id]=142
leads[status][0][old_status_id]=81854578
leads[status][0][pipeline_id]=10350882
leads[status][0][price]=5000
leads[status][0][responsible_user_id]=123
leads[status][0][last_modified]=1703300000
leads[status][0][modified_user_id]=123
leads[status][0][created_user_id]=123
leads[status][0][date_create]=1703200000
leads[status][0][account_id]=29000000
leads[status][0][custom_fields][0][id]=434731
leads[status][0][custom_fields][0][name]=utm_source
leads[status][0][custom_fields][0][values][0][value]=fb
account[subdomain]=schoolkz
account[id]=29000000
account[_links][self]=https://schoolkz.amocrm.ru"""

DIGITAL_PIPELINE_STAGE = (
    "leads[status][0][id]=10754147&leads[status][0][status_id]=54423922"
    "&leads[status][0][pipeline_id]=6344290&leads[status][0][old_status_id]=54435014"
    "&leads[status][0][old_pipeline_id]=6344290&account[id]=30307558&account[subdomain]=schoolkz"
)

NEW_CONTACT = (
    "contacts[add][0][id]=10952709&contacts[add][0][name]=Контакт&contacts[add][0][type]=contact"
    "&contacts[add][0][custom_fields][0][id]=575809&contacts[add][0][custom_fields][0][code]=PHONE"
    "&contacts[add][0][custom_fields][0][values][0][value]=+76665554433"
    "&contacts[add][0][custom_fields][0][values][0][enum]=311321"
    "&contacts[add][0][linked_leads_id][7551167][ID]=7551167&account[subdomain]=schoolkz"
)


def on_the_wire(pairs: list[tuple[str, str]]) -> bytes:
    """Percent-encoded as amoCRM sends it: `leads%5Bstatus%5D%5B0%5D%5Bid%5D=...`."""
    return urlencode(pairs).encode()


def lines_on_the_wire(decoded_lines: str) -> bytes:
    return on_the_wire([tuple(line.split("=", 1)) for line in decoded_lines.splitlines()])


def query_on_the_wire(decoded_query: str) -> bytes:
    return on_the_wire([tuple(pair.split("=", 1)) for pair in decoded_query.split("&")])


def decode_form(body: bytes) -> DecodedWebhook:
    return decode_webhook(body, FORM)


def test_account_status_change() -> None:
    body = lines_on_the_wire(ACCOUNT_STATUS_CHANGE)
    assert body.startswith(b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=25399013&")

    decoded = decode_form(body)

    assert decoded.problems == ()
    assert decoded.account_id == 29000000
    assert decoded.account_subdomain == "schoolkz"
    [event] = decoded.events
    assert (event.entity, event.action, event.entity_id) == ("leads", "status", 25399013)
    assert (event.status_id, event.old_status_id) == (142, 81854578)
    assert (event.pipeline_id, event.old_pipeline_id) == (10350882, None)
    assert event.last_modified == 1703300000
    assert event.item["name"] == "Профтест: Айгерим"
    assert event.item["custom_fields"] == [
        {"id": "434731", "name": "utm_source", "values": [{"value": "fb"}]}
    ]
    assert parse_php_form(body.decode())["account"]["_links"] == {
        "self": "https://schoolkz.amocrm.ru"
    }


def test_digital_pipeline_stage_without_last_modified() -> None:
    decoded = decode_form(query_on_the_wire(DIGITAL_PIPELINE_STAGE))

    assert decoded.problems == ()
    assert (decoded.account_id, decoded.account_subdomain) == (30307558, "schoolkz")
    [event] = decoded.events
    assert (event.entity, event.action, event.entity_id) == ("leads", "status", 10754147)
    assert (event.status_id, event.pipeline_id) == (54423922, 6344290)
    assert (event.old_status_id, event.old_pipeline_id) == (54435014, 6344290)
    assert event.last_modified is None


def test_new_contact_with_custom_fields_and_linked_leads() -> None:
    decoded = decode_form(query_on_the_wire(NEW_CONTACT))

    assert decoded.problems == ()
    assert (decoded.account_id, decoded.account_subdomain) == (None, "schoolkz")
    [event] = decoded.events
    assert (event.entity, event.action, event.entity_id) == ("contacts", "add", 10952709)
    assert event.status_id is None
    [phone] = event.item["custom_fields"]
    assert (phone["id"], phone["code"]) == ("575809", "PHONE")
    assert phone["values"] == [{"value": "+76665554433", "enum": "311321"}]
    # A non-contiguous index stays a dict keyed by the lead id.
    assert event.item["linked_leads_id"] == {"7551167": {"ID": "7551167"}}


def test_literal_plus_in_a_form_body_is_a_space() -> None:
    """Form encoding, not us: only a percent-encoded `+` survives, as amoCRM sends it."""
    [event] = decode_form(NEW_CONTACT.encode()).events
    assert event.item["custom_fields"][0]["values"][0]["value"] == " 76665554433"


def test_companies_arrive_under_contacts_and_are_told_apart_by_type() -> None:
    body = query_on_the_wire(
        "contacts[update][0][id]=1&contacts[update][0][type]=company"
        "&contacts[update][1][id]=2&contacts[update][1][type]=contact"
    )
    assert [(e.entity, e.entity_id) for e in decode_form(body).events] == [
        ("companies", 1),
        ("contacts", 2),
    ]


def test_several_groups_and_items_in_one_post() -> None:
    body = on_the_wire(
        [
            ("leads[status][0][id]", "1"),
            ("leads[status][0][status_id]", "142"),
            ("leads[status][1][id]", "2"),
            ("leads[status][1][status_id]", "143"),
            ("leads[add][0][id]", "3"),
            ("contacts[update][0][id]", "4"),
            ("contacts[update][0][type]", "contact"),
            ("task[update][0][id]", "5"),
            ("account[id]", "7"),
        ]
    )
    decoded = decode_form(body)

    assert decoded.problems == ()
    assert decoded.account_id == 7
    assert [(e.entity, e.action, e.entity_id, e.status_id) for e in decoded.events] == [
        ("leads", "status", 1, 142),
        ("leads", "status", 2, 143),
        ("leads", "add", 3, None),
        ("contacts", "update", 4, None),
        ("task", "update", 5, None),
    ]


def status_change_as_json() -> dict[str, Any]:
    return {
        "leads": {
            "status": [
                {
                    "id": 25399013,
                    "name": "Профтест: Айгерим",
                    "status_id": 142,
                    "old_status_id": 81854578,
                    "pipeline_id": 10350882,
                    "price": 5000,
                    "responsible_user_id": 123,
                    "last_modified": 1703300000,
                    "modified_user_id": 123,
                    "created_user_id": 123,
                    "date_create": 1703200000,
                    "account_id": 29000000,
                    "custom_fields": [
                        {"id": 434731, "name": "utm_source", "values": [{"value": "fb"}]}
                    ],
                }
            ]
        },
        "account": {
            "subdomain": "schoolkz",
            "id": 29000000,
            "_links": {"self": "https://schoolkz.amocrm.ru"},
        },
    }


def test_json_with_numbers_decodes_like_the_form_with_strings() -> None:
    from_form = decode_form(lines_on_the_wire(ACCOUNT_STATUS_CHANGE))
    body = json.dumps(status_change_as_json(), ensure_ascii=False).encode()

    for content_type in ("application/json; charset=utf-8", FORM, None, "text/plain"):
        assert decode_webhook(body, content_type) == from_form


def test_form_body_labelled_json_is_still_read_as_a_form() -> None:
    body = lines_on_the_wire(ACCOUNT_STATUS_CHANGE)
    assert decode_webhook(body, "application/json") == decode_form(body)


def test_json_index_keyed_objects_and_scalars_are_normalised() -> None:
    body = json.dumps(
        {"leads": {"add": {"0": {"id": 5.0, "flag": True, "off": False, "none": None}}}}
    ).encode()
    [event] = decode_webhook(body, "application/json").events
    assert event.item == {"id": "5", "flag": "1", "off": "0", "none": ""}


def test_dedup_key_is_stable_across_redeliveries() -> None:
    body = lines_on_the_wire(ACCOUNT_STATUS_CHANGE)
    [first] = decode_form(body).events
    [again] = decode_form(body).events

    assert first.dedup_key == again.dedup_key == "leads:25399013:status:142:1703300000"


def test_dedup_key_changes_with_last_modified() -> None:
    later = ACCOUNT_STATUS_CHANGE.replace("last_modified]=1703300000", "last_modified]=1703300060")
    [first] = decode_form(lines_on_the_wire(ACCOUNT_STATUS_CHANGE)).events
    [second] = decode_form(lines_on_the_wire(later)).events

    assert first.dedup_key != second.dedup_key


def test_dedup_key_ignores_whether_numbers_came_as_strings() -> None:
    as_strings = decode_form(b"leads[status][0][id]=9&leads[status][0][status_id]=142")
    as_numbers = decode_webhook(b'{"leads": {"status": [{"id": 9, "status_id": 142}]}}', None)

    assert as_strings.events[0].dedup_key == as_numbers.events[0].dedup_key


def test_dedup_key_without_last_modified_hashes_the_item() -> None:
    [first] = decode_form(query_on_the_wire(DIGITAL_PIPELINE_STAGE)).events
    [again] = decode_form(query_on_the_wire(DIGITAL_PIPELINE_STAGE)).events
    moved_elsewhere = DIGITAL_PIPELINE_STAGE.replace("old_status_id]=54435014", "old_status_id]=1")
    [other] = decode_form(query_on_the_wire(moved_elsewhere)).events

    assert first.dedup_key == again.dedup_key
    assert first.dedup_key.startswith("leads:10754147:status:54423922:sha256=")
    assert other.dedup_key != first.dedup_key


def test_lists_only_for_exactly_zero_to_n_minus_one() -> None:
    assert parse_php_form("a[1]=y&a[0]=x") == {"a": ["x", "y"]}
    assert parse_php_form("a[0]=x&a[2]=z") == {"a": {"0": "x", "2": "z"}}
    assert parse_php_form("a[0]=x&a[01]=y") == {"a": {"0": "x", "01": "y"}}
    # Group names stay a mapping even when they look like indices.
    assert parse_php_form("0=x&1=y") == {"0": "x", "1": "y"}


def test_empty_brackets_append_after_the_highest_index() -> None:
    assert parse_php_form("a[]=1&a[]=2") == {"a": ["1", "2"]}
    assert parse_php_form("a[5]=x&a[]=y") == {"a": {"5": "x", "6": "y"}}
    assert parse_php_form("a[][id]=1&a[][id]=2") == {"a": [{"id": "1"}, {"id": "2"}]}


def test_colliding_names_later_pair_wins() -> None:
    assert parse_php_form("a=1&a[b]=2") == {"a": {"b": "2"}}
    assert parse_php_form("a[b]=2&a=1") == {"a": "1"}
    assert parse_php_form("a=1&a=2") == {"a": "2"}


def test_malformed_brackets_stay_literal() -> None:
    assert parse_php_form("a[b=1") == {"a": {"[b": "1"}}
    assert parse_php_form("a[b]c=1") == {"a": {"b": {"c": "1"}}}
    assert parse_php_form("[a]=1") == {"[a]": "1"}
    assert parse_php_form("flag") == {"flag": ""}


def depth(tree: Any) -> int:
    children = tree.values() if isinstance(tree, dict) else tree
    if isinstance(tree, dict | list):
        return 1 + max((depth(child) for child in children), default=0)
    return 0


def test_absurd_nesting_is_capped_with_a_literal_remainder() -> None:
    name = "a" + "[x]" * 10_000
    tree = parse_php_form(f"{name}=1")

    assert depth(tree) == MAX_NESTING
    node: Any = tree
    for _ in range(MAX_NESTING - 1):
        [node] = node.values()
    assert node == {"[x]" * (10_000 - MAX_NESTING + 2): "1"}


def test_the_deepest_amocrm_path_fits() -> None:
    path = "a" + "[b]" * (MAX_NESTING - 1)
    assert depth(parse_php_form(f"{path}=1")) == MAX_NESTING


def test_empty_body_is_unparseable() -> None:
    for body in (b"", b"  \r\n"):
        decoded = decode_form(body)
        assert decoded.events == ()
        assert decoded.is_unparseable


def test_account_only_body_is_empty_but_understood() -> None:
    decoded = decode_form(b"account[id]=1&account[subdomain]=schoolkz")
    assert decoded.events == ()
    assert not decoded.is_unparseable


def test_non_utf8_body_still_yields_events_and_a_problem() -> None:
    decoded = decode_form(b"leads[add][0][id]=7&leads[add][0][name]=\xff\xfe")
    assert [e.entity_id for e in decoded.events] == [7]
    assert decoded.events[0].item["name"] == "\ufffd\ufffd"
    assert any("UTF-8" in problem for problem in decoded.problems)

    escaped = decode_form(b"leads[add][0][id]=7&leads[add][0][name]=%FF")
    assert [e.entity_id for e in escaped.events] == [7]
    assert any("UTF-8" in problem for problem in escaped.problems)


def test_lone_surrogates_become_replacement_characters_not_problems() -> None:
    """Percent-encoded, raw (CESU-8) or JSON-escaped, in names and values alike."""
    for body in (
        b"leads[add][0][id]=7&leads[add][0][name]=%D0%90%ED%A0%BD&leads[add][0][%ED%B8%80]=1",
        b"leads[add][0][id]=7&leads[add][0][name]=\xd0\x90\xed\xa0\xbd&leads[add][0][\xed\xb8\x80]=1",
        b'{"leads": {"add": [{"id": 7, "name": "\\u0410\\ud83d", "\\ude00": 1}]}}',
    ):
        decoded = decode_webhook(body, None)
        assert decoded.problems == (), body
        [event] = decoded.events
        assert event.item == {"id": "7", "name": "\u0410\ufffd", "\ufffd": "1"}, body


def test_truncated_and_absurd_json_is_unparseable_not_an_exception() -> None:
    for body in (
        b'{"leads": {"status": [{"id": 1',
        b"{" + b'"a":[' * 100_000,
        b"[" * 200_000,
        b"[1, 2]",
        b'{"n": 1' + b"0" * 5000 + b"}",
    ):
        decoded = decode_webhook(body, "application/json")
        assert decoded.is_unparseable, body[:40]


def test_deep_json_keeps_what_fits_and_says_what_was_dropped() -> None:
    deep: Any = "bottom"
    for _ in range(50):
        deep = {"x": deep}
    body = json.dumps({"leads": {"add": [{"id": 1, "deep": deep}]}}).encode()

    decoded = decode_webhook(body, "application/json")

    assert [e.entity_id for e in decoded.events] == [1]
    assert depth(decoded.events[0].item) <= MAX_NESTING - 3
    assert decoded.problems and "deeper" in decoded.problems[0]


def test_unknown_groups_and_odd_items() -> None:
    body = query_on_the_wire(
        "catalogs[sync][0][id]=3&leads[add][0]=oops&leads[delete]=x&junk=1&account=2"
    )
    decoded = decode_form(body)

    assert [(e.entity, e.action, e.entity_id) for e in decoded.events] == [("catalogs", "sync", 3)]
    assert len(decoded.problems) == 4
    assert not decoded.is_unparseable


def test_non_numeric_ids_are_none() -> None:
    [event] = decode_form(b"leads[add][0][id]=abc&leads[add][0][status_id]=%20142%20").events
    assert (event.entity_id, event.status_id) == (None, 142)


def test_many_problems_are_summarised() -> None:
    body = "&".join(f"leads[add][{i}]=x" for i in range(1000)).encode()
    decoded = decode_form(body)
    assert decoded.is_unparseable
    assert len(decoded.problems) == 21
    assert decoded.problems[-1] == "… and 980 more problems"


def test_a_big_body_decodes_every_item() -> None:
    body = "&".join(
        f"leads[update][{i}][id]={i}&leads[update][{i}][last_modified]=1" for i in range(20_000)
    ).encode()
    decoded = decode_form(body)
    assert len(decoded.events) == 20_000
    assert decoded.events[-1].entity_id == 19_999


# --- properties ------------------------------------------------------------------------

SAFE_KEYS = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=6)


def trees(levels: int) -> st.SearchStrategy[Any]:
    """Nested dicts and lists of text, `levels` deep at most below the current key."""
    leaf = st.text(max_size=8)
    if levels == 0:
        return leaf
    below = trees(levels - 1)
    return st.one_of(
        leaf,
        st.dictionaries(SAFE_KEYS, below, min_size=1, max_size=3),
        st.lists(below, min_size=1, max_size=3),
    )


def flattened(tree: Any, name: str) -> list[tuple[str, str]]:
    if isinstance(tree, dict):
        entries = tree.items()
    elif isinstance(tree, list):
        entries = ((str(i), child) for i, child in enumerate(tree))
    else:
        return [(name, tree)]
    return [pair for key, child in entries for pair in flattened(child, f"{name}[{key}]")]


def as_decoded(tree: Any) -> Any:
    """The decoder's convention: a mapping with keys exactly "0".."n-1" is a list."""
    if isinstance(tree, list):
        return [as_decoded(child) for child in tree]
    if not isinstance(tree, dict):
        return tree
    decoded = {key: as_decoded(child) for key, child in tree.items()}
    if all(str(i) in decoded for i in range(len(decoded))):
        return [decoded[str(i)] for i in range(len(decoded))]
    return decoded


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(SAFE_KEYS, trees(MAX_NESTING - 1), min_size=1, max_size=4))
def test_php_form_round_trip(document: dict[str, Any]) -> None:
    pairs = [pair for name, tree in document.items() for pair in flattened(tree, name)]
    expected = {name: as_decoded(tree) for name, tree in document.items()}

    assert parse_php_form(urlencode(pairs)) == expected


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from([FORM, "application/json", "application/json; charset=utf-8", "text/plain"]),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)
BRACKET_SOUP = st.text(alphabet='[]=&%+;{}"0123ab \x00ы', max_size=120)


def assert_well_formed(decoded: DecodedWebhook) -> None:
    assert isinstance(decoded, DecodedWebhook)
    for event in decoded.events:
        assert isinstance(event.dedup_key, str)
    assert decoded.is_unparseable == (not decoded.events and bool(decoded.problems))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.sampled_from(["leads", "contacts", "account"]), JSON_VALUES).map(
            lambda value: json.dumps(value).encode()
        ),
    ),
    CONTENT_TYPES,
)
def test_decode_webhook_never_raises(raw: bytes, content_type: str | None) -> None:
    assert_well_formed(decode_webhook(raw, content_type))


@settings(max_examples=300, deadline=None)
@given(BRACKET_SOUP, CONTENT_TYPES)
def test_bracket_soup_never_raises(body: str, content_type: str | None) -> None:
    tree = parse_php_form(body)
    assert isinstance(tree, dict)
    assert depth(tree) <= MAX_NESTING
    assert_well_formed(decode_webhook(body.encode(), content_type))


@pytest.mark.parametrize(
    ("raw", "may_hold"),
    [
        (b'{"name": "\\ud83d"}', True),
        (b'{"name": "\\uDE00"}', True),
        (b"name=%ED%A0%BD", True),
        (b"name=%ed%b8%80", True),
        ("name=\ud83d".encode("utf-8", "surrogatepass"), True),
        ('{"name": "Айгерим \\u0430 😀"}'.encode(), False),
        (b"name=%D0%90%ED%95%9C", False),
    ],
)
def test_only_bodies_that_can_encode_a_surrogate_are_walked_for_one(
    raw: bytes, may_hold: bool
) -> None:
    assert may_hold_surrogates(raw) is may_hold
