"""The Kubernetes objects of the app, as plain manifests built from the workload specs.

Plain dicts (apiVersion/kind/metadata/spec) keep the objects readable and are handed unchanged to the typed
pulumi_kubernetes resources. Values only known at deploy time (the image, the IRSA role, the log bucket) are
Pulumi inputs inside the dicts, which Pulumi resolves itself; given plain strings, the same builders render the
YAML of `python -m stacks.ops render-k8s`, so the program and the rendered files cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from stacks.config import EksStackSettings
from stacks.shared import EKS_ACCESS_LOG_PREFIX
from stacks.workloads import (
    NOT_FOUND_BODY,
    NOT_FOUND_CONTENT_TYPE,
    NOT_FOUND_STATUS,
    PRE_STOP_SECONDS,
    RUN_AS_USER,
    SSL_POLICY,
    STICKY_SESSION_SECONDS,
    STOP_SECONDS,
    TMP_PATH,
    UI_PRIVATE_PATHS,
    Workload,
    api_public_paths,
    by_name,
    load_balancer_idle_timeout,
)

Manifest = dict[str, Any]
ALB = "alb.ingress.kubernetes.io"
#: The Ingress's own action (`alb.ingress.kubernetes.io/actions.<name>`): the load balancer's 404, referenced as a
#: backend whose port is `use-annotation` (the controller's convention); the default backend and the UI's refusals.
NOT_FOUND_ACTION = "not-found"
USE_ANNOTATION = "use-annotation"
#: Where Fargate's built-in Fluent Bit reads its output config from (names fixed by EKS).
OBSERVABILITY_NAMESPACE = "aws-observability"


def labels(settings: EksStackSettings, workload: str | None = None) -> dict[str, str]:
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


def namespace(settings: EksStackSettings) -> Manifest:
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


def service_account(settings: EksStackSettings, workload: Workload, role_arn: pulumi.Input[str] | None) -> Manifest:
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


def _probes(workload: Workload) -> Manifest:
    """Start-up (up to 2 min to load the model), liveness (the process answers) and readiness (it can serve)."""
    return {
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
    }


def deployment(settings: EksStackSettings, workload: Workload, image: pulumi.Input[str]) -> Manifest:
    """A hardened Deployment: non-root, read-only root filesystem, no privilege escalation, probes, limits.

    No `replicas`: the HorizontalPodAutoscaler owns the count, so a deployment never resets it under load."""
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
        **_probes(workload),
        # Kubernetes' own sleep action (on by default since 1.30): nothing to exec in the read-only image.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
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
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": workload.name,
                    "automountServiceAccountToken": False,
                    # The preStop sleep, then the container's own stop (SIGTERM to exit) within its stop timeout.
                    "terminationGracePeriodSeconds": PRE_STOP_SECONDS + STOP_SECONDS,
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


def service(settings: EksStackSettings, workload: Workload) -> Manifest:
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


def autoscaler(settings: EksStackSettings, workload: Workload) -> Manifest:
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


def disruption_budget(settings: EksStackSettings, workload: Workload) -> Manifest:
    """At most one pod of a workload down at a time during Fargate patching or evictions."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(workload.name, settings.eks.namespace, labels(settings, workload.name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": workload.name}}},
    }


def _backend(workload: Workload) -> dict[str, Any]:
    return {"service": {"name": workload.name, "port": {"name": "http"}}}


def _not_found_backend() -> dict[str, Any]:
    """The backend that is the not-found action, not a Service (a fresh dict: YAML would alias a shared one)."""
    return {"service": {"name": NOT_FOUND_ACTION, "port": {"name": USE_ANNOTATION}}}


def not_found_action() -> str:
    """The controller's fixed-response action: the load balancer's 404 in the service's error shape."""
    config = {"contentType": NOT_FOUND_CONTENT_TYPE, "statusCode": str(NOT_FOUND_STATUS), "messageBody": NOT_FOUND_BODY}
    return json.dumps({"type": "fixed-response", "fixedResponseConfig": config})


