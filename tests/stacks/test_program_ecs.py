"""The ECS platform's resource graph, property by property (Pulumi mocks, no cloud)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.settings import Settings as ServiceSettings
from stacks.config import UI_REQUESTS_PER_TARGET, requests_per_target_for
from stacks.service_limits import service_limits
from tests.stacks.conftest import CERTIFICATE, MODEL_SHA256, S3_MODEL
from tests.stacks.harness import Resource, Run, integral, run_ecs, subnet_ids
from tests.stacks.test_workload_environment import read_as_the_container_would


def _containers(run: Run, workload: str) -> list[dict[str, Any]]:
    task = run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", f"-{workload}")
    return list(json.loads(task.inputs["containerDefinitions"]))


def _service(run: Run, workload: str) -> Resource:
    return run.recorder.one("aws:ecs/service:Service", f"-ecs-{workload}")


def test_cluster_has_container_insights_and_service_connect(ecs_full_run: Run) -> None:
    cluster = ecs_full_run.recorder.one("aws:ecs/cluster:Cluster")
    assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster.inputs["serviceConnectDefaults"]["namespace"].startswith("arn:aws:servicediscovery:")


def test_api_task_definition_is_fargate_sized_from_config(ecs_full_run: Run) -> None:
    task = ecs_full_run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", "-api")
    assert task.inputs["networkMode"] == "awsvpc"
    assert task.inputs["requiresCompatibilities"] == ["FARGATE"]
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("512", "1024")
    assert task.inputs["volumes"] == [{"name": "tmp"}]
    assert task.inputs["executionRoleArn"].endswith("diabetes-dev-ecs-execution")
    assert task.inputs["taskRoleArn"].endswith("diabetes-dev-ecs-api-task")


def test_api_container_is_hardened_and_observable(ecs_full_run: Run) -> None:
    (container,) = _containers(ecs_full_run, "api")
    assert container["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diabetes-dev/api:3f2c1ab"
    assert container["user"] == "10001:10001"
    assert container["readonlyRootFilesystem"] is True
    assert container["privileged"] is False
    assert container["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
    assert container["portMappings"][0]["containerPort"] == 8000
    assert {e["name"]: e["value"] for e in container["environment"]} == {
        "MODEL_URI": S3_MODEL,
        "MODEL_SHA256": MODEL_SHA256,
        "SERVICE_LOG_LEVEL": "INFO",
        "SERVICE_DOCS_ENABLED": "false",
        "SERVICE_KEEP_ALIVE_SECONDS": "3615",
        "SERVICE_STOP_TIMEOUT_SECONDS": "30",
        # the load balancer names the client; only its subnets, the root's public ones, are trusted (R10-5)
        "SERVICE_FORWARDED_ALLOW_IPS": json.dumps(ecs_full_run.recorder.shared_outputs["publicSubnetCidrs"]),
        **service_limits(1024).environment(),  # the full stack's task has 1,024 MiB
    }
    assert "http://127.0.0.1:8000/health" in container["healthCheck"]["command"][-1]
    logging = container["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert logging["options"] == {
        "awslogs-group": "/ecs/diabetes-dev-ecs",
        "awslogs-region": "eu-west-1",
        "awslogs-stream-prefix": "api",
    }


def test_ecs_waits_for_the_api_to_drain_and_stop_before_it_kills_the_task(
    ecs_full_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECS deregisters the target, waits its deregistration delay, then SIGTERM; SIGKILL follows at `stopTimeout`,
    which must hold the API's drain and shutdown (review 4, R4-5)."""
    (container,) = _containers(ecs_full_run, "api")
    env = {e["name"]: e["value"] for e in container["environment"]}
    settings = read_as_the_container_would(ServiceSettings, env, monkeypatch)
    assert isinstance(settings, ServiceSettings)
    assert settings.drain_seconds + settings.shutdown_timeout_seconds < settings.stop_timeout_seconds
    assert container["stopTimeout"] >= settings.stop_timeout_seconds
    assert container["stopTimeout"] <= 120  # Fargate's largest
    group = ecs_full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-api")
    assert group.inputs["deregistrationDelay"] > 0


