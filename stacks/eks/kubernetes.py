"""Create the typed pulumi_kubernetes resource of a plain manifest, its fields passed through unchanged."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pydantic.alias_generators import to_snake

#: The kinds the program creates, by kind.
RESOURCE_CLASSES: dict[str, Any] = {
    "Namespace": k8s.core.v1.Namespace,
    "ServiceAccount": k8s.core.v1.ServiceAccount,
    "ConfigMap": k8s.core.v1.ConfigMap,
    "Service": k8s.core.v1.Service,
    "Deployment": k8s.apps.v1.Deployment,
    "HorizontalPodAutoscaler": k8s.autoscaling.v2.HorizontalPodAutoscaler,
    "PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
    "Ingress": k8s.networking.v1.Ingress,
    "Role": k8s.rbac.v1.Role,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
    "ValidatingAdmissionPolicy": k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
    "ValidatingAdmissionPolicyBinding": k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
}


def create_object(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """The resource of one manifest (apiVersion and kind come from the class; every other field is an argument)."""
    fields = {to_snake(key): value for key, value in manifest.items() if key not in ("apiVersion", "kind")}
    resource: pulumi.CustomResource = RESOURCE_CLASSES[manifest["kind"]](name, opts=opts, **fields)
    return resource
