"""The app's Kubernetes objects on the cluster: namespace, per workload a service account, Deployment, Service,
HorizontalPodAutoscaler and PodDisruptionBudget, and one Ingress; plus the API's IRSA role for an S3 model and the CI
preview's dry-run grant in the namespace (stacks/eks/preview_access.py).

The objects come from `manifests.app_manifests`, the same builders `stacks.ops render-k8s` renders as YAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from stacks.aws_context import AwsContext, model_read_policy
from stacks.config import EksStackSettings
from stacks.eks import manifests
from stacks.eks.cluster import EksCluster
from stacks.eks.iam import irsa_role
from stacks.eks.kubernetes import create_object
from stacks.eks.preview_access import grant_manifests
from stacks.shared import SharedOutputs
from stacks.workloads import Workload


class EksApp(pulumi.ComponentResource):
    """The app deployed behind an ALB Ingress."""

    ingress_hostname: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: EksStackSettings,
        ctx: AwsContext,
        cluster: EksCluster,
        shared: SharedOutputs,
        workloads: Sequence[Workload],
        ready: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:App", name, None, opts)
        model = settings.model_s3
        api_role_arn = None
        waits_for = list(ready)
        if model is not None:
            model_role = irsa_role(
                f"{name}-api-model",
                ctx,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer=cluster.oidc_issuer,
                namespace=settings.eks.namespace,
                service_account="api",
                policy=model_read_policy(model, ctx),
                tags=settings.tags_for("eks"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            api_role_arn = model_role.role.arn
            waits_for += model_role.policies
        objects = manifests.app_manifests(
            settings,
            workloads,
            {workload.name: shared.image(workload.name, settings.image_tag) for workload in workloads},
            api_role_arn,
            shared.access_log_bucket,
        )
        # The controller's webhook must be up before pods are created in the readiness-gate namespace.
        opts_on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=waits_for)
        created: dict[tuple[str, str], pulumi.CustomResource] = {}
        namespace = create_object(f"{name}-ns", objects[0], opts_on_cluster)
        in_namespace = pulumi.ResourceOptions.merge(opts_on_cluster, pulumi.ResourceOptions(depends_on=[namespace]))
        for manifest in objects[1:]:
            key = (manifest["kind"], manifest["metadata"]["name"])
            created[key] = create_object(f"{name}-{_label(manifest)}", manifest, in_namespace)
        # The CI preview's dry-run grant, in this namespace only; `ready` holds its guard, created before it.
        for manifest in grant_manifests(settings.eks.namespace):
            create_object(f"{name}-preview-{manifest['kind'].lower()}", manifest, in_namespace)
        ingress = created[("Ingress", settings.name)]
        self.ingress_hostname = ingress.status.apply(_ingress_hostname)  # type: ignore[attr-defined]
        self.register_outputs({"ingressHostname": self.ingress_hostname})


def _label(manifest: dict[str, Any]) -> str:
    """A resource name for a manifest: its object name and kind (`api-deployment`, `diabetes-dev-ingress`)."""
    return f"{manifest['metadata']['name']}-{manifest['kind'].lower()}"


def _ingress_hostname(status: Any) -> str:
    """The ALB's DNS name once the controller has provisioned it."""
    balancer = getattr(status, "load_balancer", None) if status is not None else None
    entries = getattr(balancer, "ingress", None) or []
    return str(getattr(entries[0], "hostname", "") or "") if entries else ""
