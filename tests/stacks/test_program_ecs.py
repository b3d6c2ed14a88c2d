"""The ECS platform's resource graph, property by property (Pulumi mocks, no cloud)."""

from __future__ import annotations

import json
from typing import Any

from tests.stacks.conftest import CERTIFICATE, S3_MODEL
from tests.stacks.harness import Resource, Run, subnet_ids


def _containers(run: Run, workload: str) -> list[dict[str, Any]]:
    task = run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", f"-{workload}")
    return list(json.loads(task.inputs["containerDefinitions"]))


def _service(run: Run, workload: str) -> Resource:
    return run.recorder.one("aws:ecs/service:Service", f"-ecs-{workload}")


def test_cluster_has_container_insights_and_service_connect(full_run: Run) -> None:
    cluster = full_run.recorder.one("aws:ecs/cluster:Cluster")
    assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster.inputs["serviceConnectDefaults"]["namespace"].startswith("arn:aws:servicediscovery:")


def test_api_task_definition_is_fargate_sized_from_config(full_run: Run) -> None:
    task = full_run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", "-api")
    assert task.inputs["networkMode"] == "awsvpc"
    assert task.inputs["requiresCompatibilities"] == ["FARGATE"]
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("512", "1024")
    assert task.inputs["volumes"] == [{"name": "tmp"}]
    assert task.inputs["executionRoleArn"].endswith("diabetes-dev-ecs-execution")
    assert task.inputs["taskRoleArn"].endswith("diabetes-dev-ecs-api-task")


