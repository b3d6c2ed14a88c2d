"""Hostile request bodies (huge batches of unknown keys or empty records), built the same way by the tests and by
`tests.benchmarks.hostile_requests`."""

from __future__ import annotations

import json
from typing import Any

#: Records in the hostile batch, and unknown keys in each: 2,017,013 bytes, under the default 2 MiB body limit.
BATCH_RECORDS = 1_000
BATCH_UNKNOWN_KEYS = 293
#: Unknown keys in the hostile single record: 1,902,304 bytes.
SINGLE_UNKNOWN_KEYS = 216_699
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def short_name(number: int) -> str:
    """`number` in base 36: the shortest distinct key names, so the most keys fit in the body limit."""
    name = ""
    while True:
        number, digit = divmod(number, len(_DIGITS))
        name = _DIGITS[digit] + name
        if number == 0:
            return name


def unknown_keys(count: int) -> dict[str, int]:
    """A record of `count` unknown keys and none of the 21 features."""
    return {short_name(k): 0 for k in range(count)}


def compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def hostile_batch() -> bytes:
    """`POST /predict/batch`: 1,000 records of 293 unknown keys each (314,000 problems in all)."""
    return compact({"records": [unknown_keys(BATCH_UNKNOWN_KEYS)] * BATCH_RECORDS})


def hostile_record() -> bytes:
    """`POST /predict`: one record of 216,699 unknown keys."""
    return compact(unknown_keys(SINGLE_UNKNOWN_KEYS))
