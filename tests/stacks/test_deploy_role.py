"""The CI deploy role may do everything `pulumi up` of the three stacks does, on the resources it really creates.

Every AWS resource type the programs make has its provider actions listed (tests/stacks/provider_actions.py); each
action is checked against the deploy role's policy on the ARNs of the resources the replay created in moto (the
account is the replay's), so a statement narrowed to the wrong names fails too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stacks.ops.ci_roles import CiSetup, deploy_policy
from tests.stacks.harness import REGION, integral
from tests.stacks.iam_lint import allows
from tests.stacks.provider_actions import ECS_SERVICE_OPERATIONS, PROVIDER_ACTIONS, SOURCE_FILES, Need, iam_action
from tests.stacks.replay.catalog import is_component
from tests.stacks.replay.stacks import ACCOUNTS, Replayed

ALL_RUNS = ["root_run", "ecs_full_run", "ecs_minimal_run", "eks_full_run", "eks_minimal_run"]
SETUP = CiSetup("acme/diabetes", "dev", ACCOUNTS["full"], REGION, "acme-pulumi-state", "1234abcd-0000")


def _resources(replayed: Replayed) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, template fields) of every AWS resource of the full variant: created ones with their real inputs and
    outputs, the ones moto cannot create with their declared inputs."""
    base = {"account": SETUP.account_id, "region": REGION, "name": SETUP.name, "cluster": f"{SETUP.name}-eks"}
    created = {(c.typ, c.name): c for stack in replayed.created.values() for c in stack}
    for run in replayed.runs.values():
        for resource in run.recorder.resources:
            if resource.typ not in PROVIDER_ACTIONS:
                continue
            if (resource.typ, resource.name) in created:
                made = created[(resource.typ, resource.name)]
                yield resource.typ, {**base, "inputs": made.inputs, "arn": made.outputs.get("arn", "")}
            else:
                yield resource.typ, {**base, "inputs": integral(resource.inputs), "arn": ""}


def _denied(policy: str, need: Need, fields: dict[str, Any]) -> str | None:
    resource = need.resource.format(**fields)
    if allows(policy, need.action, resource, {"aws:RequestedRegion": REGION, **need.context}):
        return None
    return f"{need.action} on {resource} {need.context or ''}"


def test_every_aws_resource_type_has_its_provider_actions_listed(request: pytest.FixtureRequest) -> None:
    types = {r.typ for fixture in ALL_RUNS for r in request.getfixturevalue(fixture).recorder.resources}
    aws_types = {typ for typ in types if typ.startswith("aws:")}
    assert aws_types - PROVIDER_ACTIONS.keys() == set()
    assert PROVIDER_ACTIONS.keys() - aws_types == set(), "listed types no program makes any more"
    assert not [
        typ for typ in types - aws_types if not typ.startswith(("kubernetes:", "pulumi:")) and not is_component(typ)
    ]


def test_every_listed_type_names_the_provider_source_it_was_read_from() -> None:
    assert SOURCE_FILES.keys() == PROVIDER_ACTIONS.keys()


def test_a_steady_state_wait_needs_the_service_deployment_calls() -> None:
    """The provider's wait_for_steady_state polls the deployments of the service (ecs/service.go): without these two
    calls every ECS `up` fails after the service was created."""
    needed = {iam_action("ecs", operation) for operation in ECS_SERVICE_OPERATIONS}
    assert {"ecs:ListServiceDeployments", "ecs:DescribeServiceDeployments"} <= needed
    assert iam_action("s3", "HeadBucket") == "s3:ListBucket"


def test_the_deploy_role_may_do_what_the_provider_does_on_every_resource(full_replay: Replayed) -> None:
    policy = deploy_policy(SETUP)
    denied, checked = set(), set()
    for typ, fields in _resources(full_replay):
        for need in PROVIDER_ACTIONS[typ]:
            try:
                problem = _denied(policy, need, fields)
            except KeyError:  # an optional input this resource does not have (a task role, say)
                continue
            checked.add((typ, need.action, need.resource))
            if problem:
                denied.add(f"{typ}: {problem}")
    assert not denied, "\n".join(sorted(denied))
    unchecked = {(typ, n.action, n.resource) for typ, needs in PROVIDER_ACTIONS.items() for n in needs} - checked
    assert unchecked == set(), "needs no resource could fill in"


def test_the_check_fails_for_a_name_outside_the_stack() -> None:
    policy = deploy_policy(SETUP)
    role = f"arn:aws:iam::{SETUP.account_id}:role/diabetes-dev-ecs-execution-1a2b3c4"
    assert allows(policy, "iam:CreateRole", role, {"aws:RequestedRegion": REGION})
    assert not allows(policy, "iam:CreateRole", role.replace("diabetes-dev-", "other-"), {})
    assert not allows(policy, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(policy, "sqs:CreateQueue", "*", {"aws:RequestedRegion": REGION})
