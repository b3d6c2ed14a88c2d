"""The cost model and the cheap first try: the committed trial stack files pass validation, cost under $60 a month,
and run without a NAT gateway; the model counts what the programs really create."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks import costs
from stacks.policy.rules import violations
from tests.stacks.harness import Run, run_program, subnet_ids

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "aws:ecs/service:Service"
TRIAL_TARGET = 60.0


def _run(profile: costs.Profile) -> dict[str, Run]:
    """The profile's programs under mocks, with the settings its stack files (and overrides) give them."""
    from stacks.ecs.program import build as build_ecs
    from stacks.eks.program import build as build_eks
    from stacks.root import build as build_root

    root = run_program(build_root, profile.settings("root"))
    runs = {"root": root}
    builders = {"ecs": build_ecs, "eks": build_eks}
    for project in profile.projects[1:]:
        runs[project] = run_program(builders[project], profile.settings(project), root.outputs)
    return runs


@pytest.fixture(scope="module")
def trial() -> dict[str, Run]:
    return _run(costs.profile("trial"))


def test_the_trial_stack_files_pass_the_typed_config_and_cost_under_the_target() -> None:
    trial = costs.profile("trial")
    root, ecs = trial.settings("root"), trial.settings("ecs")
    assert (root.nat_gateways, ecs.task_subnets, ecs.container_insights, ecs.ui.enabled) == (
        "none",
        "public",
        False,
        False,
    )
    assert (ecs.api.min_count, ecs.api.desired_count) == (1, 1)
    assert trial.monthly < TRIAL_TARGET, costs.dollars(trial.monthly)
    assert costs.profile("trial-nat").monthly > TRIAL_TARGET  # the NAT gateway alone is most of the difference


@pytest.mark.parametrize("key", [p.key for p in costs.PROFILES])
def test_every_profile_counts_what_its_programs_create(key: str) -> None:
    """NAT gateways, public addresses, load balancers and tasks in the estimate are the ones the stacks declare."""
    profile = costs.profile(key)
    runs = _run(profile)
    hours = costs.HOURS_PER_MONTH
    all_lines = [line for project in profile.lines().values() for line in project]

    def units(item: str) -> float:
        return sum(line.quantity for line in all_lines if line.item == item) / hours

    def count(typ: str) -> int:
        return sum(len(run.recorder.of_type(typ)) for run in runs.values())

    assert units("NAT gateway") == count("aws:ec2/natGateway:NatGateway") == count("aws:ec2/eip:Eip")
    # Application Auto Scaling creates two alarms for each target-tracking policy (the estimate left them out).
    alarms = sum(line.quantity for line in all_lines if line.item == "Target-tracking alarms")
    assert alarms == count("aws:appautoscaling/policy:Policy") * costs.ALARMS_PER_POLICY
    # The bootstrap's KMS key of the environment's secrets is billed whatever runs.
    assert sum(line.quantity for line in all_lines if line.price == "kms_key_month") == 1
    balancers = count("aws:lb/loadBalancer:LoadBalancer") + count("kubernetes:networking.k8s.io/v1:Ingress")
    assert units("Application Load Balancer") == balancers
    if "ecs" in runs:
        services = runs["ecs"].recorder.of_type(SERVICE)
        desired = sum(int(s.inputs["desiredCount"]) for s in services)
        vcpu = sum(int(s.inputs["desiredCount"]) * _task_vcpu(runs["ecs"], s) for s in services)
        ecs_vcpu = sum(line.quantity for line in profile.lines()["ecs"] if line.price == "fargate_vcpu_hour") / hours
        assert ecs_vcpu == pytest.approx(vcpu)
        public = [s for s in services if s.inputs["networkConfiguration"]["assignPublicIp"]]
        assert units("Task public IPv4 (one per task)") == sum(int(s.inputs["desiredCount"]) for s in public)
        assert desired
        (cluster,) = runs["ecs"].recorder.of_type("aws:ecs/cluster:Cluster")
        insights = cluster.inputs["settings"][0]["value"] == "enabled"
        assert insights == any(line.item == "Container Insights metrics" for line in all_lines)


