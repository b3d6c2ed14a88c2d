"""The three programs of one variant replayed in one moto account, in the order they deploy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stacks.aws_context import AwsContext
from stacks.ops.boundary import workload_boundary_policy
from tests.stacks.conftest import CERTIFICATE, FULL, FULL_ECS
from tests.stacks.harness import ACCOUNT, REGION, Resource, Run, run_ecs, run_eks, run_program, run_root
from tests.stacks.replay.calls import Clients
from tests.stacks.replay.engine import Created, Replay

STACKS = ("root", "ecs", "eks")
#: One moto account per variant: the replays share nothing with each other or with the other tests.
ACCOUNTS = {"full": "210987654321", "minimal": "210987654322", "trial": "210987654323"}


def full_programs(account: str) -> dict[str, Run]:
    """Every optional branch on (UI, HTTPS, S3 model, public EKS endpoint, NAT per AZ)."""
    root = run_root(account=account, logRetentionDays=14, ecrKeepLast=12, natGateways="perAz")
    certificate = {"certificateArn": certificate_in(account)}
    eks = run_eks(root, **{**FULL, **certificate}, eks={"publicAccessCidrs": ["203.0.113.0/24"]})
    return {"root": root, "ecs": run_ecs(root, **{**FULL_ECS, **certificate}), "eks": eks}


def certificate_in(account: str) -> str:
    """The config's certificate ARN, in the replay's account (a certificate of another account is refused)."""
    return CERTIFICATE.replace(f":{ACCOUNT}:", f":{account}:")


def minimal_programs(account: str) -> dict[str, Run]:
    """The defaults (API only, HTTP, model in the image, private EKS endpoint, one NAT)."""
    root = run_root(account=account)
    return {"root": root, "ecs": run_ecs(root), "eks": run_eks(root)}


def trial_programs(account: str) -> dict[str, Run]:
    """The committed cheap first try (Pulumi.trial.yaml): no NAT gateway, ECS tasks public, no EKS."""
    from stacks.costs import profile
    from stacks.ecs.program import build as build_ecs
    from stacks.root import build as build_root

    trial = profile("trial")
    root = run_program(build_root, trial.settings("root"), account=account)
    ecs = run_program(build_ecs, trial.settings("ecs"), root.outputs, account=account)
    return {"root": root, "ecs": ecs}


@dataclass
class Replayed:
    replay: Replay
    runs: dict[str, Run]
    created: dict[str, list[Created]]

    @property
    def clients(self) -> Clients:
        return self.replay.clients

    def one(self, stack: str, typ: str, name_part: str = "") -> Created:
        (found,) = [c for c in self.created[stack] if c.typ == typ and name_part in c.name]
        return found

    def ids(self, stack: str, typ: str, name_part: str = "") -> set[str]:
        return {c.outputs["id"] for c in self.created[stack] if c.typ == typ and name_part in c.name}

    def declared(self, stack: str, typ: str, name_part: str = "") -> Resource:
        return self.runs[stack].recorder.one(typ, name_part)


def replay_stacks(endpoint: str, account: str, programs: Callable[[str], dict[str, Run]]) -> Replayed:
    """Run the programs under mocks, then replay root, ECS and EKS in one account."""
    runs = programs(account)
    clients = Clients(endpoint, account)
    replay = Replay(clients)
    # The HTTPS listener's certificate exists before the stacks: request one in ACM and use it for the config's ARN.
    certificate = clients("acm").request_certificate(DomainName="diabetes.example.com")["CertificateArn"]
    replay.provide(certificate_in(account), certificate)
    # So does the workload boundary every role of the stacks carries (made by the bootstrap).
    settings = runs["root"].settings
    stack = settings.name
    ctx = AwsContext(account, "aws", REGION, "", stack)
    owner = {"Project": settings.project, "Environment": settings.environment}
    boundary = workload_boundary_policy(ctx, owner)
    clients("iam").create_policy(PolicyName=ctx.boundary_name, PolicyDocument=boundary)
    return Replayed(replay, runs, {stack: replay.replay(run) for stack, run in runs.items()})