def test_api_container_is_hardened_and_observable(full_run: Run) -> None:
    (container,) = _containers(full_run, "api")
    assert container["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/diabetes-dev/api:3f2c1ab"
    assert container["user"] == "10001:10001"
    assert container["readonlyRootFilesystem"] is True
    assert container["privileged"] is False
    assert container["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
    assert container["portMappings"][0]["containerPort"] == 8000
    assert {e["name"]: e["value"] for e in container["environment"]} == {
        "MODEL_URI": S3_MODEL,
        "SERVICE_LOG_LEVEL": "INFO",
    }
    assert "http://127.0.0.1:8000/health" in container["healthCheck"]["command"][-1]
    logging = container["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert logging["options"] == {
        "awslogs-group": "/ecs/diabetes-dev-ecs",
        "awslogs-region": "eu-west-1",
        "awslogs-stream-prefix": "api",
    }


def test_ui_container_reaches_the_api_inside_the_vpc(full_run: Run) -> None:
    (container,) = _containers(full_run, "ui")
    assert container["portMappings"][0]["containerPort"] == 8501
    assert container["environment"] == [{"name": "API_URL", "value": "http://api:8000"}]
    assert "/_stcore/health" in container["healthCheck"]["command"][-1]
    ui_task = full_run.recorder.one("aws:ecs/taskDefinition:TaskDefinition", "-ui")
    assert "taskRoleArn" not in ui_task.inputs  # the UI calls no AWS API
    api_connect = _service(full_run, "api").inputs["serviceConnectConfiguration"]
    assert api_connect["services"][0]["clientAlias"] == [{"port": 8000, "dnsName": "api"}]
    assert "services" not in _service(full_run, "ui").inputs["serviceConnectConfiguration"]


def test_log_group_retention_comes_from_config(full_run: Run, ecs_only_run: Run) -> None:
    assert full_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "ecs").inputs["retentionInDays"] == 14
    assert ecs_only_run.recorder.one("aws:cloudwatch/logGroup:LogGroup", "ecs").inputs["retentionInDays"] == 30


def test_target_groups_use_ip_targets_and_readiness_paths(full_run: Run) -> None:
    api = full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-api")
    ui = full_run.recorder.one("aws:lb/targetGroup:TargetGroup", "-ui")
    assert api.inputs["targetType"] == ui.inputs["targetType"] == "ip"
    assert api.inputs["healthCheck"]["path"] == "/ready"
    assert api.inputs["healthCheck"]["matcher"] == "200"
    assert ui.inputs["healthCheck"]["path"] == "/_stcore/health"
    assert api.inputs["stickiness"]["enabled"] is False
    assert ui.inputs["stickiness"] == {"enabled": True, "type": "lb_cookie", "cookieDuration": 86400}


def test_alb_is_public_with_a_websocket_friendly_idle_timeout(full_run: Run, ecs_only_run: Run) -> None:
    alb = full_run.recorder.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["internal"] is False
    assert alb.inputs["loadBalancerType"] == "application"
    assert alb.inputs["dropInvalidHeaderFields"] is True
    public_ids = subnet_ids(full_run, "public")
    assert set(alb.inputs["subnets"]) == public_ids
    assert alb.inputs["idleTimeout"] == 3600
    assert ecs_only_run.recorder.one("aws:lb/loadBalancer:LoadBalancer").inputs["idleTimeout"] == 60


def test_https_listener_and_redirect_with_a_certificate(full_run: Run) -> None:
    listeners = {r.inputs["port"]: r for r in full_run.recorder.of_type("aws:lb/listener:Listener")}
    assert sorted(listeners) == [80, 443]
    (redirect,) = listeners[80].inputs["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}
    https = listeners[443].inputs
    assert https["certificateArn"] == CERTIFICATE
    assert https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert https["defaultActions"][0]["targetGroupArn"].endswith("-ui")  # the UI owns "/"
    assert full_run.outputs["ecsUrl"].startswith("https://")


def test_plain_http_listener_forwards_to_the_api_without_certificate(ecs_only_run: Run) -> None:
    (listener,) = ecs_only_run.recorder.of_type("aws:lb/listener:Listener")
    assert listener.inputs["port"] == 80
    assert listener.inputs["defaultActions"][0]["type"] == "forward"
    assert listener.inputs["defaultActions"][0]["targetGroupArn"].endswith("-api")
    assert not ecs_only_run.recorder.of_type("aws:lb/listenerRule:ListenerRule")
    assert ecs_only_run.outputs["ecsUrl"].startswith("http://")


def test_api_routes_are_forwarded_when_the_ui_owns_the_root(full_run: Run) -> None:
    rules = full_run.recorder.of_type("aws:lb/listenerRule:ListenerRule")
    paths: list[str] = []
    for rule in rules:
        values = rule.inputs["conditions"][0]["pathPattern"]["values"]
        assert len(values) <= 5  # the ALB limit per rule
        assert rule.inputs["listenerArn"].endswith("-https")
        assert rule.inputs["actions"][0]["targetGroupArn"].endswith("-api")
        paths.extend(values)
    assert {"/predict", "/health", "/ready"} <= set(paths)
    assert "/metrics" not in paths


def test_alb_security_group_is_the_only_one_open_to_the_world(full_run: Run) -> None:
    public = [
        r
        for r in full_run.recorder.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("cidrIpv4")
    ]
    assert sorted(r.inputs["fromPort"] for r in public) == [80, 443]
    alb_sg = full_run.recorder.one("aws:ec2/securityGroup:SecurityGroup", "-alb")
    assert {r.inputs["securityGroupId"] for r in public} == {f"{alb_sg.name}-id"}


def test_tasks_accept_traffic_only_from_the_alb_and_the_ui(full_run: Run) -> None:
    rules = full_run.recorder.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    by_group: dict[str, set[tuple[str, int]]] = {}
    for rule in rules:
        source = rule.inputs.get("referencedSecurityGroupId") or rule.inputs["cidrIpv4"]
        by_group.setdefault(rule.inputs["securityGroupId"], set()).add((source, rule.inputs["fromPort"]))
    alb = "diabetes-dev-ecs-lb-alb-id"
    assert by_group["diabetes-dev-ecs-api-id"] == {(alb, 8000), ("diabetes-dev-ecs-ui-id", 8000)}
    assert by_group["diabetes-dev-ecs-ui-id"] == {(alb, 8501)}


def test_services_run_privately_with_circuit_breaker(full_run: Run) -> None:
    private_ids = subnet_ids(full_run, "private")
    for workload, port in (("api", 8000), ("ui", 8501)):
        inputs = _service(full_run, workload).inputs
        assert inputs["launchType"] == "FARGATE"
        assert inputs["networkConfiguration"]["assignPublicIp"] is False
        assert set(inputs["networkConfiguration"]["subnets"]) == private_ids
        assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert inputs["loadBalancers"] == [
            {
                "targetGroupArn": f"arn:aws:lb:eu-west-1:123456789012:diabetes-dev-ecs-lb-{workload}",
                "containerName": workload,
                "containerPort": port,
            }
        ]
        assert inputs["waitForSteadyState"] is True
    assert _service(full_run, "api").inputs["desiredCount"] == 2


def test_autoscaling_tracks_cpu_and_requests_per_target(full_run: Run) -> None:
    target = full_run.recorder.one("aws:appautoscaling/target:Target", "-api")
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (2, 6)
    assert target.inputs["resourceId"] == "service/diabetes-dev-ecs/diabetes-dev-ecs-api"
    policies = {
        p.name: p.inputs["targetTrackingScalingPolicyConfiguration"]
        for p in full_run.recorder.of_type("aws:appautoscaling/policy:Policy")
        if "-api-" in p.name
    }
    cpu = policies["diabetes-dev-ecs-api-cpu"]
    assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert cpu["targetValue"] == 60
    requests = policies["diabetes-dev-ecs-api-requests"]["predefinedMetricSpecification"]
    assert requests["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert requests["resourceLabel"] == (
        "app/diabetes-dev-ecs-lb-alb/50dc6c495c0c9188/targetgroup/diabetes-dev-ecs-lb-api/73e2d6bc24d8a067"
    )


def test_execution_role_pulls_only_this_stacks_images(full_run: Run) -> None:
    policy = full_run.recorder.one("aws:iam/rolePolicy:RolePolicy", "ecs-execution")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert sorted(statements["EcrPull"]["Resource"]) == [
        "arn:aws:ecr:eu-west-1:123456789012:diabetes-dev-registry-api",
        "arn:aws:ecr:eu-west-1:123456789012:diabetes-dev-registry-ui",
    ]
    assert statements["Logs"]["Resource"] == (
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/diabetes-dev-ecs:log-stream:*"
    )
