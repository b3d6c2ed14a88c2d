"""The Kubernetes objects of the app, as plain manifests built from the workload specs.

Plain dicts (apiVersion/kind/metadata/spec) keep the objects readable, let tests validate them against the
Kubernetes schema, and are handed unchanged to the typed pulumi_kubernetes resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from stacks.config import StackSettings
from stacks.workloads import (
    API_IDLE_TIMEOUT,
    RUN_AS_USER,
    SSL_POLICY,
    STICKY_SESSION_SECONDS,
    TMP_PATH,
    UI_IDLE_TIMEOUT,
    Workload,
    by_name,
)

Manifest = dict[str, Any]
ALB = "alb.ingress.kubernetes.io"
#: Where Fargate's built-in Fluent Bit reads its output config from (names fixed by EKS).
OBSERVABILITY_NAMESPACE = "aws-observability"


def labels(settings: StackSettings, workload: str | None = None) -> dict[str, str]:
    """Recommended Kubernetes labels; the workload's name is the selector."""
    result = {
        "app.kubernetes.io/part-of": settings.project,
        "app.kubernetes.io/managed-by": "pulumi",
        "environment": settings.environment,
    }
    if workload:
        result["app.kubernetes.io/name"] = workload
    return result


def _meta(name: str, namespace: str | None, labels_: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels_), **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace(settings: StackSettings) -> Manifest:
    """The app namespace; the Load Balancer Controller injects readiness gates (rollouts wait for the ALB)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(
            settings.eks.namespace,
            None,
            {**labels(settings), "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"},
        ),
    }


def service_account(settings: StackSettings, workload: Workload, role_arn: str | None) -> Manifest:
    """One identity per workload; the API's carries the IRSA role that reads the model prefix in S3."""
    annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn else {}
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(
            workload.name, settings.eks.namespace, labels(settings, workload.name), annotations=annotations
        ),
        "automountServiceAccountToken": False,
    }


def deployment(settings: StackSettings, workload: Workload, image: str) -> Manifest:
    """A hardened Deployment: non-root, read-only root filesystem, no privilege escalation, probes, limits."""
    size = workload.size
    resources = {"cpu": size.k8s_cpu, "memory": size.k8s_memory}
    selector = {"app.kubernetes.io/name": workload.name}
    pod_labels = labels(settings, workload.name)
    container = {
        "name": workload.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": workload.port, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(workload.env.items())],
        "resources": {"requests": resources, "limits": resources},
        "startupProbe": {
            "httpGet": {"path": workload.liveness_path, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 24,
        },
        "livenessProbe": {
            "httpGet": {"path": workload.liveness_path, "port": "http"},
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": workload.readiness_path, "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_PATH}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(workload.name, settings.eks.namespace, pod_labels),
        "spec": {
            "replicas": size.desired_count,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": workload.name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "fsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector},
                        }
                    ],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def service(settings: StackSettings, workload: Workload) -> Manifest:
    """ClusterIP Service; annotations set the ALB target group's health path (and UI stickiness)."""
    annotations = {f"{ALB}/healthcheck-path": workload.readiness_path, f"{ALB}/success-codes": "200"}
    if workload.sticky:
        annotations[f"{ALB}/target-group-attributes"] = (
            "stickiness.enabled=true,stickiness.type=lb_cookie,"
            f"stickiness.lb_cookie.duration_seconds={STICKY_SESSION_SECONDS}"
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            workload.name, settings.eks.namespace, labels(settings, workload.name), annotations=annotations
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": workload.name},
            "ports": [{"name": "http", "port": workload.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(settings: StackSettings, workload: Workload) -> Manifest:
    """CPU-based HorizontalPodAutoscaler between the configured min and max replicas."""
    size = workload.size
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(workload.name, settings.eks.namespace, labels(settings, workload.name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
            "minReplicas": max(size.min_count, 1),
            "maxReplicas": size.max_count,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": size.cpu_target_percent},
                    },
                }
            ],
        },
    }


def disruption_budget(settings: StackSettings, workload: Workload) -> Manifest:
    """At most one pod of a workload down at a time during Fargate patching or evictions."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(workload.name, settings.eks.namespace, labels(settings, workload.name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": workload.name}}},
    }


def _backend(workload: Workload) -> dict[str, Any]:
    return {"service": {"name": workload.name, "port": {"name": "http"}}}


def ingress(settings: StackSettings, workloads: Sequence[Workload], api_paths: Sequence[str]) -> Manifest:
    """Internet-facing ALB (IP targets) `/` to the UI when enabled, the API's public routes to the API."""
    named = by_name(workloads)
    api, ui = named["api"], named.get("ui")
    tags = ",".join(f"{key}={value}" for key, value in settings.tags_for("eks-ingress").items())
    idle = UI_IDLE_TIMEOUT if ui else API_IDLE_TIMEOUT
    annotations = {
        f"{ALB}/scheme": "internet-facing",
        f"{ALB}/target-type": "ip",
        f"{ALB}/healthcheck-path": api.readiness_path,
        f"{ALB}/load-balancer-attributes": (
            f"idle_timeout.timeout_seconds={idle},routing.http.drop_invalid_header_fields.enabled=true"
        ),
        f"{ALB}/tags": tags,
    }
    if settings.certificate_arn:
        annotations |= {
            f"{ALB}/listen-ports": json.dumps([{"HTTP": 80}, {"HTTPS": 443}]),
            f"{ALB}/certificate-arn": settings.certificate_arn,
            f"{ALB}/ssl-redirect": "443",
            f"{ALB}/ssl-policy": SSL_POLICY,
        }
    else:
        annotations[f"{ALB}/listen-ports"] = json.dumps([{"HTTP": 80}])

    paths: list[dict[str, Any]]
    if ui:
        # ALB patterns -> Kubernetes paths: "/x/*" becomes Prefix "/x" (which also matches "/x" itself).
        kinds: dict[str, str] = {}
        for pattern in api_paths:
            path = pattern.removesuffix("/*")
            kinds[path] = "Prefix" if pattern.endswith("/*") or kinds.get(path) == "Prefix" else "Exact"
        paths = [{"path": path, "pathType": kind, "backend": _backend(api)} for path, kind in kinds.items()]
        paths.append({"path": "/", "pathType": "Prefix", "backend": _backend(ui)})
    else:
        paths = [{"path": "/", "pathType": "Prefix", "backend": _backend(api)}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(settings.name, settings.eks.namespace, labels(settings), annotations=annotations),
        "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": paths}}]},
    }


def observability_namespace() -> Manifest:
    """The namespace EKS Fargate's log router watches (name and label fixed by EKS)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": OBSERVABILITY_NAMESPACE, "labels": {"aws-observability": "enabled"}},
    }


def logging_config(region: str, log_group: str) -> Manifest:
    """Fargate's Fluent Bit output: container logs to one CloudWatch group that has a retention."""
    output = (
        "[OUTPUT]\n"
        "    Name cloudwatch_logs\n"
        "    Match *\n"
        f"    region {region}\n"
        f"    log_group_name {log_group}\n"
        "    log_stream_prefix fargate-\n"
        "    auto_create_group false\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-logging", "namespace": OBSERVABILITY_NAMESPACE},
        "data": {"flb_log_cw": "false", "output.conf": output},
    }