def test_ui_container_reaches_the_api_inside_the_vpc(ecs_full_run: Run) -> None:
    (container,) = _containers(ecs_full_run, "ui")
    assert container["portMappings"][0]["containerPort"] == 8501
    assert container["environment"] == [{"name": "API_URL", "value": "http://api:8000"}]
    assert "/_stcore/health" in container["healthCheck"]["command"][-1]
    ui_task = ecs_full_run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", "-ui")
    assert "taskRoleArn" not in ui_task.inputs  # the UI calls no AWS API
    api_connect = _service(ecs_full_run, "api").inputs["serviceConnectConfiguration"]
    assert api_connect["services"][0]["clientAlias"] == [{"port": 8000, "dnsName": "api"}]
    assert "services" not in _service(ecs_full_run, "ui").inputs["serviceConnectConfiguration"]


def test_log_group_retention_comes_from_config(ecs_full_run: Run, ecs_minimal_run: Run) -> None:
    assert ecs_full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "ecs").inputs["retentionInDays"] == 14
    assert ecs_minimal_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "ecs").inputs["retentionInDays"] == 30


def test_target_groups_use_ip_targets_and_readiness_paths(ecs_full_run: Run) -> None:
    api = ecs_full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-api")
    ui = ecs_full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-ui")
    assert api.inputs["targetType"] == ui.inputs["targetType"] == "ip"
    assert api.inputs["healthCheck"]["path"] == "/ready"
    assert api.inputs["healthCheck"]["matcher"] == "200"
    assert ui.inputs["healthCheck"]["path"] == "/_stcore/health"
    assert api.inputs["stickiness"]["enabled"] is False
    assert ui.inputs["stickiness"] == {"enabled": True, "type": "lb_cookie", "cookieDuration": 86400}


def test_alb_is_public_with_a_websocket_friendly_idle_timeout(ecs_full_run: Run, ecs_minimal_run: Run) -> None:
    alb = ecs_full_run.recorder.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["internal"] is False
    assert alb.inputs["loadBalancerType"] == "application"
    assert alb.inputs["dropInvalidHeaderFields"] is True
    public_ids = subnet_ids(ecs_full_run, "public")
    assert set(alb.inputs["subnets"]) == public_ids
    assert alb.inputs["idleTimeout"] == 3600
    assert ecs_minimal_run.recorder.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"] == 60
    assert alb.inputs["accessLogs"] == {"bucket": "diabetes-dev-access-logs-bucket", "prefix": "ecs", "enabled": True}


def test_the_api_outlasts_the_alb_on_idle_connections(ecs_full_run: Run, ecs_minimal_run: Run) -> None:
    """The ALB, not the task, must close an idle connection, or it reuses a closed one and answers 502."""
    for run in (ecs_full_run, ecs_minimal_run):
        (container,) = _containers(run, "api")
        keep_alive = {e["name"]: e["value"] for e in container["environment"]}["SERVICE_KEEP_ALIVE_SECONDS"]
        assert int(keep_alive) > run.recorder.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"]


