"""Run the three Pulumi programs under mocks and record every resource they register (no CLI, no cloud).

The root runs first; what it exports is what the platforms' StackReference returns, so the contract between the
projects (output names and shapes) is exercised, not assumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pulumi

from stacks.config import EcsStackSettings, EksStackSettings, SharedSettings, StackSettings, parse_settings

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
INGRESS_HOST = "k8s-diabetes-abc123.eu-west-1.elb.amazonaws.com"
OIDC_ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
ELB_ACCOUNT = "arn:aws:iam::156460612806:root"
EKS_ENDPOINT = "https://EXAMPLE.gr7.eu-west-1.eks.amazonaws.com"
EKS_CA = "Q0VSVElGSUNBVEU="
#: pulumi-eks's cluster: a remote component, so it reaches the mocks as one resource (its children are invisible).
EKS_COMPONENT = "eks:index:Cluster"


def eks_component_outputs(cluster: str, fargate_profile: str, account: str) -> dict[str, Any]:
    """What pulumi_eks.Cluster reports and the program reads, shaped as pulumi-eks 4.4.0 builds it (createCluster in
    nodejs/eks/cluster/cluster.ts): the kubeconfig (an `aws eks get-token` exec), the OIDC provider and issuer, the
    Fargate profile's id `<cluster>:<profile>`."""
    kubeconfig = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"server": EKS_ENDPOINT, "certificate-authority-data": EKS_CA}, "name": "kubernetes"}],
        "contexts": [{"context": {"cluster": "kubernetes", "user": "aws"}, "name": "aws"}],
        "current-context": "aws",
        "kind": "Config",
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster, "--output", "json"],
                    }
                },
            }
        ],
    }
    return {
        "kubeconfigJson": json.dumps(kubeconfig),
        "oidcProviderUrl": f"https://{OIDC_ISSUER}",
        "oidcIssuer": OIDC_ISSUER,
        "fargateProfileId": f"{cluster}:{fargate_profile}",
    }


def deploy_role(account: str, stack: str = "diabetes-dev") -> str:
    """The CI deploy role of a stack's bootstrap in one account (the identity the mocked update runs as)."""
    return f"arn:aws:iam::{account}:role/{stack}-github-deploy"


#: The role the mocked caller assumed (the CI deploy role of the dev stack).
DEPLOYER = deploy_role(ACCOUNT)
PREVIEWER = f"arn:aws:iam::{ACCOUNT}:role/diabetes-dev-github-preview"
#: The dev stack's access: the CI deploy role creates the cluster (the default creator: EKS makes it an admin without an
#: entry of ours), one operator is an admin, the CI preview role views.
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/platform-operator"
EKS_ACCESS = {"admins": ["role/platform-operator"], "viewers": ["role/diabetes-dev-github-preview"]}
#: What the root stack exports under mocks (the platforms' StackReference answer when no root run is at hand).
ROOT_OUTPUTS_FOR_CONFIG = {
    "vpcId": "vpc-id",
    "publicSubnetIds": ["public-0", "public-1"],
    "privateSubnetIds": ["private-0", "private-1"],
    "publicSubnetCidrs": ["10.40.0.0/20", "10.40.16.0/20"],
    "apiRepositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/diabetes-dev/api",
    "uiRepositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/diabetes-dev/ui",
    "apiRepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/diabetes-dev/api",
    "uiRepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/diabetes-dev/ui",
    "accessLogBucket": "access-logs",
    "modelBucket": "models",
}
PROJECTS = {SharedSettings: "diabetes", EcsStackSettings: "diabetes-ecs", EksStackSettings: "diabetes-eks"}


@dataclass
class Resource:
    typ: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    #: The id the mock engine gave it (unique across types, so a reference names one resource).
    mock_id: str = ""
    #: What the engine would get besides the inputs: URNs this resource waits for, and its replace options.
    depends_on: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    urn: str = ""

    def waits_for(self, other: Resource) -> bool:
        """Whether this resource depends on `other` directly (depends_on or an input that is other's output)."""
        return other.urn in self.depends_on


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The mock engine, also keeping each registration's dependencies and options (the Mocks API drops them)."""

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        recorder: Recorder = self.mocks
        # Registrations run on executor threads: find this one by type and name, not by position.
        for last in recorder.resources:
            if last.typ == request.type and last.name == request.name and not last.urn:
                last.urn = response.urn
                property_urns = (urn for deps in request.propertyDependencies.values() for urn in deps.urns)
                last.depends_on = sorted({*request.dependencies, *property_urns})
                last.delete_before_replace = bool(request.deleteBeforeReplace)
                last.ignore_changes = list(request.ignoreChanges)
                last.replace_on_changes = list(request.replaceOnChanges)
                break
        return response


