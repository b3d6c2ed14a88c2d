"""Run the Pulumi program under mocks and record every resource it registers (no CLI, no cloud)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi

from stacks.config import StackSettings, parse_settings

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
INGRESS_HOST = "k8s-diabetes-abc123.eu-west-1.elb.amazonaws.com"
OIDC_ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


@dataclass
class Resource:
    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Resource] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        name = args.name
        service = args.typ.split(":")[1].split("/")[0]
        state.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}")
        state.setdefault("name", name)
        if args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{args.inputs['name']}"
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state |= {
                "arnSuffix": f"app/{name}/50dc6c495c0c9188",
                "dnsName": f"{name}.{REGION}.elb.amazonaws.com",
            }
        elif args.typ == "aws:lb/targetGroup:TargetGroup":
            state["arnSuffix"] = f"targetgroup/{name}/73e2d6bc24d8a067"
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{args.inputs['name']}"
        elif args.typ == "eks:index:Cluster":
            kubeconfig = {"apiVersion": "v1", "clusters": [], "contexts": [], "users": []}
            state |= {
                "kubeconfig": kubeconfig,
                "kubeconfigJson": json.dumps(kubeconfig),
                "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_ISSUER}",
                "oidcProviderUrl": f"https://{OIDC_ISSUER}",
                "oidcIssuer": OIDC_ISSUER,
            }
        elif args.typ == "kubernetes:networking.k8s.io/v1:Ingress":
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": INGRESS_HOST}]}}
        self.resources.append(Resource(args.typ, name, dict(args.inputs)))
        return f"{name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AIDA"}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws"}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ZONES, "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"], "id": REGION}, []
        raise AssertionError(f"unexpected invoke {args.token}")

    def of_type(self, typ: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.typ == typ]

    def one(self, typ: str, name_part: str = "") -> Resource:
        found = [resource for resource in self.of_type(typ) if name_part in resource.name]
        assert len(found) == 1, f"expected one {typ} named *{name_part}*, got {[r.name for r in found]}"
        return found[0]


@dataclass
class Run:
    settings: StackSettings
    recorder: Recorder
    outputs: dict[str, Any]


def subnet_ids(run: Run, tier: str) -> set[str]:
    """The mock ids of the `public` or `private` subnets, as other resources reference them."""
    return {f"{subnet.name}-id" for subnet in run.recorder.of_type("aws:ec2/subnet:Subnet") if tier in subnet.name}


def settings_for(**overrides: Any) -> StackSettings:
    values: dict[str, Any] = {"environment": "dev", "region": REGION, "imageTag": "3f2c1ab"}
    values.update(overrides)
    return parse_settings(values)


def run_program(settings: StackSettings) -> Run:
    """Build the whole program under fresh mocks; resolve the stack outputs the program exports."""
    from stacks.program import build

    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="diabetes", stack=settings.environment, preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        deployment = build(settings)
        values: dict[str, Any] = {}
        if deployment.ecs is not None:
            values["ecsUrl"] = deployment.ecs.url
        if deployment.eks is not None:
            values["eksIngressHostname"] = deployment.eks.ingress_hostname
            values["eksFargateProfiles"] = pulumi.Output.all(*deployment.eks.fargate_profiles)
        return pulumi.Output.all(**values).apply(outputs.update)

    program()
    return Run(settings, recorder, outputs)
