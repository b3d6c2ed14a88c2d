"""The EKS platform's resource graph and every Kubernetes object it creates, checked against the schema."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stacks.config import ConfigError, EksStackSettings
from stacks.eks.lb_controller_policy import CHART_VERSION
from stacks.ops.__main__ import main as ops_main
from tests.stacks.conftest import CERTIFICATE, FULL, MODEL_SHA256
from tests.stacks.harness import (
    INGRESS_HOST,
    OIDC_ISSUER,
    PREVIEWER,
    Resource,
    Run,
    integral,
    run_eks,
    run_program,
    settings_for,
    subnet_ids,
)

K8S_VERSION = "1.33.0"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SG_WRITES = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup")
APP_KINDS = {"Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def _objects(run: Run, *, app_only: bool = False) -> list[dict[str, Any]]:
    objects = []
    for resource in run.recorder.resources:
        if not resource.typ.startswith("kubernetes:") or resource.typ.split(":")[1] == "helm.sh/v3":
            continue
        if app_only and "-eks-app-" not in resource.name:
            continue
        _, group_version, kind = resource.typ.split(":")
        api_version = group_version.removeprefix("core/")
        objects.append({"apiVersion": api_version, "kind": kind, **integral(resource.inputs)})
    return objects


def _object(run: Run, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _objects(run) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _release(run: Run, chart: str) -> Resource:
    (release,) = [r for r in run.recorder.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart]
    return release


def _lbc_policy(run: Run) -> dict[str, Any]:
    return dict(json.loads(run.recorder.one(ROLE_POLICY, "lb-controller").inputs["policy"]))


@pytest.mark.parametrize("fixture", ["eks_full_run", "eks_minimal_run"])
def test_every_kubernetes_object_is_valid_against_the_schema(fixture: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(fixture)
    objects = _objects(run)
    assert {o["kind"] for o in objects} == {*APP_KINDS, "ConfigMap", "Ingress"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_schema_validation_rejects_an_unknown_field(eks_full_run: Run) -> None:
    deployment = _object(eks_full_run, "Deployment", "api")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_autoscaler_owns_the_replica_count(eks_full_run: Run) -> None:
    """With `replicas` in the Deployment, every image deploy would reset the API to it under load."""
    for workload in ("api", "ui"):
        hpa = _object(eks_full_run, "HorizontalPodAutoscaler", workload)
        assert hpa["spec"]["scaleTargetRef"]["name"] == workload
        assert "replicas" not in _object(eks_full_run, "Deployment", workload)["spec"]


def test_cluster_authenticates_with_explicit_access_entries_only(eks_full_run: Run) -> None:
    cluster = eks_full_run.recorder.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    entries = {e.inputs["principalArn"] for e in eks_full_run.recorder.of_type("aws:eks/accessEntry:AccessEntry")}
    assert entries == {
        "arn:aws:iam::123456789012:role/diabetes-dev-github-deploy",
        "arn:aws:iam::123456789012:role/diabetes-dev-github-preview",
    }
    policies = {
        a.inputs["principalArn"].rsplit("/", 1)[-1]: a.inputs["policyArn"].rsplit("/", 1)[-1]
        for a in eks_full_run.recorder.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    }
    assert policies == {
        "diabetes-dev-github-deploy": "AmazonEKSClusterAdminPolicy",
        "diabetes-dev-github-preview": "AmazonEKSViewPolicy",
    }


def test_kubernetes_objects_wait_for_the_access_entries(eks_full_run: Run) -> None:
    provider = eks_full_run.recorder.one("pulumi:providers:kubernetes")
    for association in eks_full_run.recorder.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert provider.waits_for(association)
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    args = kubeconfig["users"][0]["user"]["exec"]["args"]
    assert args[:4] == ["eks", "get-token", "--cluster-name", "diabetes-dev-eks"]


def test_a_deployer_without_cluster_access_is_refused_before_anything_is_created(root_run: Run) -> None:
    from stacks.eks.program import build

    eks_settings = settings_for(EksStackSettings)
    stranger = "arn:aws:iam::123456789012:role/someone-else"
    with pytest.raises(ConfigError, match="is not an admin of the cluster"):
        run_program(build, eks_settings, root_run.outputs, deployer=stranger)
    # The preview role may preview (it views), but not update.
    run_program(build, eks_settings, root_run.outputs, deployer=PREVIEWER, preview=True)
    with pytest.raises(ConfigError, match="is not an admin"):
        run_program(build, eks_settings, root_run.outputs, deployer=PREVIEWER)


def test_api_endpoint_is_private_unless_cidrs_are_given(eks_minimal_run: Run, eks_full_run: Run) -> None:
    private = eks_minimal_run.recorder.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert private["endpointPublicAccess"] is False
    assert private["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in private
    public = eks_full_run.recorder.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert public["endpointPublicAccess"] is True
    assert public["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert set(public["subnetIds"]) == subnet_ids(eks_full_run, "private")


def test_cluster_logs_and_oidc_provider(eks_full_run: Run) -> None:
    cluster = eks_full_run.recorder.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["name"] == "diabetes-dev-eks"
    assert cluster.inputs["version"] == "1.33"
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator"}
    log_group = eks_full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "control-plane")
    assert cluster.waits_for(log_group)
    assert log_group.inputs["name"] == "/aws/eks/diabetes-dev-eks/cluster"
    oidc = eks_full_run.recorder.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == f"https://{OIDC_ISSUER}"
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_fargate_profiles_one_at_a_time_after_their_role_policy(eks_full_run: Run) -> None:
    """EKS changes one Fargate profile of a cluster at a time; the pods' role must have its policy first."""
    profiles = {
        p.inputs["selectors"][0]["namespace"]: p
        for p in eks_full_run.recorder.of_type("aws:eks/fargateProfile:FargateProfile")
    }
    assert profiles.keys() == {"kube-system", "diabetes"}
    policy = eks_full_run.recorder.one(ROLE_POLICY, "pod-execution")
    assert profiles["diabetes"].waits_for(profiles["kube-system"])
    for profile in profiles.values():
        assert profile.waits_for(policy)
        assert "fargateProfileName" not in profile.inputs  # autonamed: a replacement never clashes
        assert set(profile.inputs["subnetIds"]) == subnet_ids(eks_full_run, "private")
    assert eks_full_run.outputs["eksFargateProfiles"] == [
        profiles["kube-system"].state["fargateProfileName"],
        profiles["diabetes"].state["fargateProfileName"],
    ]


