"""The EKS platform's resource graph and every Kubernetes object it creates, checked against the schema."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings as ServiceSettings
from stacks.config import ConfigError, EksStackSettings
from stacks.eks import preview_access
from stacks.eks.lb_controller_policy import CHART_VERSION, CLUSTER_TAG
from stacks.eks.versions import STANDARD_SUPPORT_END
from stacks.ops.__main__ import main as ops_main
from stacks.ops.boundary import workload_boundary_policy
from stacks.ops.ci_roles import CiSetup
from tests.stacks import eks_component
from tests.stacks.conftest import CERTIFICATE, FULL, MODEL_SHA256
from tests.stacks.harness import (
    DEPLOYER,
    INGRESS_HOST,
    OIDC_ISSUER,
    OPERATOR,
    PREVIEWER,
    Resource,
    Run,
    integral,
    run_eks,
    run_program,
    settings_for,
    subnet_ids,
)
from tests.stacks.iam_lint import allows, allows_bounded
from tests.stacks.test_workload_environment import read_as_the_container_would

K8S_VERSION = "1.35.0"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SG_WRITES = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup")
PREVIEW_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Role", "RoleBinding"}
#: Any policy at all: a boundary is judged by what it lets through whatever the role is given.
ADMINISTRATOR = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
APP_KINDS = {"Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def _objects(run: Run, *, app_only: bool = False) -> list[dict[str, Any]]:
    objects = []
    for resource in run.recorder.resources:
        if not resource.typ.startswith("kubernetes:") or resource.typ.split(":")[1] == "helm.sh/v3":
            continue
        if app_only and "-eks-app-" not in resource.name:
            continue
        _, group_version, kind = resource.typ.split(":")
        if app_only and kind in PREVIEW_KINDS:  # the CI preview's grant is the program's, not the app's
            continue
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
    assert {o["kind"] for o in objects} == {*APP_KINDS, *PREVIEW_KINDS, "ConfigMap", "Ingress"}
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


def _cluster(run: Run) -> Resource:
    return run.recorder.one(eks_component.TYPE)


def _children(run: Run, typ: str) -> list[eks_component.Child]:
    cluster = _cluster(run)
    return [child for child in eks_component.children(cluster.name, cluster.inputs) if child.typ == typ]


def test_the_cluster_is_pulumi_eks_with_api_authentication_and_access_entries_from_the_config(
    eks_full_run: Run,
) -> None:
    """The creator (the CI deploy role) gets no entry: pulumi-eks lets EKS make it an admin itself."""
    cluster = _cluster(eks_full_run)
    assert cluster.inputs["authenticationMode"] == "API"
    entries = {e["principalArn"]: e for e in cluster.inputs["accessEntries"].values()}
    assert entries.keys() == {OPERATOR, PREVIEWER}
    assert DEPLOYER not in entries
    policies = {
        arn.rsplit("/", 1)[-1]: [p["policyArn"].rsplit("/", 1)[-1] for p in entry["accessPolicies"].values()]
        for arn, entry in entries.items()
    }
    assert policies == {
        "platform-operator": ["AmazonEKSClusterAdminPolicy"],
        "diabetes-dev-github-preview": ["AmazonEKSViewPolicy"],
    }
    assert all(p["accessScope"] == {"type": "cluster"} for e in entries.values() for p in e["accessPolicies"].values())
    (made,) = _children(eks_full_run, "aws:eks/cluster:Cluster")
    assert made.inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True}


def test_pulumi_eks_makes_no_role_security_group_or_node_of_its_own(eks_full_run: Run) -> None:
    """Its roles would carry no path or boundary (the deploy role may not create them), its security groups open
    egress to the internet; a Fargate-only cluster needs neither, nor nodes, kube-proxy or the VPC CNI add-on."""
    cluster = _cluster(eks_full_run)
    role = eks_full_run.recorder.one("aws:iam/role:Role", "eks-cluster")
    assert cluster.inputs["serviceRole"] == {"id": role.mock_id, "arn": role.state["arn"]}
    assert role.inputs["path"] == "/diabetes-dev/"
    assert role.inputs["permissionsBoundary"].endswith(":policy/diabetes-dev-workload-boundary")
    pod_role = eks_full_run.recorder.one("aws:iam/role:Role", "pod-execution")
    assert cluster.inputs["fargate"]["podExecutionRoleArn"] == pod_role.state["arn"]
    assert (cluster.inputs["skipDefaultNodeGroup"], cluster.inputs["skipDefaultSecurityGroups"]) == (True, True)
    assert cluster.inputs["kubeProxyAddonOptions"]["enabled"] is False
    assert cluster.inputs["useDefaultVpcCni"] is True
    made = {child.typ for child in eks_component.children(cluster.name, cluster.inputs)}
    assert made == {
        "aws:eks/cluster:Cluster",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "aws:eks/fargateProfile:FargateProfile",
        "aws:eks/addon:Addon",
    }


def test_the_model_of_pulumi_eks_refuses_a_branch_it_does_not_cover(eks_full_run: Run) -> None:
    cluster = _cluster(eks_full_run)
    with pytest.raises(eks_component.UnmodelledBranchError, match="node group"):
        eks_component.children(cluster.name, {**cluster.inputs, "skipDefaultNodeGroup": False})
    without_role = {key: value for key, value in cluster.inputs.items() if key != "serviceRole"}
    roles = [c for c in eks_component.children(cluster.name, without_role) if c.typ == "aws:iam/role:Role"]
    assert [r.name for r in roles] == ["diabetes-dev-eks-eksRole-role"]
    assert "path" not in roles[0].inputs
    assert "permissionsBoundary" not in roles[0].inputs


def test_kubernetes_objects_wait_for_the_cluster_and_its_access_entries(eks_full_run: Run) -> None:
    provider = eks_full_run.recorder.one("pulumi:providers:kubernetes")
    assert provider.waits_for(_cluster(eks_full_run))
    assert provider.inputs["kubeconfig"] == _cluster(eks_full_run).state["kubeconfigJson"]
    deployment = eks_full_run.recorder.one("kubernetes:apps/v1:Deployment", "-api-")
    assert deployment.inputs["metadata"]["namespace"] == "diabetes"


def test_a_deployer_without_cluster_access_is_refused_before_anything_is_created(root_run: Run) -> None:
    from stacks.eks.program import build

    eks_settings = settings_for(EksStackSettings)
    stranger = "arn:aws:iam::123456789012:role/someone-else"
    with pytest.raises(ConfigError, match="is neither the cluster's creator"):
        run_program(build, eks_settings, root_run.outputs, deployer=stranger)
    # The preview role may preview (it views), but not update; an admin operator may update.
    run_program(build, eks_settings, root_run.outputs, deployer=PREVIEWER, preview=True)
    with pytest.raises(ConfigError, match="nor an admin"):
        run_program(build, eks_settings, root_run.outputs, deployer=PREVIEWER)
    run_program(build, eks_settings, root_run.outputs, deployer=OPERATOR)


def test_the_creator_may_not_also_have_an_access_entry() -> None:
    with pytest.raises(ConfigError, match="the cluster's creator"):
        settings_for(EksStackSettings, eks={"access": {"admins": ["role/diabetes-dev-github-deploy"]}})
    with pytest.raises(ConfigError, match="the cluster's creator"):
        settings_for(
            EksStackSettings,
            eks={"access": {"creator": "role/ops", "viewers": ["arn:aws:iam::123456789012:role/ops"]}},
        )
    moved = settings_for(
        EksStackSettings, eks={"access": {"creator": "role/ops", "admins": ["role/diabetes-dev-github-deploy"]}}
    )
    assert moved.eks_creator == "role/ops"


def test_api_endpoint_is_private_unless_cidrs_are_given(eks_minimal_run: Run, eks_full_run: Run) -> None:
    private = _cluster(eks_minimal_run).inputs
    assert private["endpointPublicAccess"] is False
    assert private["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in private
    public = _cluster(eks_full_run).inputs
    assert public["endpointPublicAccess"] is True
    assert public["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert set(public["subnetIds"]) == subnet_ids(eks_full_run, "private")
    assert public["vpcId"] == "diabetes-dev-net-vpc-vpc-id"


def test_cluster_version_logs_and_oidc_provider(eks_full_run: Run) -> None:
    cluster = _cluster(eks_full_run)
    assert cluster.inputs["name"] == "diabetes-dev-eks"
    assert cluster.inputs["version"] == "1.35"
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator"}
    log_group = eks_full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "control-plane")
    assert cluster.waits_for(log_group)  # ours, with a retention: EKS would create it without one
    assert log_group.inputs["name"] == "/aws/eks/diabetes-dev-eks/cluster"
    # The OIDC provider is the program's own, tagged with the stack (pulumi-eks's would be untagged).
    assert cluster.inputs["createOidcProvider"] is False
    oidc = eks_full_run.recorder.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert oidc.inputs["url"] == f"https://{OIDC_ISSUER}"
    assert {oidc.inputs["tags"][key] for key in ("Project", "Environment")} == {"diabetes", "dev"}


def test_one_fargate_profile_runs_the_system_and_app_namespaces_after_its_role_policy(eks_full_run: Run) -> None:
    cluster = _cluster(eks_full_run)
    fargate = cluster.inputs["fargate"]
    assert fargate["selectors"] == [{"namespace": "kube-system"}, {"namespace": "diabetes"}]
    assert set(fargate["subnetIds"]) == subnet_ids(eks_full_run, "private")
    policy = eks_full_run.recorder.one(ROLE_POLICY, "pod-execution")
    assert cluster.waits_for(policy)
    (profile,) = _children(eks_full_run, "aws:eks/fargateProfile:FargateProfile")
    assert "fargateProfileName" not in profile.inputs  # autonamed: a replacement never clashes
    assert eks_full_run.outputs["eksFargateProfiles"] == [cluster.state["fargateProfileId"].split(":")[1]]


def test_coredns_runs_on_fargate(eks_full_run: Run) -> None:
    assert _cluster(eks_full_run).inputs["corednsAddonOptions"]["enabled"] is True
    (addon,) = _children(eks_full_run, "aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "coredns"
    assert json.loads(addon.inputs["configurationValues"]) == {"computeType": "Fargate"}


def test_load_balancer_controller_is_pinned_and_waits_for_its_iam_policy(eks_full_run: Run) -> None:
    release = _release(eks_full_run, "aws-load-balancer-controller")
    assert release.inputs["version"] == CHART_VERSION == "3.5.0"
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


def test_a_terminating_pod_serves_until_the_alb_stops_routing_to_it_and_then_stops_in_its_grace_period(
    eks_full_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 4, R4-5: SIGTERM comes as the endpoint goes; the ALB routes to the pod for seconds more, so each
    container sleeps first (preStop), and the grace period holds that sleep, the API's drain and its shutdown."""
    for name in ("api", "ui"):
        pod = _object(eks_full_run, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 10  # the controller's deregistration and the ALB's propagation take several seconds
        if name == "api":
            env = {e["name"]: e["value"] for e in container["env"]}
            settings = read_as_the_container_would(ServiceSettings, env, monkeypatch)
            assert isinstance(settings, ServiceSettings)
            assert settings.drain_seconds + settings.shutdown_timeout_seconds < settings.stop_timeout_seconds
            assert pod["terminationGracePeriodSeconds"] >= pre_stop + settings.stop_timeout_seconds
        assert pod["terminationGracePeriodSeconds"] > pre_stop


def test_the_sleep_action_is_valid_on_every_supported_cluster_version(eks_full_run: Run) -> None:
    """Kubernetes' own preStop sleep is on by default from 1.30; every version the config accepts has it."""
    deployment = _object(eks_full_run, "Deployment", "api")
    for version in STANDARD_SUPPORT_END:
        assert tuple(map(int, version.split("."))) >= (1, 30), version
        kubernetes_validate.validate(deployment, f"{version}.0", strict=True)


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
    assert paths[("/_stcore/metrics", "Exact")] == "not-found"  # the UI's own metrics, refused
    assert ("/docs", "Exact") not in paths
    assert eks_full_run.outputs["eksIngressHostname"] == INGRESS_HOST
    # Without the UI, no `/`: the API's routes, anything else the default backend, the controller's 404 action
    # (tests/stacks/test_public_surface.py evaluates them).
    minimal = _object(eks_minimal_run, "Ingress", "diabetes-dev")
    only_api = {(p["path"], p["backend"]["service"]["name"]) for p in minimal["spec"]["rules"][0]["http"]["paths"]}
    assert {name for _, name in only_api} == {"api"}
    assert "/" not in {path for path, _ in only_api}
    assert minimal["spec"]["defaultBackend"] == {"service": {"name": "not-found", "port": {"name": "use-annotation"}}}
    action = json.loads(minimal["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.not-found"])
    assert (action["type"], action["fixedResponseConfig"]["statusCode"]) == ("fixed-response", "404")


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
            *(f"--load-balancer-subnet={cidr}" for cidr in root_run.outputs["publicSubnetCidrs"]),
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
    args = [
        "--region=eu-west-1",
        "render-k8s",
        f"--stack-file={stack_file}",
        "--api-image=r/api:1",
        "--load-balancer-subnet=10.40.0.0/20",
        "--ui-image=r/ui:1",
    ]
    assert ops_main([*args, "--namespace=team-ml", f"--output={out}"]) == 0
    objects = [yaml.safe_load(path.read_text()) for path in sorted(out.glob("*.yaml"))]
    assert objects[0] == {**objects[0], "kind": "Namespace"}
    assert objects[0]["metadata"]["name"] == "team-ml"
    assert all(o["metadata"].get("namespace") == "team-ml" for o in objects[1:])
    assert ops_main([*args[:-1], "--namespace=x", f"--output={tmp_path / 'y'}"]) == 1  # the UI needs its image


def _plural(kind: str) -> str:
    """A kind's resource name (`Ingress` -> `ingresses`, `ValidatingAdmissionPolicy` -> `...policies`)."""
    lower = kind.lower()
    return f"{lower[:-1]}ies" if lower.endswith("y") else f"{lower}es" if lower.endswith("s") else f"{lower}s"


def _admission(groups: list[str], **request: Any) -> bool:
    """Whether the preview guard admits a request: its match condition, then its validation (celpy evaluates the
    same CEL the API server does)."""
    import celpy

    policy = next(m for m in preview_access.guard_manifests() if m["kind"] == "ValidatingAdmissionPolicy")
    env = celpy.Environment()
    activation = {"request": celpy.json_to_cel({"userInfo": {"groups": groups}, **request})}

    def holds(expression: str) -> bool:
        return bool(env.program(env.compile(expression)).evaluate(activation))

    if not all(holds(c["expression"]) for c in policy["spec"]["matchConditions"]):
        return True
    return all(holds(v["expression"]) for v in policy["spec"]["validations"])


def _rbac_allows(
    objects: list[dict[str, Any]], groups: list[str], verb: str, group: str, resource: str, namespace: str | None
) -> bool:
    """Kubernetes RBAC over the program's roles and bindings: a ClusterRoleBinding grants its ClusterRole everywhere,
    a RoleBinding grants its Role (or a ClusterRole) in its own namespace only; cluster-scoped resources
    (`namespace` None) only through a ClusterRoleBinding."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "Group" and s["name"] in groups for s in binding["subjects"]):
            continue
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        if scope is not None and scope != namespace:
            continue
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"]))
        for rule in (role or {}).get("rules", []):
            if (
                {group, "*"} & set(rule["apiGroups"])
                and {resource, "*"} & set(rule["resources"])
                and {verb, "*"} & set(rule["verbs"])
            ):
                return True
    return False


def test_the_preview_role_may_dry_run_the_apps_objects_but_never_write_or_touch_its_guard(eks_full_run: Run) -> None:
    """pulumi-kubernetes previews new objects with server-side dry runs, which RBAC authorizes like the write: the
    viewers' group may create/patch the app's namespaced kinds in the app namespace only, an admission policy lets only
    dry runs through, and nothing on RBAC or admission objects: the API server never applies an API-created admission
    policy to admission policies and bindings, so the group could once patch its guard's binding to Audit and then
    write deployments, service accounts and cluster role bindings anywhere, kube-system included."""
    entries = {e["principalArn"]: e for e in _cluster(eks_full_run).inputs["accessEntries"].values()}
    assert entries[PREVIEWER]["kubernetesGroups"] == [preview_access.PREVIEW_GROUP]
    assert not entries[OPERATOR].get("kubernetesGroups")
    previewers = [preview_access.PREVIEW_GROUP, "system:authenticated"]
    assert _admission(previewers, dryRun=True)
    assert not _admission(previewers, dryRun=False)
    assert not _admission(previewers)  # no dryRun field: a real write
    assert _admission(["system:masters"], dryRun=False)  # admins are not matched
    binding = _object(eks_full_run, "ValidatingAdmissionPolicyBinding", preview_access.NAME)
    assert binding["spec"] == {"policyName": preview_access.NAME, "validationActions": ["Deny"]}

    objects = _objects(eks_full_run)
    namespace = "diabetes"

    def may(verb: str, group: str, resource: str, where: str | None) -> bool:
        return _rbac_allows(objects, previewers, verb, group, resource, where)

    admission = "admissionregistration.k8s.io"
    rbac = "rbac.authorization.k8s.io"
    for verb in ("create", "patch", "update", "delete"):
        assert not may(verb, admission, "validatingadmissionpolicybindings", None), verb
        assert not may(verb, admission, "validatingadmissionpolicies", None), verb
        for resource in ("clusterroles", "clusterrolebindings"):
            assert not may(verb, rbac, resource, None), (verb, resource)
        for resource in ("roles", "rolebindings"):
            assert not may(verb, rbac, resource, namespace), (verb, resource)
        assert not may(verb, "apps", "deployments", "kube-system"), verb
        assert not may(verb, "", "serviceaccounts", "kube-system"), verb
        assert not may(verb, "", "namespaces", None), verb
    assert not may("delete", "apps", "deployments", namespace)
    # Every namespaced object of the app can be dry-run in its namespace, and nothing more is granted.
    app = {
        (o["apiVersion"].rpartition("/")[0], _plural(o["kind"]))
        for o in objects
        if o["metadata"].get("namespace") == namespace and o["kind"] not in PREVIEW_KINDS
    }
    assert all(may(verb, g, r, namespace) for g, r in app for verb in ("create", "patch", "update"))
    role = _object(eks_full_run, "Role", preview_access.NAME)
    assert {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]} == app
    assert not {g for rule in role["rules"] for g in rule["apiGroups"]} & set(preview_access.NEVER_GRANTED)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    # The grant waits for the guard.
    guard = eks_full_run.recorder.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding")
    grant = eks_full_run.recorder.one("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert guard.urn in _all_dependencies(eks_full_run, grant)


def _all_dependencies(run: Run, resource: Resource) -> set[str]:
    """Every URN a resource waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in run.recorder.resources}
    seen: set[str] = set()
    todo = list(resource.depends_on)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo.extend(by_urn[urn].depends_on if urn in by_urn else [])
    return seen


