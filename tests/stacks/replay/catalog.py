"""Every resource type the programs make: replayed against moto, or not replayable, with the reason.

A type in neither list fails the replay test, so a new kind of resource cannot go unchecked by accident."""

from __future__ import annotations

from collections.abc import Iterable

from tests.stacks import eks_component
from tests.stacks.harness import Resource
from tests.stacks.replay import ecs, eks, elb, iam, network, storage, waf
from tests.stacks.replay.calls import Replayer

REPLAYED: dict[str, Replayer] = {
    **network.REPLAYERS,
    **iam.REPLAYERS,
    **storage.REPLAYERS,
    **ecs.REPLAYERS,
    **elb.REPLAYERS,
    **eks.REPLAYERS,
    **eks.COMPONENT_REPLAYERS,
    **waf.REPLAYERS,
}

_KUBERNETES = "a Kubernetes object, not an AWS resource: checked by kubernetes-validate (strict) in test_program_eks"
NOT_REPLAYABLE: dict[str, str] = {
    # Children of pulumi-eks's cluster (tests/stacks/eks_component.py), made by its replayer where moto can.
    "aws:eks/accessEntry:AccessEntry": "moto has no EKS access entries (CreateAccessEntry is not implemented)",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "moto has no EKS access entries or access policies",
    "aws:eks/addon:Addon": "moto has no EKS add-ons (CreateAddon is not implemented)",
    "pulumi:providers:kubernetes": "a Pulumi provider instance, nothing in AWS",
    "kubernetes:helm.sh/v3:Release": "a Helm release inside the cluster, not an AWS resource",
    "kubernetes:core/v1:Namespace": _KUBERNETES,
    "kubernetes:core/v1:ServiceAccount": _KUBERNETES,
    "kubernetes:core/v1:ConfigMap": _KUBERNETES,
    "kubernetes:core/v1:Service": _KUBERNETES,
    "kubernetes:apps/v1:Deployment": _KUBERNETES,
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": _KUBERNETES,
    "kubernetes:policy/v1:PodDisruptionBudget": _KUBERNETES,
    "kubernetes:networking.k8s.io/v1:Ingress": _KUBERNETES,
    "kubernetes:rbac.authorization.k8s.io/v1:Role": _KUBERNETES,
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": _KUBERNETES,
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy": _KUBERNETES,
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding": _KUBERNETES,
}
#: The package of the programs' own ComponentResources: a logical grouping, Pulumi creates nothing for them.
COMPONENT_PACKAGE = "diabetes"


def is_component(typ: str) -> bool:
    return typ.split(":", 1)[0] == COMPONENT_PACKAGE


def declared_types(resources: Iterable[Resource]) -> set[str]:
    """The types of the resources a run declares, and of what pulumi-eks's cluster component makes of its inputs."""
    types = set()
    for resource in resources:
        types.add(resource.typ)
        if resource.typ == eks_component.TYPE:
            types |= {child.typ for child in eks_component.children(resource.name, resource.inputs)}
    return types


def unlisted(types: set[str]) -> set[str]:
    """Types neither replayed, nor listed as not replayable, nor components."""
    return {typ for typ in types if typ not in REPLAYED and typ not in NOT_REPLAYABLE and not is_component(typ)}
