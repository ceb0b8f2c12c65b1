"""Parsing the JSON Meta sends (webhook bodies, signed requests, Graph responses).

Every string that comes out must be text the store can hold. orjson guarantees that; the
standard parser, kept for the documents orjson refuses and the standard parser takes (NaN,
numbers beyond a double, a byte-order mark), also takes a lone surrogate escape such as
``"\\ud800"``, which no UTF-8 text can hold: the database refuses the row, and one such
delivery stored with others would fail their whole batch. It is refused here instead.
"""

from __future__ import annotations

import json

import orjson


def loads(raw: bytes | str) -> object:
    """The parsed document; ``ValueError`` (or ``RecursionError``) when it is not storable JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = json.loads(raw)
    # Only the rare documents orjson refused get here: encoding them again finds any lone
    # surrogate (UnicodeEncodeError is a ValueError).
    json.dumps(data, ensure_ascii=False).encode("utf-8")
    return data