def test_the_dev_stack_keeps_the_api_endpoint_private_and_an_open_one_warns(root_run: Run) -> None:
    """The dev stack opened the Kubernetes API endpoint to 0.0.0.0/0; it is private now, and a stack that opens it to
    the whole internet is warned at every preview and update."""
    from stacks.eks.program import build

    stack_file = yaml.safe_load((Path(__file__).resolve().parents[2] / "stacks/eks/Pulumi.dev.yaml").read_text())
    assert not stack_file["config"]["diabetes-eks:eks"].get("publicAccessCidrs")
    settings = settings_for(EksStackSettings, eks={"publicAccessCidrs": ["0.0.0.0/0"]})
    with mock.patch("pulumi.log.warn") as warn:
        run_program(build, settings, root_run.outputs, preview=True)
    assert any("open to 0.0.0.0/0" in call.args[0] for call in warn.call_args_list)


def test_the_controller_cannot_touch_another_clusters_load_balancers_or_groups(eks_full_run: Run) -> None:
    """Review 2, N2: any `elbv2.k8s.aws/cluster` tag once let the dev controller delete or change prod's `k8s-*` load
    balancers and target groups (and register targets into them): only this cluster's value does now."""
    policy = json.dumps(_lbc_policy(eks_full_run))
    (vpc,) = {
        s["Condition"]["ArnEquals"]["ec2:Vpc"]
        for s in json.loads(policy)["Statement"]
        if "ArnEquals" in s.get("Condition", {})
    }
    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    balancer, group = f"{arn}loadbalancer/app/k8s-shop-api-0a1b2c3d4e/1", f"{arn}targetgroup/k8s-shop-api-0a1b2c3d4e/1"
    security_group = "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0shop"
    writes = {
        balancer: ("DeleteLoadBalancer", "ModifyLoadBalancerAttributes", "SetSecurityGroups", "SetSubnets"),
        group: ("DeleteTargetGroup", "ModifyTargetGroup", "RegisterTargets", "DeregisterTargets"),
    }
    here = {"aws:RequestedRegion": "eu-west-1", "ec2:Vpc": vpc}
    for cluster, allowed in (("diabetes-dev-eks", True), ("diabetes-prod-eks", False)):
        tagged = {**here, f"aws:ResourceTag/{CLUSTER_TAG}": cluster}
        for resource, actions in writes.items():
            for action in actions:
                assert allows(policy, f"elasticloadbalancing:{action}", resource, tagged) is allowed, (action, cluster)
            assert allows(policy, "elasticloadbalancing:AddTags", resource, tagged) is allowed, cluster
        for action in SG_WRITES:
            assert allows(policy, action, security_group, tagged) is allowed, (action, cluster)
        created = {
            **here,
            f"aws:RequestTag/{CLUSTER_TAG}": cluster,
            "elasticloadbalancing:CreateAction": "CreateLoadBalancer",
        }
        assert allows(policy, "elasticloadbalancing:CreateLoadBalancer", balancer, created) is allowed, cluster
    # Retagging its own resources never moves the cluster tag (out of reach, or onto another cluster's).
    moved = {**here, f"aws:ResourceTag/{CLUSTER_TAG}": "diabetes-dev-eks", f"aws:RequestTag/{CLUSTER_TAG}": "x"}
    assert not allows(policy, "elasticloadbalancing:AddTags", balancer, moved)
    assert not allows(policy, "ec2:CreateTags", security_group, moved)
    # Untagged targets groups of anyone (TargetGroupBindings to groups it did not make are not used here).
    assert not allows(policy, "elasticloadbalancing:RegisterTargets", group, here)


