"""The EKS platform's resource graph and every Kubernetes object it creates, checked against the schema."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import kubernetes_validate
import pytest

from tests.stacks.conftest import CERTIFICATE
from tests.stacks.harness import INGRESS_HOST, OIDC_ISSUER, Resource, Run, subnet_ids

K8S_VERSION = "1.33.0"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
SG_WRITES = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup")


def _integral(value: Any) -> Any:
    """The mock transport carries every number as a double; Kubernetes integers must be ints again."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _objects(run: Run) -> list[dict[str, Any]]:
    objects = []
    for resource in run.recorder.resources:
        if resource.typ.startswith("kubernetes:") and resource.typ.split(":")[1] != "helm.sh/v3":
            objects.append(_integral(resource.inputs))
    return objects


def _object(run: Run, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _objects(run) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _release(run: Run, chart: str) -> Resource:
    (release,) = [r for r in run.recorder.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart]
    return release


@pytest.mark.parametrize("fixture", ["full_run", "eks_only_run"])
def test_every_kubernetes_object_is_valid_against_the_schema(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    objects = _objects(run)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Namespace",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    for obj in objects:
        assert obj["metadata"]["name"], obj
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_schema_validation_rejects_an_unknown_field(full_run: Run) -> None:
    deployment = _object(full_run, "Deployment", "api")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_cluster_is_fargate_only_with_oidc(full_run: Run) -> None:
    cluster = full_run.recorder.one("eks:index:Cluster")
    inputs = cluster.inputs
    assert inputs["name"] == "diabetes-dev-eks"
    assert inputs["version"] == "1.33"
    assert inputs["createOidcProvider"] is True
    assert inputs["skipDefaultNodeGroup"] is True
    assert inputs["authenticationMode"] == "API"
    assert inputs["corednsAddonOptions"]["enabled"] is False  # managed explicitly on Fargate below
    assert inputs["endpointPrivateAccess"] is True
    assert len(inputs["privateSubnetIds"]) == len(inputs["publicSubnetIds"]) == 2
    assert inputs["tags"]["Project"] == "diabetes"
    assert set(inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator"}
    log_group = full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "control-plane")
    assert log_group.inputs["name"] == "/aws/eks/diabetes-dev-eks/cluster"
    assert log_group.inputs["retentionInDays"] == 14


def test_fargate_profiles_cover_kube_system_and_the_app_namespace(full_run: Run) -> None:
    profiles = {
        p.inputs["fargateProfileName"]: p for p in full_run.recorder.of_type("aws:eks/fargateProfile:FargateProfile")
    }
    assert profiles["diabetes-dev-system"].inputs["selectors"] == [{"namespace": "kube-system"}]
    assert profiles["diabetes-dev-app"].inputs["selectors"] == [{"namespace": "diabetes"}]
    private_ids = subnet_ids(full_run, "private")
    for profile in profiles.values():
        assert set(profile.inputs["subnetIds"]) == private_ids
        assert profile.inputs["clusterName"] == "diabetes-dev-eks"
    assert full_run.outputs["eksFargateProfiles"] == ["diabetes-dev-system", "diabetes-dev-app"]


def test_coredns_runs_on_fargate(full_run: Run) -> None:
    addon = full_run.recorder.one("aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "coredns"
    assert json.loads(addon.inputs["configurationValues"]) == {"computeType": "Fargate"}


def test_load_balancer_controller_role_trusts_only_its_service_account(full_run: Run) -> None:
    role = full_run.recorder.one("aws:iam/role:Role", "lb-controller")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{OIDC_ISSUER}"}
    assert statement["Condition"]["StringEquals"] == {
        f"{OIDC_ISSUER}:sub": "system:serviceaccount:kube-system:aws-load-balancer-controller",
        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
    }
    policy = json.loads(full_run.recorder.one("aws:iam/rolePolicy:RolePolicy", "lb-controller").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    # Writes are limited to resources the controller tagged itself, in this VPC, account and region.
    assert statements["ModifyOwn"]["Condition"] == {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}
    assert statements["IngressRulesInVpc"]["Condition"]["ArnEquals"]["ec2:Vpc"].endswith(":vpc/diabetes-dev-net-vpc-id")
    assert statements["IngressRulesInVpc"]["Condition"]["Null"] == {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}
    assert statements["IngressRulesOnClusterSecurityGroup"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/diabetes-dev-eks": "owned"
    }
    assert all(":eu-west-1:123456789012:" in arn for arn in statements["Targets"]["Resource"].split(",")), statements


def test_load_balancer_controller_cannot_touch_the_ecs_load_balancer(full_run: Run) -> None:
    """Same account, region and VPC as the ECS ALB: the controller may only change what it names `k8s-*`."""
    policy = json.loads(full_run.recorder.one("aws:iam/rolePolicy:RolePolicy", "lb-controller").inputs["policy"])
    creating = [s for s in policy["Statement"] if s["Sid"] in ("CreateTagged", "TagOnCreate")]
    assert len(creating) == 2
    for statement in creating:  # a create touches nothing existing; it must carry the controller's tag
        assert statement["Condition"]["Null"] == {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}
    # "*" only for Describe (checked elsewhere)
    scoped = [s for s in policy["Statement"] if s["Resource"] != "*" and s not in creating]
    resources = [r for s in scoped for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    elb = [r for r in resources if ":elasticloadbalancing:" in r]
    assert elb
    assert all("/k8s-*/" in r for r in elb), elb

    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    alb = f"app/{full_run.recorder.one('aws:lb/loadBalancer:LoadBalancer').inputs['name']}/50dc6c495c0c9188"
    ecs = [
        f"{arn}loadbalancer/{alb}",
        f"{arn}listener/{alb}/f2f7dc8efc522ab2",
        f"{arn}listener-rule/{alb}/f2f7dc8efc522ab2/9683b2d02a6cabee",
        *(f"{arn}targetgroup/{tg.inputs['name']}/73e2d6bc24d8a067" for tg in full_run.recorder.of_type(TARGET_GROUP)),
    ]
    assert not [(target, r) for target in ecs for r in resources if fnmatchcase(target, r)]
    own = f"{arn}loadbalancer/app/k8s-diabetes-diabetes-0a1b2c3d4e/50dc6c495c0c9188"
    assert any(fnmatchcase(own, r) for r in elb)

    # Security-group edits need a tag the controller (or EKS, on the cluster group) set; ECS groups carry neither.
    ecs_groups = [g for g in full_run.recorder.of_type("aws:ec2/securityGroup:SecurityGroup") if "-ecs-" in g.name]
    assert ecs_groups
    for statement in scoped:
        if not any(a in statement["Action"] for a in SG_WRITES):
            continue
        condition = statement["Condition"]
        required = {k for k, v in condition.get("Null", {}).items() if v == "false"} | set(
            condition.get("StringEquals", {})
        )
        keys = {k.removeprefix("aws:ResourceTag/") for k in required if k.startswith("aws:ResourceTag/")}
        assert keys, statement
        assert not [g.name for g in ecs_groups if keys & set(g.inputs["tags"])], statement


def test_load_balancer_controller_is_configured_for_fargate(full_run: Run) -> None:
    release = _release(full_run, "aws-load-balancer-controller")
    values = release.inputs["values"]
    assert values["clusterName"] == "diabetes-dev-eks"
    assert values["region"] == "eu-west-1"
    assert values["vpcId"] == "diabetes-dev-net-vpc-id"
    assert values["serviceAccount"]["name"] == "aws-load-balancer-controller"
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("lb-controller")
    assert release.inputs["namespace"] == "kube-system"
    assert release.inputs["version"] == "1.13.4"
    assert release.inputs["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    assert _release(full_run, "metrics-server").inputs["values"]["containerPort"] == 4443


def test_api_deployment_is_hardened_with_probes_and_limits(full_run: Run) -> None:
    deployment = _object(full_run, "Deployment", "api")
    assert deployment["metadata"]["namespace"] == "diabetes"
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"].endswith("/diabetes-dev/api:3f2c1ab")
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsUser"] == 10001
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "512m", "memory": "1024Mi"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "1Gi"


def test_ui_deployment_calls_the_api_service_in_cluster(full_run: Run) -> None:
    deployment = _object(full_run, "Deployment", "ui")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "API_URL", "value": "http://api.diabetes.svc.cluster.local:8000"}]
    service = _object(full_run, "Service", "ui")
    annotations = service["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/_stcore/health"
    assert "stickiness.enabled=true" in annotations["alb.ingress.kubernetes.io/target-group-attributes"]


def test_api_service_account_assumes_the_model_reader_role(full_run: Run, eks_only_run: Run) -> None:
    account = _object(full_run, "ServiceAccount", "api")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("eks-api-model")
    assert account["automountServiceAccountToken"] is False
    assert not _object(eks_only_run, "ServiceAccount", "api")["metadata"].get("annotations")


def test_service_is_cluster_ip_with_alb_health_path(eks_only_run: Run) -> None:
    service = _object(eks_only_run, "Service", "api")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-path"] == "/ready"


def test_ingress_is_an_internet_facing_alb_with_ip_targets(full_run: Run, eks_only_run: Run) -> None:
    ingress = _object(full_run, "Ingress", "diabetes-dev")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/ready"
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == CERTIFICATE
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert "idle_timeout.timeout_seconds=3600" in annotations["alb.ingress.kubernetes.io/load-balancer-attributes"]
    paths = {
        (p["path"], p["pathType"]): p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths[("/", "Prefix")] == "ui"
    assert paths[("/predict", "Prefix")] == "api"
    assert paths[("/ready", "Exact")] == "api"
    assert full_run.outputs["eksIngressHostname"] == INGRESS_HOST

    simple = _object(eks_only_run, "Ingress", "diabetes-dev")
    (only,) = simple["spec"]["rules"][0]["http"]["paths"]
    assert (only["path"], only["backend"]["service"]["name"]) == ("/", "api")
    assert json.loads(simple["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}]


def test_autoscaler_and_disruption_budget_follow_config(full_run: Run) -> None:
    hpa = _object(full_run, "HorizontalPodAutoscaler", "api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    pdb = _object(full_run, "PodDisruptionBudget", "api")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}


def test_fargate_logs_go_to_a_log_group_with_retention(full_run: Run) -> None:
    namespace = _object(full_run, "Namespace", "aws-observability")
    assert namespace["metadata"]["labels"] == {"aws-observability": "enabled"}
    config = _object(full_run, "ConfigMap", "aws-logging")
    assert "log_group_name /eks/diabetes-dev-eks/pods" in config["data"]["output.conf"]
    assert "auto_create_group false" in config["data"]["output.conf"]
    group = full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "-pods")
    assert group.inputs["retentionInDays"] == 14