def test_coredns_runs_on_fargate(eks_full_run: Run) -> None:
    addon = eks_full_run.recorder.one("aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "coredns"
    assert json.loads(addon.inputs["configurationValues"]) == {"computeType": "Fargate"}


def test_load_balancer_controller_is_pinned_and_waits_for_its_iam_policy(eks_full_run: Run) -> None:
    release = _release(eks_full_run, "aws-load-balancer-controller")
    assert release.inputs["version"] == CHART_VERSION == "1.13.4"
    assert release.waits_for(eks_full_run.recorder.one(ROLE_POLICY, "lb-controller"))
    values = release.inputs["values"]
    assert values["clusterName"] == "diabetes-dev-eks"
    assert values["vpcId"] == "diabetes-dev-net-vpc-vpc-id"
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("lb-controller")
    assert (values["enableWaf"], values["enableWafv2"], values["enableShield"]) == (False, False, False)
    assert _release(eks_full_run, "metrics-server").inputs["values"]["containerPort"] == 4443


def test_load_balancer_controller_role_trusts_only_its_service_account(eks_full_run: Run) -> None:
    role = eks_full_run.recorder.one("aws:iam/role:Role", "lb-controller")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{OIDC_ISSUER}"}
    assert statement["Condition"]["StringEquals"] == {
        f"{OIDC_ISSUER}:sub": "system:serviceaccount:kube-system:aws-load-balancer-controller",
        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
    }


def test_load_balancer_controller_cannot_touch_the_ecs_load_balancer(eks_full_run: Run, ecs_full_run: Run) -> None:
    """Same account, region and VPC as the ECS ALB: the controller may only change what it names `k8s-*`."""
    policy = _lbc_policy(eks_full_run)
    creating = [s for s in policy["Statement"] if s["Sid"].startswith(("CreateTagged", "TagOnCreate"))]
    scoped = [s for s in policy["Statement"] if s["Resource"] != "*" and s not in creating]
    resources = [r for s in scoped for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    elb = [r for r in resources if ":elasticloadbalancing:" in r]
    assert elb
    assert all("/k8s-*/" in r for r in elb), elb
    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    alb = f"app/{ecs_full_run.recorder.one('aws:lb/loadBalancer:LoadBalancer').name}-1a2b3c4/50dc6c495c0c9188"
    ecs = [
        f"{arn}loadbalancer/{alb}",
        f"{arn}listener/{alb}/f2f7dc8efc522ab2",
        f"{arn}listener-rule/{alb}/f2f7dc8efc522ab2/9683b2d02a6cabee",
        *(f"{arn}targetgroup/{tg.name}-1a2b3c4/73e2d6bc24d8a067" for tg in ecs_full_run.recorder.of_type(TARGET_GROUP)),
    ]
    assert not [(target, r) for target in ecs for r in resources if fnmatchcase(target, r)]
    own = f"{arn}loadbalancer/app/k8s-diabetes-diabetes-0a1b2c3d4e/50dc6c495c0c9188"
    assert any(fnmatchcase(own, r) for r in elb)
    ecs_groups = ecs_full_run.recorder.of_type("aws:ec2/securityGroup:SecurityGroup")
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


def test_api_deployment_is_hardened_pinned_and_waits_for_its_model_role(eks_full_run: Run) -> None:
    deployment = _object(eks_full_run, "Deployment", "api")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith("/diabetes-dev/api:3f2c1ab")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsUser"] == 10001
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL_SHA256"] == MODEL_SHA256
    assert env["SERVICE_DOCS_ENABLED"] == "false"
    resource = eks_full_run.recorder.one("kubernetes:apps/v1:Deployment", "-api-")
    assert resource.waits_for(eks_full_run.recorder.one(ROLE_POLICY, "api-model"))
    assert resource.waits_for(_release(eks_full_run, "aws-load-balancer-controller"))


def test_the_api_outlasts_the_alb_on_idle_connections(eks_full_run: Run, eks_minimal_run: Run) -> None:
    """The ALB, not the pod, must close an idle connection, or it reuses a closed one and answers 502."""
    for run in (eks_full_run, eks_minimal_run):
        (container,) = _object(run, "Deployment", "api")["spec"]["template"]["spec"]["containers"]
        keep_alive = {e["name"]: e["value"] for e in container["env"]}["SERVICE_KEEP_ALIVE_SECONDS"]
        annotations = _object(run, "Ingress", "diabetes-dev")["metadata"]["annotations"]
        attributes = dict(
            item.split("=", 1) for item in annotations["alb.ingress.kubernetes.io/load-balancer-attributes"].split(",")
        )
        assert int(keep_alive) > int(attributes["idle_timeout.timeout_seconds"])


def test_ui_deployment_calls_the_api_service_in_cluster(eks_full_run: Run) -> None:
    (container,) = _object(eks_full_run, "Deployment", "ui")["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "API_URL", "value": "http://api.diabetes.svc.cluster.local:8000"}]


def test_api_service_account_assumes_the_model_reader_role(eks_full_run: Run, eks_minimal_run: Run) -> None:
    account = _object(eks_full_run, "ServiceAccount", "api")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("eks-app-api-model")
    assert not _object(eks_minimal_run, "ServiceAccount", "api")["metadata"].get("annotations")


def test_ingress_is_an_internet_facing_alb_with_access_logs(eks_full_run: Run, eks_minimal_run: Run) -> None:
    ingress = _object(eks_full_run, "Ingress", "diabetes-dev")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == CERTIFICATE
    attributes = annotations["alb.ingress.kubernetes.io/load-balancer-attributes"].split(",")
    assert "idle_timeout.timeout_seconds=3600" in attributes
    assert "access_logs.s3.bucket=diabetes-dev-access-logs-bucket" in attributes
    assert "access_logs.s3.prefix=eks" in attributes
    rules = ingress["spec"]["rules"][0]["http"]["paths"]
    paths = {(p["path"], p["pathType"]): p["backend"]["service"]["name"] for p in rules}
    assert paths[("/", "Prefix")] == "ui"
    assert paths[("/predict", "Prefix")] == "api"
    assert ("/docs", "Exact") not in paths
    assert eks_full_run.outputs["eksIngressHostname"] == INGRESS_HOST
    (only,) = _object(eks_minimal_run, "Ingress", "diabetes-dev")["spec"]["rules"][0]["http"]["paths"]
    assert (only["path"], only["backend"]["service"]["name"]) == ("/", "api")


def test_fargate_logs_go_to_a_log_group_with_retention(eks_full_run: Run) -> None:
    config = _object(eks_full_run, "ConfigMap", "aws-logging")
    assert "log_group_name /eks/diabetes-dev-eks/pods" in config["data"]["output.conf"]
    assert eks_full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "-pods").inputs["retentionInDays"] == 14


def test_rendered_yaml_is_what_the_program_applies(root_run: Run, tmp_path: Path) -> None:
    """`render-k8s` with the stack file's settings equals, object for object, what the EKS program creates."""
    stack_file = tmp_path / "Pulumi.dev.yaml"
    config = {"aws:region": "eu-west-1"} | {
        f"diabetes-eks:{key}": value for key, value in {**FULL, "eks": {"access": {"admins": ["role/x"]}}}.items()
    }
    stack_file.write_text(yaml.safe_dump({"config": config}))
    program = run_eks(root_run, **FULL)
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diabetes-dev"
    api_role = program.recorder.one("aws:iam/role:Role", "api-model").state["arn"]
    out = tmp_path / "k8s"
    status = ops_main(
        [
            "render-k8s",
            f"--stack-file={stack_file}",
            f"--api-image={registry}/api:3f2c1ab",
            f"--ui-image={registry}/ui:3f2c1ab",
            "--namespace=diabetes",
            f"--api-role-arn={api_role}",
            "--access-log-bucket=diabetes-dev-access-logs-bucket",
            f"--output={out}",
        ]
    )
    assert status == 0
    rendered = [yaml.safe_load(path.read_text()) for path in sorted(out.glob("*.yaml"))]
    for obj in rendered:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert rendered == _objects(program, app_only=True)
    assert {o["kind"] for o in rendered} == {*APP_KINDS, "Ingress"}


def test_rendering_into_another_namespace_moves_every_object(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    stack_file = Path(__file__).resolve().parents[2] / "stacks" / "eks" / "Pulumi.dev.yaml"
    args = ["render-k8s", f"--stack-file={stack_file}", "--api-image=r/api:1", "--ui-image=r/ui:1"]
    assert ops_main([*args, "--namespace=team-ml", f"--output={out}"]) == 0
    objects = [yaml.safe_load(path.read_text()) for path in sorted(out.glob("*.yaml"))]
    assert objects[0] == {**objects[0], "kind": "Namespace"}
    assert objects[0]["metadata"]["name"] == "team-ml"
    assert all(o["metadata"].get("namespace") == "team-ml" for o in objects[1:])
    assert ops_main([*args[:-1], "--namespace=x", f"--output={tmp_path / 'y'}"]) == 1  # the UI needs its image
