"""Text from outside: lone UTF-16 surrogates become U+FFFD where it enters.

A lone surrogate (`"\\ud83d"` in JSON, `%ED%A0%BD` in a form: a script cut an emoji in
half) is a valid Python str but cannot be written as UTF-8, so it would fail every answer,
log line, Temporal payload and amoCRM request it reaches.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar, cast

_SURROGATE = re.compile("[\ud800-\udfff]")
# How a surrogate can be written in bytes: JSON-escaped (\uD800-\uDFFF), percent-encoded
# (%ED%A0-%ED%BF) or raw (ED A0-BF). Valid pairs match too; they are left as they are.
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|%[eE][dD]%[aAbB]|\xed[\xa0-\xbf]")


def may_hold_surrogates(raw: bytes) -> bool:
    """Whether text decoded from `raw` can hold a lone surrogate; most bodies cannot, and
    then `replace_surrogates` need not walk what they decode to."""
    return _SURROGATE_BYTES.search(raw) is not None


_T = TypeVar("_T")


def replace_surrogates(value: _T) -> _T:
    """Every lone surrogate in a str, or in the keys and values of nested lists and dicts
    (JSON's shapes), as U+FFFD; anything else is returned unchanged."""
    return cast(_T, _replaced(value))


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    return value
