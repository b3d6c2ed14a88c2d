"""The app's Kubernetes objects as plain YAML, for a cluster this project does not create (kubectl apply, GitOps).

The objects come from `stacks.eks.manifests.app_manifests`, the builders the EKS program applies, with the sizes,
probes and routes of an EKS stack file; only the images, the namespace, the API's IRSA role, the access-log
bucket and the CIDRs of the load balancer's subnets are given here. The cluster needs the AWS Load Balancer
Controller (for the Ingress) and metrics-server (for the HPAs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from stacks.config import EksStackSettings, read_stack_file
from stacks.eks.manifests import Manifest, app_manifests
from stacks.ops import OpsError
from stacks.workloads import stack_workloads


def stack_file_settings(
    stack_file: Path, namespace: str, image_tag: str, region: str | None = None
) -> EksStackSettings:
    """The EKS settings of a `Pulumi.<stack>.yaml`, for another namespace and image tag (the region: the file's
    `aws:region`, else `region`, else AWS_REGION)."""
    config = yaml.safe_load(stack_file.read_text())["config"]
    if not (config.get("aws:region") or region or os.environ.get("AWS_REGION")):
        raise OpsError(f"{stack_file} names no aws:region: pass --region or set AWS_REGION")
    eks = config.get("diabetes-eks:eks", {})
    return read_stack_file(
        EksStackSettings, stack_file, "diabetes-eks", region, imageTag=image_tag, eks={**eks, "namespace": namespace}
    )


def render_objects(
    settings: EksStackSettings,
    images: Mapping[str, str],
    api_role_arn: str | None,
    access_log_bucket: str | None,
    load_balancer_subnets: Sequence[str],
) -> list[Manifest]:
    """The objects the EKS program would apply with these settings, as plain values; `load_balancer_subnets`: the
    CIDRs of the subnets the Ingress's ALB is in (the proxies the API trusts to name the client)."""
    namespace = settings.eks.namespace
    workloads = stack_workloads(
        settings, lambda api: f"http://{api.name}.{namespace}.svc.cluster.local:{api.port}", load_balancer_subnets
    )
    missing = [workload.name for workload in workloads if workload.name not in images]
    if missing:
        raise OpsError(f"no image given for {missing}: pass --{missing[0]}-image (the stack file enables it)")
    objects = app_manifests(settings, workloads, images, api_role_arn, access_log_bucket)
    return [_plain(obj) for obj in objects]


def _plain(value: Any) -> Any:
    """A manifest holds only str/int/bool/list/dict here (no Pulumi input was given); fail loudly otherwise."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise OpsError(f"a manifest value is not plain data: {value!r}")


def write_objects(objects: list[Manifest], output: Path) -> list[Path]:
    """One file per object, numbered in apply order (`00-namespace-diabetes.yaml`, ...)."""
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, obj in enumerate(objects):
        path = output / f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        paths.append(path)
    return paths