def _ingress_paths(settings: EksStackSettings, api: Workload, ui: Workload | None) -> list[dict[str, Any]]:
    """The API's public routes to the API; `/` to the UI when enabled, less its private paths (the load balancer's
    404). Anything else reaches the default backend, the same 404: `/metrics` is scraped inside the cluster.

    ALB patterns -> Kubernetes paths: "/x/*" becomes Prefix "/x" (which also matches "/x" itself); the controller
    orders Exact paths first, then Prefix ones longest first, so `/` comes last."""
    kinds: dict[str, str] = {}
    for pattern in api_public_paths(settings):
        path = pattern.removesuffix("/*")
        kinds[path] = "Prefix" if pattern.endswith("/*") or kinds.get(path) == "Prefix" else "Exact"
    paths = [{"path": path, "pathType": kind, "backend": _backend(api)} for path, kind in kinds.items()]
    if ui:
        paths += [{"path": path, "pathType": "Exact", "backend": _not_found_backend()} for path in UI_PRIVATE_PATHS]
        paths.append({"path": "/", "pathType": "Prefix", "backend": _backend(ui)})
    return paths


def load_balancer_attributes(idle_timeout: int, access_log_bucket: pulumi.Input[str] | None) -> pulumi.Input[str]:
    """The ALB's attributes: explicit idle timeout, invalid headers dropped, access logs to the shared bucket."""
    fixed = f"idle_timeout.timeout_seconds={idle_timeout},routing.http.drop_invalid_header_fields.enabled=true"
    if access_log_bucket is None:
        return fixed
    if isinstance(access_log_bucket, str):
        return f"{fixed},access_logs.s3.enabled=true,access_logs.s3.bucket={access_log_bucket}," + (
            f"access_logs.s3.prefix={EKS_ACCESS_LOG_PREFIX}"
        )
    return pulumi.Output.concat(
        fixed,
        ",access_logs.s3.enabled=true,access_logs.s3.bucket=",
        access_log_bucket,
        f",access_logs.s3.prefix={EKS_ACCESS_LOG_PREFIX}",
    )


def ingress(
    settings: EksStackSettings, workloads: Sequence[Workload], access_log_bucket: pulumi.Input[str] | None
) -> Manifest:
    """Internet-facing ALB (IP targets): the API's public routes to the API, `/` to the UI when enabled, anything
    else the load balancer's 404 (the default backend)."""
    named = by_name(workloads)
    api, ui = named["api"], named.get("ui")
    tags = ",".join(f"{key}={value}" for key, value in settings.tags_for("eks-ingress").items())
    annotations: dict[str, pulumi.Input[str]] = {
        f"{ALB}/scheme": "internet-facing",
        f"{ALB}/target-type": "ip",
        f"{ALB}/healthcheck-path": api.readiness_path,
        f"{ALB}/load-balancer-attributes": load_balancer_attributes(
            load_balancer_idle_timeout(settings), access_log_bucket
        ),
        f"{ALB}/tags": tags,
        f"{ALB}/actions.{NOT_FOUND_ACTION}": not_found_action(),
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

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(settings.name, settings.eks.namespace, labels(settings), annotations=annotations),
        "spec": {
            "ingressClassName": "alb",
            "defaultBackend": _not_found_backend(),
            "rules": [{"http": {"paths": _ingress_paths(settings, api, ui)}}],
        },
    }


def observability_namespace() -> Manifest:
    """The namespace EKS Fargate's log router watches (name and label fixed by EKS)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": OBSERVABILITY_NAMESPACE, "labels": {"aws-observability": "enabled"}},
    }


def logging_config(region: str, log_group: pulumi.Input[str]) -> Manifest:
    """Fargate's Fluent Bit output: container logs to one CloudWatch group that has a retention."""
    output = pulumi.Output.concat(
        "[OUTPUT]\n",
        "    Name cloudwatch_logs\n",
        "    Match *\n",
        f"    region {region}\n",
        "    log_group_name ",
        log_group,
        "\n",
        "    log_stream_prefix fargate-\n",
        "    auto_create_group false\n",
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-logging", "namespace": OBSERVABILITY_NAMESPACE},
        "data": {"flb_log_cw": "false", "output.conf": output},
    }


def app_manifests(
    settings: EksStackSettings,
    workloads: Sequence[Workload],
    images: Mapping[str, pulumi.Input[str]],
    api_role_arn: pulumi.Input[str] | None,
    access_log_bucket: pulumi.Input[str] | None,
) -> list[Manifest]:
    """Every object of the app, in apply order: namespace; per workload its service account, Deployment, Service,
    HPA and PDB; the Ingress."""
    objects = [namespace(settings)]
    for workload in workloads:
        objects += [
            service_account(settings, workload, api_role_arn if workload.name == "api" else None),
            deployment(settings, workload, images[workload.name]),
            service(settings, workload),
            autoscaler(settings, workload),
            disruption_budget(settings, workload),
        ]
    objects.append(ingress(settings, workloads, access_log_bucket))
    return objects
