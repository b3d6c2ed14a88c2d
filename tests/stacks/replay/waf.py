"""WAFv2: the ECS load balancer's web ACL (moto checks the scope, the actions and the rate-based statement) and its
association with the real load balancer."""

from __future__ import annotations

from typing import Any

from tests.stacks.replay.calls import Clients, Declared, Replayer, renamed, tag_list

VISIBILITY = {
    "cloudwatchMetricsEnabled": "CloudWatchMetricsEnabled",
    "metricName": "MetricName",
    "sampledRequestsEnabled": "SampledRequestsEnabled",
}
RATE = {"limit": "Limit", "aggregateKeyType": "AggregateKeyType", "evaluationWindowSec": "EvaluationWindowSec"}


def _action(action: dict[str, Any]) -> dict[str, Any]:
    return renamed(action, {"block": "Block", "allow": "Allow", "count": "Count"})


def _rule(rule: dict[str, Any]) -> dict[str, Any]:
    statement = renamed(rule["statement"], {"rateBasedStatement": "RateBasedStatement"})
    statement["RateBasedStatement"] = renamed(statement["RateBasedStatement"], RATE)
    return {
        "Name": rule["name"],
        "Priority": rule["priority"],
        "Action": _action(rule["action"]),
        "Statement": statement,
        "VisibilityConfig": renamed(rule["visibilityConfig"], VISIBILITY),
    }


def web_acl(clients: Clients, d: Declared) -> dict[str, Any]:
    name = d.name()
    summary = clients("wafv2").create_web_acl(
        Name=name,
        Scope=d["scope"],
        Description=d["description"],
        DefaultAction=_action(d["defaultAction"]),
        Rules=[_rule(rule) for rule in d["rules"]],
        VisibilityConfig=renamed(d["visibilityConfig"], VISIBILITY),
        Tags=tag_list(d.tags),
    )["Summary"]
    return {"id": summary["Id"], "arn": summary["ARN"], "name": name}


def web_acl_association(clients: Clients, d: Declared) -> dict[str, Any]:
    clients("wafv2").associate_web_acl(WebACLArn=d["webAclArn"], ResourceArn=d["resourceArn"])
    return {"id": f"{d['webAclArn']},{d['resourceArn']}"}


REPLAYERS: dict[str, Replayer] = {
    "aws:wafv2/webAcl:WebAcl": web_acl,
    "aws:wafv2/webAclAssociation:WebAclAssociation": web_acl_association,
}