@dataclass
class Recorder(pulumi.runtime.Mocks):
    shared_outputs: dict[str, Any] = field(default_factory=dict)
    deployer: str = DEPLOYER
    resources: list[Resource] = field(default_factory=list)
    account: str = ACCOUNT
    #: Every data source the program read (token, arguments): checked against the CI roles like the resources.
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            return f"{args.name}-id", {"name": args.inputs["name"], "outputs": self.shared_outputs}
        state = dict(args.inputs)
        name = args.name
        service = args.typ.split(":")[1].split("/")[0]
        kind = args.typ.rsplit(":", 1)[-1].lower()
        # Ids, ARNs and autonames unique per type and name, as AWS's are: a logical name may recur across types
        # (a service, its task definition, its security group), and the replay test maps each back to one resource.
        account = self.account
        if args.typ != EKS_COMPONENT:  # a component has no ARN of its own
            state.setdefault("arn", f"arn:aws:{service}:{REGION}:{account}:{kind}/{name}")
        state.setdefault("name", autoname(args.typ, name))
        if args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{account}.dkr.ecr.{REGION}.amazonaws.com/{args.inputs['name']}"
            state["arn"] = f"arn:aws:ecr:{REGION}:{account}:repository/{args.inputs['name']}"
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state |= {
                "arnSuffix": f"app/{state['name']}/50dc6c495c0c9188",
                "dnsName": f"{state['name']}.{REGION}.elb.amazonaws.com",
            }
        elif args.typ == "aws:lb/targetGroup:TargetGroup":
            state["arnSuffix"] = f"targetgroup/{state['name']}/73e2d6bc24d8a067"
        elif args.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            state["arn"] = f"arn:aws:iam::{account}:oidc-provider/{args.inputs['url'].removeprefix('https://')}"
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{REGION}:{account}:log-group:{args.inputs['name']}"
        elif args.typ == "aws:s3/bucket:Bucket":
            state |= {"bucket": f"{name}-bucket", "arn": f"arn:aws:s3:::{name}-bucket"}
        elif args.typ == "kubernetes:networking.k8s.io/v1:Ingress":
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": INGRESS_HOST}]}}
        elif args.typ == EKS_COMPONENT:
            state |= eks_component_outputs(
                args.inputs["name"],
                autoname("aws:eks/fargateProfile:FargateProfile", f"{name}-fargateProfile"),
                account,
            )
        mock_id = f"{name}-{kind}-id"
        self.resources.append(Resource(args.typ, name, self.referenced(args.inputs), state, mock_id))
        return mock_id, state

    def referenced(self, value: Any) -> Any:
        """Inputs with each resource reference (pulumi-eks takes the cluster role as a resource, not an ARN) as the
        id and ARN of the resource it names."""
        if isinstance(value, pulumi.Resource):
            ref = self.one_named(value._type, value._name)
            return {"id": ref.mock_id, "arn": ref.state["arn"]}
        if isinstance(value, dict):
            return {key: self.referenced(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.referenced(item) for item in value]
        return value

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            session = self.deployer.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/ci"
            return {"accountId": self.account, "arn": session, "userId": "AROA:ci"}, []
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            return {"arn": args.args["arn"], "issuerArn": self.deployer, "issuerName": "ci"}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws"}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ZONES, "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"], "id": REGION}, []
        if args.token == "aws:elb/getServiceAccount:getServiceAccount":
            return {"arn": ELB_ACCOUNT, "id": "156460612806"}, []
        raise AssertionError(f"unexpected invoke {args.token}")

    def of_type(self, typ: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.typ == typ]

    def one_named(self, typ: str, name: str) -> Resource:
        (found,) = [resource for resource in self.of_type(typ) if resource.name == name]
        return found

    def one(self, typ: str, name_part: str = "") -> Resource:
        found = [resource for resource in self.of_type(typ) if name_part in resource.name]
        assert len(found) == 1, f"expected one {typ} named *{name_part}*, got {[r.name for r in found]}"
        return found[0]


@dataclass
class Run:
    settings: StackSettings
    recorder: Recorder
    outputs: dict[str, Any]


def autoname(typ: str, name: str) -> str:
    """A physical name as Pulumi autonames it (`<logical name>-<7 hex>`), stable per type and name."""
    return f"{name}-{hashlib.sha256(f'{typ}::{name}'.encode()).hexdigest()[:7]}"


def subnet_ids(run: Run, tier: str) -> set[str]:
    """The mock ids of the `public` or `private` subnets, as other resources reference them (a platform: as the
    root exported them)."""
    if run.recorder.shared_outputs:
        return set(run.recorder.shared_outputs[f"{tier}SubnetIds"])
    return {subnet.mock_id for subnet in run.recorder.of_type("aws:ec2/subnet:Subnet") if tier in subnet.name}


def settings_for(model: type[StackSettings], **overrides: Any) -> Any:
    """Settings of one project for the `dev` stack in eu-west-1 (EKS: the dev access entries)."""
    values: dict[str, Any] = {"environment": "dev", "region": REGION}
    if model is not SharedSettings:
        values["imageTag"] = "3f2c1ab"
    if model is EksStackSettings:
        values["eks"] = {"access": EKS_ACCESS, **overrides.pop("eks", {})}
    values.update(overrides)
    return parse_settings(model, values, PROJECTS[model])


def ensure_event_loop() -> None:
    """Pulumi's mocks run on the main thread's current event loop; a test elsewhere in the suite that used
    `asyncio.run()` leaves none (it closes its loop and sets None), and Pulumi then fails to start."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    build: Callable[[Any], Any],
    settings: StackSettings,
    shared_outputs: dict[str, Any] | None = None,
    *,
    deployer: str | None = None,
    preview: bool = False,
    account: str = ACCOUNT,
) -> Run:
    """Build one program under fresh mocks in one AWS account; resolve what it exports. By default it runs as the CI
    deploy role of the stack's own bootstrap (`<project>-<env>-github-deploy`)."""
    caller = deployer or deploy_role(account, settings.name)
    recorder = Recorder(shared_outputs or {}, caller, account=account)
    project = PROJECTS[type(settings)]
    ensure_event_loop()
    pulumi.runtime.set_mocks(
        recorder,
        project=project,
        stack=settings.environment,
        preview=preview,
        organization="organization",
        monitor=RecordingMonitor(recorder),
    )
    exported: dict[str, Any] = {}
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        with mock.patch("pulumi.export", side_effect=exported.__setitem__):
            build(settings)
        return pulumi.Output.all(**exported).apply(outputs.update)

    program()
    return Run(settings, recorder, outputs)


def run_root(*, account: str = ACCOUNT, **overrides: Any) -> Run:
    """The root program, in the given AWS account."""
    from stacks.root import build

    settings = settings_for(SharedSettings, **overrides)
    return run_program(build, settings, deployer=deploy_role(account, settings.name), account=account)


def run_ecs(shared: Run, **overrides: Any) -> Run:
    """The ECS program on a root run's outputs, in its account."""
    from stacks.ecs.program import build

    return _run_platform(build, settings_for(EcsStackSettings, **overrides), shared)


def run_eks(shared: Run, **overrides: Any) -> Run:
    """The EKS program on a root run's outputs, in its account."""
    from stacks.eks.program import build

    return _run_platform(build, settings_for(EksStackSettings, **overrides), shared)


def _run_platform(build: Callable[[Any], Any], settings: StackSettings, shared: Run) -> Run:
    account = shared.recorder.account
    return run_program(build, settings, shared.outputs, deployer=deploy_role(account, settings.name), account=account)


def integral(value: Any) -> Any:
    """Inputs with whole numbers as ints: the mock transport carries every number as a double, where the provider
    (and Kubernetes) send integer fields as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    return value


def json_inputs(resource: Resource, key: str) -> Any:
    """A JSON-string input (policy documents, container definitions) parsed."""
    return json.loads(resource.inputs[key])