def test_https_listener_and_redirect_with_a_certificate(ecs_full_run: Run) -> None:
    listeners = {r.inputs["port"]: r for r in ecs_full_run.recorder.of_type("aws:lb/listener:Listener")}
    assert sorted(listeners) == [80, 443]
    (redirect,) = listeners[80].inputs["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}
    https = listeners[443].inputs
    assert https["certificateArn"] == CERTIFICATE
    assert https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert https["defaultActions"][0]["targetGroupArn"].endswith("-ui")  # the UI owns "/"
    assert ecs_full_run.outputs["ecsUrl"].startswith("https://")


def test_plain_http_listener_serves_the_api_routes_without_certificate(ecs_minimal_run: Run) -> None:
    """Without the UI, the listener's default is the load balancer's own 404: only the API's public routes are
    forwarded (tests/stacks/test_public_surface.py evaluates them)."""
    (listener,) = ecs_minimal_run.recorder.of_type("aws:lb/listener:Listener")
    assert listener.inputs["port"] == 80
    (default,) = listener.inputs["defaultActions"]
    assert default["type"] == "fixed-response"
    assert integral(default["fixedResponse"])["statusCode"] == "404"
    rules = ecs_minimal_run.recorder.of_type("aws:lb/listenerRule:ListenerRule")
    assert {rule.inputs["actions"][0]["targetGroupArn"].rsplit("-", 1)[-1] for rule in rules} == {"api"}
    assert ecs_minimal_run.outputs["ecsUrl"].startswith("http://")


def test_api_routes_are_forwarded_when_the_ui_owns_the_root(ecs_full_run: Run) -> None:
    rules = ecs_full_run.recorder.of_type("aws:lb/listenerRule:ListenerRule")
    paths: list[str] = []
    for rule in rules:
        values = rule.inputs["conditions"][0]["pathPattern"]["values"]
        assert len(values) <= 5  # the ALB limit per rule
        assert rule.inputs["listenerArn"].endswith("-https")
        (action,) = rule.inputs["actions"]
        if action["type"] == "forward":
            assert action["targetGroupArn"].endswith("-api")
            paths.extend(values)
        else:  # the UI's own metrics, refused
            assert (action["type"], values) == ("fixed-response", ["/_stcore/metrics"])
    assert {"/predict", "/health", "/ready"} <= set(paths)
    assert "/metrics" not in paths
    assert "/docs" not in paths  # publicApiDocs is off by default


def test_alb_security_group_is_the_only_one_open_to_the_world(ecs_full_run: Run) -> None:
    public = [
        r
        for r in ecs_full_run.recorder.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("cidrIpv4")
    ]
    assert sorted(r.inputs["fromPort"] for r in public) == [80, 443]
    alb_sg = ecs_full_run.recorder.one("aws:ec2/securityGroup:SecurityGroup", "-alb")
    assert {r.inputs["securityGroupId"] for r in public} == {alb_sg.mock_id}


def test_tasks_accept_traffic_only_from_the_alb_and_the_ui(ecs_full_run: Run) -> None:
    rules = ecs_full_run.recorder.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    by_group: dict[str, set[tuple[str, int]]] = {}
    for rule in rules:
        source = rule.inputs.get("referencedSecurityGroupId") or rule.inputs["cidrIpv4"]
        by_group.setdefault(rule.inputs["securityGroupId"], set()).add((source, rule.inputs["fromPort"]))
    alb, api, ui = (f"diabetes-dev-ecs-{name}-securitygroup-id" for name in ("lb-alb", "api", "ui"))
    assert by_group[api] == {(alb, 8000), (ui, 8000)}
    assert by_group[ui] == {(alb, 8501)}


def test_services_run_privately_with_circuit_breaker(ecs_full_run: Run) -> None:
    private_ids = subnet_ids(ecs_full_run, "private")
    for workload, port in (("api", 8000), ("ui", 8501)):
        inputs = _service(ecs_full_run, workload).inputs
        assert inputs["launchType"] == "FARGATE"
        assert inputs["networkConfiguration"]["assignPublicIp"] is False
        assert set(inputs["networkConfiguration"]["subnets"]) == private_ids
        assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert inputs["loadBalancers"] == [
            {
                "targetGroupArn": f"arn:aws:lb:eu-west-1:123456789012:targetgroup/diabetes-dev-{workload}",
                "containerName": workload,
                "containerPort": port,
            }
        ]
        assert inputs["waitForSteadyState"] is True
    assert _service(ecs_full_run, "api").inputs["desiredCount"] == 2


def test_autoscaling_tracks_cpu_and_requests_per_target(ecs_full_run: Run) -> None:
    target = ecs_full_run.recorder.one("aws:appautoscaling/target:Target", "-api")
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (2, 6)
    service = ecs_full_run.recorder.one("aws:ecs/service:Service", "-api")
    assert target.inputs["resourceId"] == f"service/diabetes-dev-ecs/{service.state['name']}"  # the mock's autoname
    policies = {
        p.name: p.inputs["targetTrackingScalingPolicyConfiguration"]
        for p in ecs_full_run.recorder.of_type("aws:appautoscaling/policy:Policy")
        if "-api-" in p.name
    }
    cpu = policies["diabetes-dev-ecs-api-cpu"]
    assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert cpu["targetValue"] == 60
    # requests per task per minute, from the task's 512 CPU units (stacks.config.requests_per_target_for)
    assert policies["diabetes-dev-ecs-api-requests"]["targetValue"] == requests_per_target_for(512) == 24_000
    ui_requests = next(
        p.inputs["targetTrackingScalingPolicyConfiguration"]
        for p in ecs_full_run.recorder.of_type("aws:appautoscaling/policy:Policy")
        if p.name == "diabetes-dev-ecs-ui-requests"
    )
    assert ui_requests["targetValue"] == UI_REQUESTS_PER_TARGET
    requests = policies["diabetes-dev-ecs-api-requests"]["predefinedMetricSpecification"]
    assert requests["predefinedMetricType"] == "ALBRequestCountPerTarget"
    balancer = ecs_full_run.recorder.one("aws:lb/loadBalancer:LoadBalancer")
    group = ecs_full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-api")
    assert requests["resourceLabel"] == f"{balancer.state['arnSuffix']}/{group.state['arnSuffix']}"
    assert requests["resourceLabel"].startswith("app/diabetes-dev-lb-")


def test_execution_role_pulls_only_this_stacks_images(ecs_full_run: Run) -> None:
    policy = ecs_full_run.recorder.one("aws:iam/rolePolicy:RolePolicy", "ecs-execution")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert sorted(statements["EcrPull"]["Resource"]) == [
        "arn:aws:ecr:eu-west-1:123456789012:repository/diabetes-dev/api",
        "arn:aws:ecr:eu-west-1:123456789012:repository/diabetes-dev/ui",
    ]
    assert statements["Logs"]["Resource"] == (
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/diabetes-dev-ecs:log-stream:*"
    )


def test_load_balancer_target_groups_and_services_are_autonamed(ecs_full_run: Run) -> None:
    """A fixed physical name makes every replacement fail: Pulumi creates the new resource before deleting the old."""
    for typ in ("aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup", "aws:ecs/service:Service"):
        for resource in ecs_full_run.recorder.of_type(typ):
            assert "name" not in resource.inputs, f"{typ} {resource.name} has a fixed name"
            assert len(resource.name) + 8 <= 32, f"autoname of {resource.name} exceeds ELB's 32 characters"


def test_services_wait_for_their_roles_policies(ecs_full_run: Run) -> None:
    """First tasks must not start before IAM has the execution and task policies (eventual consistency)."""
    policies = ecs_full_run.recorder.of_type("aws:iam/rolePolicy:RolePolicy")
    api = _service(ecs_full_run, "api")
    assert all(api.waits_for(policy) for policy in policies), [p.name for p in policies]
    execution = ecs_full_run.recorder.one("aws:iam/rolePolicy:RolePolicy", "execution")
    assert _service(ecs_full_run, "ui").waits_for(execution)
    assert api.ignore_changes == ["desiredCount"]


def test_api_docs_are_routed_only_when_the_stack_publishes_them(root_run: Run) -> None:
    published = run_ecs(root_run, ui={"enabled": True}, publicApiDocs=True)
    paths = [
        value
        for rule in published.recorder.of_type("aws:lb/listenerRule:ListenerRule")
        for value in rule.inputs["conditions"][0]["pathPattern"]["values"]
    ]
    assert {"/docs", "/openapi.json"} <= set(paths)
    (container,) = _containers(published, "api")
    assert {"name": "SERVICE_DOCS_ENABLED", "value": "true"} in container["environment"]


def test_an_optional_waf_rate_rule_guards_the_load_balancer(ecs_full_run: Run, ecs_minimal_run: Run) -> None:
    acl = ecs_full_run.recorder.one("aws:wafv2/webAcl:WebAcl")
    assert acl.inputs["scope"] == "REGIONAL"
    assert acl.inputs["defaultAction"] == {"allow": {}}
    (rule,) = acl.inputs["rules"]
    assert rule["action"] == {"block": {}}
    assert integral(rule["statement"]["rateBasedStatement"]) == {
        "limit": 500,
        "aggregateKeyType": "IP",
        "evaluationWindowSec": 300,
    }
    association = ecs_full_run.recorder.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert association.inputs["webAclArn"] == acl.state["arn"]
    assert (
        association.inputs["resourceArn"] == ecs_full_run.recorder.one("aws:lb/loadBalancer:LoadBalancer").state["arn"]
    )
    assert not ecs_minimal_run.recorder.of_type("aws:wafv2/webAcl:WebAcl")
