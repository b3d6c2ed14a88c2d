"""ELBv2: the application load balancer and its attributes, target groups (moto checks names, protocols, the VPC,
the health-check matcher and the attributes), listeners (ports, protocols, actions, the ACM certificate) and rules
(condition fields and values)."""

from __future__ import annotations

from typing import Any

from tests.stacks.replay.calls import Clients, Declared, Replayer, renamed, tag_list


def _attributes(values: dict[str, Any]) -> list[dict[str, str]]:
    """ELB attributes are strings, booleans lower-case."""
    return [
        {"Key": key, "Value": str(value).lower() if isinstance(value, bool) else str(value)}
        for key, value in values.items()
    ]


def load_balancer(clients: Clients, d: Declared) -> dict[str, Any]:
    elb = clients("elbv2")
    name = d.name()
    (created,) = elb.create_load_balancer(
        Name=name,
        Subnets=d["subnets"],
        SecurityGroups=d["securityGroups"],
        Scheme="internal" if d["internal"] else "internet-facing",
        Type=d["loadBalancerType"],
        Tags=tag_list(d.tags),
    )["LoadBalancers"]
    logs = renamed(d["accessLogs"], {"bucket": "bucket", "prefix": "prefix", "enabled": "enabled"})
    attributes = {
        "idle_timeout.timeout_seconds": d["idleTimeout"],
        "routing.http.drop_invalid_header_fields.enabled": d["dropInvalidHeaderFields"],
        **{f"access_logs.s3.{key}": value for key, value in logs.items()},
    }
    elb.modify_load_balancer_attributes(LoadBalancerArn=created["LoadBalancerArn"], Attributes=_attributes(attributes))
    arn = created["LoadBalancerArn"]
    return {
        "id": arn,
        "arn": arn,
        "arnSuffix": arn.split(":loadbalancer/", 1)[1],
        "dnsName": created["DNSName"],
        "name": name,
    }


HEALTH_CHECK = {
    "path": "HealthCheckPath",
    "matcher": "Matcher",
    "interval": "HealthCheckIntervalSeconds",
    "timeout": "HealthCheckTimeoutSeconds",
    "healthyThreshold": "HealthyThresholdCount",
    "unhealthyThreshold": "UnhealthyThresholdCount",
}
STICKINESS = {
    "enabled": "stickiness.enabled",
    "type": "stickiness.type",
    "cookieDuration": "stickiness.lb_cookie.duration_seconds",
}


def target_group(clients: Clients, d: Declared) -> dict[str, Any]:
    elb = clients("elbv2")
    name = d.name()
    health = renamed(d["healthCheck"], HEALTH_CHECK)
    health["Matcher"] = {"HttpCode": health["Matcher"]}
    (created,) = elb.create_target_group(
        Name=name,
        Protocol=d["protocol"],
        Port=d["port"],
        VpcId=d["vpcId"],
        TargetType=d["targetType"],
        Tags=tag_list(d.tags),
        **health,
    )["TargetGroups"]
    arn = created["TargetGroupArn"]
    attributes = {
        "deregistration_delay.timeout_seconds": d["deregistrationDelay"],
        **renamed(d["stickiness"], STICKINESS),
    }
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=_attributes(attributes))
    return {"id": arn, "arn": arn, "arnSuffix": arn.split(":", 5)[5], "name": name}


#: A fixed response's fields (the load balancer's own 404).
FIXED_RESPONSE = {"statusCode": "StatusCode", "contentType": "ContentType", "messageBody": "MessageBody"}


def _action(action: dict[str, Any]) -> dict[str, Any]:
    names = {
        "type": "Type",
        "targetGroupArn": "TargetGroupArn",
        "redirect": "RedirectConfig",
        "fixedResponse": "FixedResponseConfig",
    }
    api = renamed(action, names)
    if "RedirectConfig" in api:
        api["RedirectConfig"] = renamed(
            api["RedirectConfig"], {"port": "Port", "protocol": "Protocol", "statusCode": "StatusCode"}
        )
    if "FixedResponseConfig" in api:
        api["FixedResponseConfig"] = renamed(api["FixedResponseConfig"], FIXED_RESPONSE)
    return api


def listener(clients: Clients, d: Declared) -> dict[str, Any]:
    tls = {}
    if d["protocol"] == "HTTPS":
        tls = {"SslPolicy": d["sslPolicy"], "Certificates": [{"CertificateArn": d["certificateArn"]}]}
    (created,) = clients("elbv2").create_listener(
        LoadBalancerArn=d["loadBalancerArn"],
        Port=d["port"],
        Protocol=d["protocol"],
        DefaultActions=[_action(action) for action in d["defaultActions"]],
        Tags=tag_list(d.tags),
        **tls,
    )["Listeners"]
    return {"id": created["ListenerArn"], "arn": created["ListenerArn"]}


def _condition(condition: dict[str, Any]) -> dict[str, Any]:
    (field,) = renamed(condition, {"pathPattern": "path-pattern"})
    return {"Field": field, "PathPatternConfig": renamed(condition["pathPattern"], {"values": "Values"})}


def listener_rule(clients: Clients, d: Declared) -> dict[str, Any]:
    (created,) = clients("elbv2").create_rule(
        ListenerArn=d["listenerArn"],
        Priority=d["priority"],
        Actions=[_action(action) for action in d["actions"]],
        Conditions=[_condition(condition) for condition in d["conditions"]],
        Tags=tag_list(d.tags),
    )["Rules"]
    return {"id": created["RuleArn"], "arn": created["RuleArn"]}


REPLAYERS: dict[str, Replayer] = {
    "aws:lb/loadBalancer:LoadBalancer": load_balancer,
    "aws:lb/targetGroup:TargetGroup": target_group,
    "aws:lb/listener:Listener": listener,
    "aws:lb/listenerRule:ListenerRule": listener_rule,
}
