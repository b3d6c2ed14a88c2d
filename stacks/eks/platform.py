"""The EKS platform: a Fargate-only cluster, the AWS Load Balancer Controller, metrics-server and the app.

Two named Fargate profiles run everything: `<name>-system` for kube-system (CoreDNS as a managed add-on with
`computeType: Fargate`, the controller, metrics-server) and `<name>-app` for the app namespace. Fargate has no
instance metadata, so the controller is told its cluster, region and VPC explicitly.
"""

from __future__ import annotations

import json
from functools import partial
from operator import itemgetter
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from stacks.aws_context import model_read_policy, service_trust_policy
from stacks.config import StackSettings
from stacks.eks import manifests
from stacks.eks.iam import LBC_SERVICE_ACCOUNT, irsa_role, lbc_policy, pod_execution_policy
from stacks.shared import Shared
from stacks.workloads import API_PUBLIC_PATHS, stack_workloads

LBC_CHART_REPO = "https://aws.github.io/eks-charts"
METRICS_SERVER_CHART_REPO = "https://kubernetes-sigs.github.io/metrics-server/"
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")

#: kind -> (typed resource class, manifest fields passed besides metadata: manifest key -> keyword argument).
_KINDS: dict[str, tuple[Any, dict[str, str]]] = {
    "Namespace": (k8s.core.v1.Namespace, {}),
    "ServiceAccount": (
        k8s.core.v1.ServiceAccount,
        {"automountServiceAccountToken": "automount_service_account_token"},
    ),
    "ConfigMap": (k8s.core.v1.ConfigMap, {"data": "data"}),
    "Service": (k8s.core.v1.Service, {"spec": "spec"}),
    "Deployment": (k8s.apps.v1.Deployment, {"spec": "spec"}),
    "HorizontalPodAutoscaler": (k8s.autoscaling.v2.HorizontalPodAutoscaler, {"spec": "spec"}),
    "PodDisruptionBudget": (k8s.policy.v1.PodDisruptionBudget, {"spec": "spec"}),
    "Ingress": (k8s.networking.v1.Ingress, {"spec": "spec"}),
}


