"""Check every call's parameters against the AWS API model botocore ships (the services' own definitions).

botocore validates names, types and required members before it sends a call; AWS also enforces each field's enum,
length, numeric range and pattern, which botocore leaves to the server and moto mostly does not check. This adds
them, so a bad enum or an over-long name fails here as it would in AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from botocore.model import Shape


class ApiModelError(AssertionError):
    """A parameter AWS would reject (enum, length, range or pattern of its shape)."""


@cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """The shape's pattern, or None when it uses Java regex syntax Python does not share."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _bounds(shape: Shape, size: int, what: str, path: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield f"{path}: {what} {size} is below the minimum {low}"
    if high is not None and size > high:
        yield f"{path}: {what} {size} is above the maximum {high}"


def violations(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """Where `value` breaks its shape's constraints."""
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key in members:  # an unknown member is botocore's to report (ParamValidationError)
                yield from violations(members[key], item, f"{path}.{key}")
    elif kind == "list":
        yield from _bounds(shape, len(value), "length", path)
        for index, item in enumerate(value):
            yield from violations(shape.member, item, f"{path}[{index}]")  # type: ignore[attr-defined]
    elif kind == "map":
        for key, item in value.items():
            yield from violations(shape.key, key, f"{path} key")  # type: ignore[attr-defined]
            yield from violations(shape.value, item, f"{path}.{key}")  # type: ignore[attr-defined]
    elif kind == "string":
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            yield f"{path}: {value!r} is not one of {enum}"
        yield from _bounds(shape, len(value), "length", path)
        pattern = _pattern(shape.metadata["pattern"]) if "pattern" in shape.metadata else None
        if pattern is not None and not pattern.fullmatch(value):
            yield f"{path}: {value!r} does not match {shape.metadata['pattern']}"
    elif kind in ("integer", "long"):
        yield from _bounds(shape, value, "value", path)


def check_parameters(params: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore's `before-parameter-build` hook: fail the call before it is sent if AWS would reject it."""
    found = list(violations(model.input_shape, params, model.name)) if model.input_shape else []
    if found:
        raise ApiModelError("; ".join(found))
