"""ECS on Fargate: the Service Connect namespace, cluster, task definitions, services and their autoscaling (moto's
Application Auto Scaling checks the ECS service exists and the target does before a policy)."""

from __future__ import annotations

import json
from typing import Any

from tests.stacks.replay.calls import Clients, Declared, Replayer, renamed, tag_list


def http_namespace(clients: Clients, d: Declared) -> dict[str, Any]:
    discovery = clients("servicediscovery")
    operation = discovery.create_http_namespace(Name=d["name"], Description=d["description"], Tags=tag_list(d.tags))[
        "OperationId"
    ]
    namespace_id = discovery.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    namespace = discovery.get_namespace(Id=namespace_id)["Namespace"]
    return {"id": namespace_id, "arn": namespace["Arn"], "name": namespace["Name"]}


def cluster(clients: Clients, d: Declared) -> dict[str, Any]:
    created = clients("ecs").create_cluster(
        clusterName=d.name(),
        settings=[renamed(setting, {"name": "name", "value": "value"}) for setting in d["settings"]],
        serviceConnectDefaults=renamed(d["serviceConnectDefaults"], {"namespace": "namespace"}),
        tags=tag_list(d.tags, "key", "value"),
    )["cluster"]
    return {"id": created["clusterArn"], "arn": created["clusterArn"], "name": created["clusterName"]}


def task_definition(clients: Clients, d: Declared) -> dict[str, Any]:
    optional = {"executionRoleArn": d.get("executionRoleArn"), "taskRoleArn": d.get("taskRoleArn")}
    created = clients("ecs").register_task_definition(
        family=d["family"],
        # Already in the API's shape: the program writes ECS's JSON itself.
        containerDefinitions=json.loads(d["containerDefinitions"]),
        cpu=d["cpu"],
        memory=d["memory"],
        networkMode=d["networkMode"],
        requiresCompatibilities=d["requiresCompatibilities"],
        runtimePlatform=renamed(
            d["runtimePlatform"],
            {"operatingSystemFamily": "operatingSystemFamily", "cpuArchitecture": "cpuArchitecture"},
        ),
        volumes=[renamed(volume, {"name": "name"}) for volume in d.get("volumes", [])],
        tags=tag_list(d.tags, "key", "value"),
        **{key: value for key, value in optional.items() if value},
    )["taskDefinition"]
    arn = created["taskDefinitionArn"]
    return {
        "id": created["family"],
        "arn": arn,
        "arnWithoutRevision": arn.rsplit(":", 1)[0],
        "revision": created["revision"],
    }


CLIENT_ALIAS = {"port": "port", "dnsName": "dnsName"}


def _service_connect(configuration: dict[str, Any]) -> dict[str, Any]:
    api = renamed(configuration, {"enabled": "enabled", "namespace": "namespace", "services": "services"})
    api["services"] = [
        renamed(service, {"portName": "portName", "discoveryName": "discoveryName", "clientAlias": "clientAliases"})
        for service in api.get("services", [])
    ]
    for service in api["services"]:
        service["clientAliases"] = [renamed(alias, CLIENT_ALIAS) for alias in service["clientAliases"]]
    return api


AWSVPC = {"subnets": "subnets", "securityGroups": "securityGroups", "assignPublicIp": "assignPublicIp"}
LOAD_BALANCER = {"targetGroupArn": "targetGroupArn", "containerName": "containerName", "containerPort": "containerPort"}


def service(clients: Clients, d: Declared) -> dict[str, Any]:
    awsvpc = renamed(d["networkConfiguration"], AWSVPC)
    awsvpc["assignPublicIp"] = "ENABLED" if awsvpc["assignPublicIp"] else "DISABLED"  # the provider's bool
    breaker = renamed(d["deploymentCircuitBreaker"], {"enable": "enable", "rollback": "rollback"})
    d.provider_only("waitForSteadyState")  # the provider polls until the service is steady
    created = clients("ecs").create_service(
        cluster=d["cluster"],
        serviceName=d.name(),
        taskDefinition=d["taskDefinition"],
        desiredCount=d["desiredCount"],
        launchType=d["launchType"],
        platformVersion=d["platformVersion"],
        networkConfiguration={"awsvpcConfiguration": awsvpc},
        loadBalancers=[renamed(balancer, LOAD_BALANCER) for balancer in d["loadBalancers"]],
        healthCheckGracePeriodSeconds=d["healthCheckGracePeriodSeconds"],
        deploymentConfiguration={
            "deploymentCircuitBreaker": breaker,
            "minimumHealthyPercent": d["deploymentMinimumHealthyPercent"],
            "maximumPercent": d["deploymentMaximumPercent"],
        },
        serviceConnectConfiguration=_service_connect(d["serviceConnectConfiguration"]),
        propagateTags=d["propagateTags"],
        enableECSManagedTags=d["enableEcsManagedTags"],
        tags=tag_list(d.tags, "key", "value"),
    )["service"]
    return {"id": created["serviceArn"], "arn": created["serviceArn"], "name": created["serviceName"]}


def scalable_target(clients: Clients, d: Declared) -> dict[str, Any]:
    arn = clients("application-autoscaling").register_scalable_target(
        ServiceNamespace=d["serviceNamespace"],
        ResourceId=d["resourceId"],
        ScalableDimension=d["scalableDimension"],
        MinCapacity=d["minCapacity"],
        MaxCapacity=d["maxCapacity"],
        Tags=d.tags,
    )["ScalableTargetARN"]
    return {
        "id": d["resourceId"],
        "arn": arn,
        "resourceId": d["resourceId"],
        "serviceNamespace": d["serviceNamespace"],
        "scalableDimension": d["scalableDimension"],
    }


TARGET_TRACKING = {
    "predefinedMetricSpecification": "PredefinedMetricSpecification",
    "targetValue": "TargetValue",
    "scaleInCooldown": "ScaleInCooldown",
    "scaleOutCooldown": "ScaleOutCooldown",
}
PREDEFINED_METRIC = {"predefinedMetricType": "PredefinedMetricType", "resourceLabel": "ResourceLabel"}


def scaling_policy(clients: Clients, d: Declared) -> dict[str, Any]:
    name = d.name()
    tracking = renamed(d["targetTrackingScalingPolicyConfiguration"], TARGET_TRACKING)
    tracking["PredefinedMetricSpecification"] = renamed(tracking["PredefinedMetricSpecification"], PREDEFINED_METRIC)
    arn = clients("application-autoscaling").put_scaling_policy(
        PolicyName=name,
        ServiceNamespace=d["serviceNamespace"],
        ResourceId=d["resourceId"],
        ScalableDimension=d["scalableDimension"],
        PolicyType=d["policyType"],
        TargetTrackingScalingPolicyConfiguration=tracking,
    )["PolicyARN"]
    return {"id": name, "name": name, "arn": arn}


REPLAYERS: dict[str, Replayer] = {
    "aws:servicediscovery/httpNamespace:HttpNamespace": http_namespace,
    "aws:ecs/cluster:Cluster": cluster,
    "aws:ecs/taskDefinition:TaskDefinition": task_definition,
    "aws:ecs/service:Service": service,
    "aws:appautoscaling/target:Target": scalable_target,
    "aws:appautoscaling/policy:Policy": scaling_policy,
}
