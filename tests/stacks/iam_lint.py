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


def allows(document: str, action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Whether an Allow statement of an identity policy grants `action` on `resource` for a request carrying the
    `context` condition keys. Only `StringEquals` and `ArnEquals` (both exact, as the CI policies use them; another
    operator fails) are evaluated; IAM's `*` and `?` match like shell patterns, across `/` and `:`."""
    for item in json.loads(document)["Statement"]:
        if item["Effect"] != "Allow":
            continue
        if not any(fnmatchcase(action.lower(), granted.lower()) for granted in _listed(item["Action"])):
            continue
        if not any(fnmatchcase(resource, granted) for granted in _listed(item["Resource"])):
            continue
        conditions = item.get("Condition", {})
        unsupported = set(conditions) - {"StringEquals", "ArnEquals"}
        assert not unsupported, f"condition operators {unsupported} are not evaluated here"
        equals = {**conditions.get("StringEquals", {}), **conditions.get("ArnEquals", {})}
        if all(context.get(key) in _listed(values) for key, values in equals.items()):
            return True
    return False
