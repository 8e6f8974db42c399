"""How leadrelay's values become Temporal payloads: JSON written as UTF-8.

The SDK's default JSON escapes every non-ASCII character (`\\u0410`), so Cyrillic costs 6
bytes a letter instead of 2, and a form three times smaller reaches Temporal's 2 MB limit.
Both encodings are the same JSON to a reader, so histories written by either replay.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    AdvancedJSONEncoder,
    BinaryNullPayloadConverter,
    BinaryPlainPayloadConverter,
    BinaryProtoPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    JSONPlainPayloadConverter,
    JSONProtoPayloadConverter,
)

from leadrelay.text import replace_surrogates


class Utf8JSONPayloadConverter(JSONPlainPayloadConverter):
    """`json/plain`, with non-ASCII text as UTF-8 rather than `\\u` escapes."""

    def to_payload(self, value: Any) -> Payload | None:
        text = json.dumps(
            value,
            cls=AdvancedJSONEncoder,
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        )
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate cannot be UTF-8, nor be sent on by an activity (httpx writes
            # JSON as UTF-8): it becomes U+FFFD, as it does where text enters.
            data = replace_surrogates(text).encode("utf-8")
        return Payload(metadata={"encoding": self.encoding.encode()}, data=data)


class LeadrelayPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, with UTF-8 JSON in place of escaped JSON."""

    def __init__(self) -> None:
        super().__init__(
            BinaryNullPayloadConverter(),
            BinaryPlainPayloadConverter(),
            JSONProtoPayloadConverter(),
            BinaryProtoPayloadConverter(),
            Utf8JSONPayloadConverter(),
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=LeadrelayPayloadConverter
)