def _task_vcpu(run: Run, service: Any) -> float:
    (task,) = [t for t in run.recorder.of_type("aws:ecs/taskDefinition:TaskDefinition") if t.name == service.name]
    return int(task.inputs["cpu"]) / 1024


def test_without_a_nat_gateway_tasks_run_public_but_admit_only_the_load_balancer(trial: dict[str, Run]) -> None:
    root, ecs = trial["root"], trial["ecs"]
    assert not root.recorder.of_type("aws:ec2/natGateway:NatGateway")
    assert not root.recorder.of_type("aws:ec2/eip:Eip")
    for table in root.recorder.of_type("aws:ec2/routeTable:RouteTable"):
        if "-private-" in table.name:
            assert table.inputs.get("routes", []) == []  # no way out of the private subnets
    (service,) = ecs.recorder.of_type(SERVICE)
    network = service.inputs["networkConfiguration"]
    assert network["assignPublicIp"] is True
    assert set(network["subnets"]) == subnet_ids(ecs, "public")
    (task_group,) = network["securityGroups"]
    alb_group = ecs.recorder.one("aws:ec2/securityGroup:SecurityGroup", "-lb-alb").mock_id
    ingress = [
        r
        for r in ecs.recorder.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == task_group
    ]
    assert ingress
    assert all(r.inputs.get("referencedSecurityGroupId") == alb_group and "cidrIpv4" not in r.inputs for r in ingress)
    assert ecs.recorder.one("aws:ecs/cluster:Cluster").inputs["settings"] == [
        {"name": "containerInsights", "value": "disabled"}
    ]


def test_the_policy_pack_allows_public_task_addresses_only_where_the_stack_config_says(trial: dict[str, Run]) -> None:
    (service,) = trial["ecs"].recorder.of_type(SERVICE)
    assert [name for name, _ in violations(SERVICE, service.inputs)] == ["no-public-ips"]
    config = json.loads((ROOT / "stacks" / "policy" / "trial.json").read_text())
    found = [
        (r.typ, v)
        for run in trial.values()
        for r in run.recorder.resources
        for v in violations(r.typ, r.inputs, config)
    ]
    assert found == []
    assert not (ROOT / "stacks" / "policy" / "dev.json").exists()  # the dev stacks get no exception


@pytest.mark.parametrize(("project", "fragment"), [("ecs", "ECS tasks need one"), ("eks", "EKS Fargate pods")])
def test_a_platform_that_needs_a_nat_gateway_refuses_a_root_without_one(project: str, fragment: str) -> None:
    overrides = {"ecs": {"taskSubnets": "private"}}
    profile = costs.Profile("x", "x", "trial", ("root", "ecs"), overrides)
    root_run = _run(costs.Profile("x", "x", "trial", ("root",)))
    if project == "eks":
        from stacks.eks.program import build

        settings = costs.Profile("x", "x", "dev", ("eks",)).settings("eks")
    else:
        from stacks.ecs.program import build

        settings = profile.settings("ecs")
    with pytest.raises(Exception, match=fragment) as caught:
        run_program(build, settings, root_run["root"].outputs)
    assert "diabetes:natGateways single" in str(caught.value)


def test_fargate_pods_are_sized_as_eks_bills_them() -> None:
    """Requests plus Fargate's 256 MB, rounded up; 512 CPU units are 500m, which 0.5 vCPU holds."""
    assert costs.fargate_pod_size(500, 1024) == (0.5, 2)
    assert costs.fargate_pod_size(250, 512) == (0.25, 1)
    assert costs.fargate_pod_size(100, 200) == (0.25, 0.5)
    assert costs.fargate_pod_size(512, 1024) == (1, 2)
    dev = costs.profile("dev-eks").settings("eks")
    assert dev.api.k8s_cpu == "500m"


def test_every_price_names_its_source_and_date() -> None:
    for key, price in costs.PRICES.items():
        assert price.usd > 0, key
        assert price.source.startswith("https://aws.amazon.com/"), key
        assert re.fullmatch(r"2026-\d\d", price.checked), key
