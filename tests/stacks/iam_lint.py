"""IAM policy checks with parliament: its lint, and a stricter check that every action of a statement is granted
only on resources of a type AWS authorizes that action on (parliament's copy of the service authorization
reference), which catches a writable action left on the wrong kind of ARN even when the statement also lists a
right one; and a small evaluator of what a policy allows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # parliament imports pkg_resources
    from parliament import analyze_policy_string, is_arn_match
    from parliament.statement import get_arn_format, get_privilege_info


def findings(document: str) -> set[tuple[str, str]]:
    """(issue, detail) of every parliament finding of one policy document."""
    return {
        (finding.issue, json.dumps(finding.detail, sort_keys=True))
        for finding in analyze_policy_string(document).findings
    }


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def resource_type_mismatches(document: str) -> list[str]:
    """`action on resource` pairs where the resource is not of a type the action is authorized on.

    `*` is accepted only for actions that have no resource type (AWS authorizes them on `*` alone)."""
    problems = []
    for item in json.loads(document)["Statement"]:
        for action in _listed(item["Action"]):
            service, name = action.split(":")
            info = get_privilege_info(service, name)
            types = [entry["resource_type"] for entry in info["resource_types"] if entry["resource_type"]]
            for resource in _listed(item["Resource"]):
                if resource == "*":
                    if types:
                        problems.append(f"{action} on * (it is authorized on {types})")
                    continue
                formats = [get_arn_format(kind, info["service_resources"]) for kind in types]
                if not any(is_arn_match(kind, arn, resource) for kind, arn in zip(types, formats, strict=True)):
                    problems.append(f"{action} on {resource} (it is authorized on {types})")
    return problems


#: Condition operators the evaluator knows; any other one fails the check instead of being guessed.
_POSITIVE = {"StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool"}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _matches(operator: str, value: str, expected: list[str]) -> bool:
    if operator in ("StringEquals", "ArnEquals", "StringNotEquals", "ArnNotEquals"):
        # IAM's ArnEquals matches like ArnLike (wildcards allowed); StringEquals is exact.
        if operator.startswith("Arn"):
            return any(fnmatchcase(value, item) for item in expected)
        return value in expected
    if operator == "Bool":
        return value.lower() in [item.lower() for item in expected]
    return any(fnmatchcase(value, item) for item in expected)


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """Whether every condition of a statement holds for a request carrying `context`, as IAM evaluates them: a key
    missing from the request fails a positive operator and satisfies a negated one (AWS's "Condition operators"),
    `...IfExists` holds when the key is missing, `Null` tests presence. Keys are case-insensitive."""
    present = {key.lower(): value for key, value in context.items()}
    for raw_operator, keys in conditions.items():
        operator = raw_operator.removesuffix("IfExists")
        assert operator in _POSITIVE | _NEGATED | {"Null"}, f"condition operator {raw_operator} is not evaluated here"
        for key, values in keys.items():
            value = present.get(key.lower())
            expected = [str(item) for item in _listed(values)]
            if operator == "Null":
                if (value is None) != (expected == ["true"]):
                    return False
            elif value is None:
                if operator in _POSITIVE and not raw_operator.endswith("IfExists"):
                    return False
            elif _matches(operator, value, expected) == (operator in _NEGATED):
                return False
    return True


def _applies(item: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    if "Action" in item:
        named = any(fnmatchcase(action.lower(), granted.lower()) for granted in _listed(item["Action"]))
    else:
        named = not any(fnmatchcase(action.lower(), other.lower()) for other in _listed(item["NotAction"]))
    if not named:
        return False
    if "Resource" in item:
        on_resource = any(fnmatchcase(resource, granted) for granted in _listed(item["Resource"]))
    else:
        on_resource = not any(fnmatchcase(resource, other) for other in _listed(item["NotResource"]))
    return on_resource and conditions_hold(item.get("Condition", {}), context)


def allows(document: str, action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Whether a policy allows `action` on `resource` for a request carrying the `context` condition keys: some
    Allow statement applies and no Deny does (IAM's evaluation within one policy). Action, NotAction, Resource,
    NotResource and the operators of `conditions_hold` are evaluated; IAM's `*` and `?` match like shell patterns,
    across `/` and `:`."""
    statements = json.loads(document)["Statement"]
    if any(item["Effect"] == "Deny" and _applies(item, action, resource, context) for item in statements):
        return False
    return any(item["Effect"] == "Allow" and _applies(item, action, resource, context) for item in statements)


def allows_bounded(identity: str, boundary: str, action: str, resource: str, context: Mapping[str, str]) -> bool:
    """What a role with the `identity` policy and the `boundary` permissions boundary may do: both must allow."""
    return allows(identity, action, resource, context) and allows(boundary, action, resource, context)
