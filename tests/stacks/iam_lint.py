"""IAM policy checks with parliament: its lint, and a stricter check that every action of a statement is granted
only on resources of a type AWS authorizes that action on (parliament's copy of the service authorization
reference), which catches a writable action left on the wrong kind of ARN even when the statement also lists a
right one."""

from __future__ import annotations

import json
import warnings
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