def create_object(
    name: str, kind: str, manifest: pulumi.Input[dict[str, Any]], opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    """Create the typed pulumi_kubernetes resource of a manifest (fields passed through unchanged)."""
    resource_class, fields = _KINDS[kind]
    output = pulumi.Output.from_input(manifest)
    kwargs: dict[str, Any] = {"metadata": output.apply(itemgetter("metadata"))}
    for key, argument in fields.items():
        kwargs[argument] = output.apply(itemgetter(key))
    resource: pulumi.CustomResource = resource_class(name, opts=opts, **kwargs)
    return resource


def helm_release(
    name: str, *, chart: str, version: str, repo: str, values: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """A pinned chart in kube-system (release name = chart name); rolled back if the install fails."""
    return k8s.helm.v3.Release(
        name,
        name=chart,
        chart=chart,
        version=version,
        repository_opts={"repo": repo},
        namespace="kube-system",
        atomic=True,
        cleanup_on_fail=True,
        values=values,
        opts=opts,
    )


class EksPlatform(pulumi.ComponentResource):
    """EKS cluster on Fargate with the app deployed behind an ALB Ingress."""

    cluster_name: str
    fargate_profiles: list[pulumi.Output[str]]
    ingress_hostname: pulumi.Output[str]
    kubeconfig: pulumi.Output[Any]

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        shared: Shared,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:eks:Platform", name, None, opts)
        ctx, registry, vpc_id = shared.ctx, shared.registry, shared.vpc_id
        public_subnet_ids, private_subnet_ids = shared.public_subnet_ids, shared.private_subnet_ids
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("eks")
        cluster_name = settings.eks_cluster_name
        self.cluster_name = cluster_name
        namespace = settings.eks.namespace

        control_plane_logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        cluster = eks.Cluster(
            name,
            name=cluster_name,
            version=settings.eks.version,
            vpc_id=vpc_id,
            public_subnet_ids=list(public_subnet_ids),
            private_subnet_ids=list(private_subnet_ids),
            endpoint_private_access=True,
            endpoint_public_access=True,
            public_access_cidrs=list(settings.eks.public_access_cidrs),
            authentication_mode=eks.AuthenticationMode.API,
            create_oidc_provider=True,
            skip_default_node_group=True,
            skip_default_security_groups=True,
            # CoreDNS is managed below, after the kube-system Fargate profile exists.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[control_plane_logs]),
        )
        after_cluster = pulumi.ResourceOptions(parent=self, depends_on=[cluster])

        pod_logs = aws.cloudwatch.LogGroup(
            f"{name}-pods",
            name=f"/eks/{cluster_name}/pods",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        workloads = stack_workloads(settings, lambda api: f"http://{api.name}.{namespace}.svc.cluster.local:{api.port}")
        repositories = [registry.repositories[workload.name] for workload in workloads]

        pod_role = aws.iam.Role(
            f"{name}-pod-execution",
            assume_role_policy=service_trust_policy(
                "eks-fargate-pods.amazonaws.com",
                ctx,
                source_arn=ctx.arn("eks", f"fargateprofile/{cluster_name}/*"),
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-pod-execution",
            role=pod_role.id,
            policy=pulumi.Output.all(pod_logs.arn, *[repo.arn for repo in repositories]).apply(
                lambda arns: pod_execution_policy(ctx, list(arns[1:]), arns[0])
            ),
            opts=child,
        )
        profiles = {}
        for suffix, profile_namespace in (("system", "kube-system"), ("app", namespace)):
            profiles[suffix] = aws.eks.FargateProfile(
                f"{name}-{suffix}",
                cluster_name=cluster_name,
                fargate_profile_name=f"{settings.name}-{suffix}",
                pod_execution_role_arn=pod_role.arn,
                subnet_ids=list(private_subnet_ids),
                selectors=[{"namespace": profile_namespace}],
                tags=tags,
                opts=after_cluster,
            )
        self.fargate_profiles = [profile.fargate_profile_name for profile in profiles.values()]

        coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=cluster_name,
            addon_name="coredns",
            configuration_values=json.dumps({"computeType": "Fargate"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[profiles["system"]]),
        )

        lbc_role = irsa_role(
            f"{name}-lb-controller",
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            namespace="kube-system",
            service_account=LBC_SERVICE_ACCOUNT,
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-lb-controller",
            role=lbc_role.id,
            policy=vpc_id.apply(lambda vpc: lbc_policy(ctx, vpc, cluster_name)),
            opts=child,
        )

        provider = k8s.Provider(f"{name}-k8s", kubeconfig=cluster.kubeconfig_json, opts=child)
        # Fargate reads its log routing when a pod starts: set it up before any pod of ours is scheduled.
        observability_ns = create_object(
            f"{name}-observability-ns",
            "Namespace",
            manifests.observability_namespace(),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[coredns]),
        )
        logging = create_object(
            f"{name}-logging",
            "ConfigMap",
            pod_logs.name.apply(lambda group: manifests.logging_config(settings.region, group)),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[observability_ns]),
        )
        on_cluster = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[coredns, logging])

        metrics_server = helm_release(
            f"{name}-metrics-server",
            chart="metrics-server",
            version=settings.eks.metrics_server_chart_version,
            repo=METRICS_SERVER_CHART_REPO,
            # On Fargate the pod shares its IP with the kubelet, which already listens on 10250.
            values={"containerPort": 4443},
            opts=on_cluster,
        )
        controller = helm_release(
            f"{name}-lb-controller",
            chart="aws-load-balancer-controller",
            version=settings.eks.lb_controller_chart_version,
            repo=LBC_CHART_REPO,
            values={
                "clusterName": cluster_name,
                "region": settings.region,
                "vpcId": vpc_id,
                "serviceAccount": {
                    "create": True,
                    "name": LBC_SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": lbc_role.arn},
                },
                # No WAF/Shield integration: the role has no permissions for it.
                "enableShield": False,
                "enableWaf": False,
                "enableWafv2": False,
                "enableServiceMutatorWebhook": False,
                "replicaCount": 2,
            },
            opts=on_cluster,
        )

        app_ns = create_object(f"{name}-ns", "Namespace", manifests.namespace(settings), on_cluster)
        # The controller's webhook must be up before pods are created in the readiness-gate namespace.
        in_app = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=[app_ns, controller, metrics_server, profiles["app"]]
        )
        model = settings.model_s3
        for workload in workloads:
            role_arn: pulumi.Output[str | None] = pulumi.Output.from_input(None)
            if workload.name == "api" and model is not None:
                model_role = irsa_role(
                    f"{name}-api-model",
                    oidc_provider_arn=cluster.oidc_provider_arn,
                    oidc_issuer=cluster.oidc_issuer,
                    namespace=namespace,
                    service_account=workload.name,
                    tags=tags,
                    opts=child,
                )
                aws.iam.RolePolicy(
                    f"{name}-api-model",
                    role=model_role.id,
                    policy=model_read_policy(model, ctx),
                    opts=child,
                )
                role_arn = model_role.arn
            prefix = f"{name}-{workload.name}"
            account = role_arn.apply(partial(manifests.service_account, settings, workload))
            create_object(f"{prefix}-sa", "ServiceAccount", account, in_app)
            image = registry.image(workload.name, settings.image_tag)
            create_object(prefix, "Deployment", image.apply(partial(manifests.deployment, settings, workload)), in_app)
            create_object(f"{prefix}-svc", "Service", manifests.service(settings, workload), in_app)
            create_object(f"{prefix}-hpa", "HorizontalPodAutoscaler", manifests.autoscaler(settings, workload), in_app)
            create_object(
                f"{prefix}-pdb",
                "PodDisruptionBudget",
                manifests.disruption_budget(settings, workload),
                in_app,
            )

        ingress = create_object(
            f"{name}-ingress", "Ingress", manifests.ingress(settings, workloads, API_PUBLIC_PATHS), in_app
        )
        self.ingress_hostname = ingress.status.apply(_ingress_hostname)  # type: ignore[attr-defined]
        self.kubeconfig = cluster.kubeconfig
        self.register_outputs({"ingressHostname": self.ingress_hostname, "clusterName": cluster_name})


def _ingress_hostname(status: Any) -> str:
    """The ALB's DNS name once the controller has provisioned it."""
    balancer = getattr(status, "load_balancer", None) if status is not None else None
    entries = getattr(balancer, "ingress", None) or []
    return str(getattr(entries[0], "hostname", "") or "") if entries else ""