def test_the_controller_tags_what_it_makes_as_the_workload_boundary_requires(eks_full_run: Run) -> None:
    """Review 2, N1: the boundary lets a role write only the security groups that carry this cluster's tag and the
    stack's Project and Environment tags; the chart's defaultTags put the stack's tags on everything the controller
    makes, so its groups stay within reach, and nobody else's is."""
    values = _release(eks_full_run, "aws-load-balancer-controller").inputs["values"]
    setup = CiSetup("acme/diabetes", "dev", "123456789012", "eu-west-1", "state", "k1")
    boundary = workload_boundary_policy(setup.ctx, setup.owner)
    tags = {**values["defaultTags"], CLUSTER_TAG: "diabetes-dev-eks"}
    assert tags.items() >= setup.owner.items()
    group = "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0new"
    here = {"aws:RequestedRegion": "eu-west-1"}
    made = {**here, **{f"aws:RequestTag/{key}": value for key, value in tags.items()}}
    assert allows_bounded(
        ADMINISTRATOR, boundary, "ec2:CreateTags", group, {**made, "ec2:CreateAction": "CreateSecurityGroup"}
    )
    existing = {**here, **{f"aws:ResourceTag/{key}": value for key, value in tags.items()}}
    for action in SG_WRITES:
        assert allows_bounded(ADMINISTRATOR, boundary, action, group, existing), action
