"""The public entry point on ECS: an ALB in the public subnets, open to the world on 80 (and 443 with a
certificate), with an optional WAF rate-based rule in front.

With a certificate, HTTP only redirects to HTTPS. The API's public routes (`stacks.workloads.api_public_paths`) are
forwarded by path rules; nothing else of the API is routed (`/metrics` is scraped inside the VPC). The UI (when
enabled) owns `/` with sticky sessions and a long idle timeout for Streamlit's websocket, but for its own metrics,
which the load balancer refuses; without the UI every other path gets the load balancer's own 404 (JSON). The load
balancer and its target groups are autonamed (`<name>-<random>`), so a change that replaces one creates the new one
before deleting the old, without a name clash. Access logs go to the root's access-log bucket under `ecs/`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from stacks.config import EcsStackSettings
from stacks.ecs.waf import rate_limited_acl
from stacks.shared import ECS_ACCESS_LOG_PREFIX
from stacks.workloads import (
    NOT_FOUND_BODY,
    NOT_FOUND_CONTENT_TYPE,
    NOT_FOUND_STATUS,
    SSL_POLICY,
    STICKY_SESSION_SECONDS,
    UI_PRIVATE_PATHS,
    Workload,
    api_public_paths,
    load_balancer_idle_timeout,
)

#: Marks the one security group that may accept traffic from the internet (checked by the policy pack).
PUBLIC_ROLE_TAG = {"diabetes:role": "load-balancer"}
#: Maximum path values one ALB listener rule may hold.
MAX_RULE_VALUES = 5
#: Rule priorities (lower is evaluated first): the refusals of the UI's private paths, then the API's routes.
REFUSAL_PRIORITY = 1
API_RULE_PRIORITY = 10


def path_chunks(paths: Sequence[str], size: int = MAX_RULE_VALUES) -> list[list[str]]:
    """Split path patterns into groups an ALB rule accepts."""
    return [list(paths[start : start + size]) for start in range(0, len(paths), size)]


class LoadBalancer(pulumi.ComponentResource):
    """ALB, its security group, one target group per workload, listeners and path rules."""

    security_group: aws.ec2.SecurityGroup
    alb: aws.lb.LoadBalancer
    target_groups: dict[str, aws.lb.TargetGroup]
    listener: aws.lb.Listener
    #: Listeners and rules: a service may only be created once its target group is wired to the ALB.
    routing: list[pulumi.Resource]
    #: The WAF web ACL, when the stack configures one (diabetes-ecs:waf).
    web_acl: aws.wafv2.WebAcl | None
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: EcsStackSettings,
        *,
        vpc_id: pulumi.Input[str],
        public_subnet_ids: pulumi.Input[Sequence[str]],
        access_log_bucket: pulumi.Input[str],
        workloads: Sequence[Workload],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:ecs:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("ecs-alb")
        https = settings.certificate_arn is not None
        self.security_group = _public_security_group(name, settings, vpc_id, tags, https, child)
        self.alb = aws.lb.LoadBalancer(
            f"{settings.name}-lb",
            load_balancer_type="application",
            internal=False,
            security_groups=[self.security_group.id],
            subnets=public_subnet_ids,
            idle_timeout=load_balancer_idle_timeout(settings),
            drop_invalid_header_fields=True,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=access_log_bucket, prefix=ECS_ACCESS_LOG_PREFIX, enabled=True
            ),
            tags=tags,
            opts=child,
        )
        self.target_groups = {w.name: _target_group(settings, w, vpc_id, tags, child) for w in workloads}
        ui = self.target_groups.get("ui")
        self._listen(name, settings, ui, tags, child)
        self.routing += _api_path_rules(name, settings, self.listener, self.target_groups["api"], tags, child)
        if ui is not None:
            self.routing += _refusal_rules(name, self.listener, UI_PRIVATE_PATHS, tags, child)
        self.web_acl = (
            rate_limited_acl(f"{settings.name}-ecs-waf", settings.waf, self.alb.arn, tags, child)
            if settings.waf
            else None
        )
        scheme = "https" if https else "http"
        self.url = self.alb.dns_name.apply(lambda dns: f"{scheme}://{dns}")
        self.register_outputs({"url": self.url})

    def _listen(
        self,
        name: str,
        settings: EcsStackSettings,
        ui: aws.lb.TargetGroup | None,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        """With a certificate, port 80 only redirects and 443 serves; without one, port 80 serves. The serving
        listener's default: the UI when enabled, else the load balancer's own 404."""
        https = settings.certificate_arn is not None
        forward_default = [
            aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=ui.arn)
            if ui is not None
            else aws.lb.ListenerDefaultActionArgs(type="fixed-response", fixed_response=_not_found())
        ]
        redirect = aws.lb.ListenerDefaultActionArgs(
            type="redirect",
            redirect=aws.lb.ListenerDefaultActionRedirectArgs(port="443", protocol="HTTPS", status_code="HTTP_301"),
        )
        http = aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[redirect] if https else forward_default,
            tags=tags,
            opts=child,
        )
        self.listener = http
        self.routing = [http]
        if https:
            self.listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=SSL_POLICY,
                certificate_arn=settings.certificate_arn,
                default_actions=forward_default,
                tags=tags,
                opts=child,
            )
            self.routing.append(self.listener)

    @property
    def arn_suffix(self) -> pulumi.Output[str]:
        """The ALB's ARN suffix (CloudWatch dimension, request-count scaling label)."""
        return self.alb.arn_suffix


def _public_security_group(
    name: str,
    settings: EcsStackSettings,
    vpc_id: pulumi.Input[str],
    tags: dict[str, str],
    https: bool,
    child: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """The ALB's security group: HTTP from the internet, and HTTPS with a certificate."""
    group = aws.ec2.SecurityGroup(
        f"{name}-alb",
        vpc_id=vpc_id,
        description=f"{settings.name} ALB: HTTP/HTTPS from the internet",
        tags={**tags, **PUBLIC_ROLE_TAG, "Name": f"{settings.name}-alb"},
        opts=child,
    )
    for port in (80, 443) if https else (80,):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-alb-{port}",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            cidr_ipv4="0.0.0.0/0",
            description=f"public {port}",
            tags={**tags, **PUBLIC_ROLE_TAG},
            opts=child,
        )
    return group


def _target_group(
    settings: EcsStackSettings,
    workload: Workload,
    vpc_id: pulumi.Input[str],
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> aws.lb.TargetGroup:
    """The workload's tasks by IP, healthy once its readiness path answers 200; sticky for the UI's websocket."""
    return aws.lb.TargetGroup(
        f"{settings.name}-{workload.name}",
        port=workload.port,
        protocol="HTTP",
        target_type="ip",
        vpc_id=vpc_id,
        deregistration_delay=30,
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            path=workload.readiness_path,
            matcher="200",
            interval=15,
            timeout=5,
            healthy_threshold=2,
            unhealthy_threshold=3,
        ),
        stickiness=aws.lb.TargetGroupStickinessArgs(
            enabled=workload.sticky, type="lb_cookie", cookie_duration=STICKY_SESSION_SECONDS
        ),
        tags={**tags, "Workload": workload.name},
        opts=child,
    )


def _api_path_rules(
    name: str,
    settings: EcsStackSettings,
    listener: aws.lb.Listener,
    api: aws.lb.TargetGroup,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The API's public paths go to the API (an ALB rule takes at most 5 values), whatever the default action is."""
    return [
        aws.lb.ListenerRule(
            f"{name}-api-paths-{index}",
            listener_arn=listener.arn,
            priority=API_RULE_PRIORITY + index,
            actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=api.arn)],
            conditions=[
                aws.lb.ListenerRuleConditionArgs(path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=paths))
            ],
            tags=tags,
            opts=child,
        )
        for index, paths in enumerate(path_chunks(api_public_paths(settings)))
    ]


#: The load balancer's own 404 for a path it does not route, in the service's error shape (a listener's default
#: action and a rule's action take it as different argument types).
_NOT_FOUND = {
    "status_code": str(NOT_FOUND_STATUS),
    "content_type": NOT_FOUND_CONTENT_TYPE,
    "message_body": NOT_FOUND_BODY,
}


def _not_found() -> aws.lb.ListenerDefaultActionFixedResponseArgs:
    return aws.lb.ListenerDefaultActionFixedResponseArgs(**_NOT_FOUND)


def _refusal_rules(
    name: str,
    listener: aws.lb.Listener,
    paths: Sequence[str],
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """Paths of a workload that owns `/` the load balancer answers itself with its 404, before any forward."""
    refusal = aws.lb.ListenerRuleActionFixedResponseArgs(**_NOT_FOUND)
    return [
        aws.lb.ListenerRule(
            f"{name}-refused-{index}",
            listener_arn=listener.arn,
            priority=REFUSAL_PRIORITY + index,
            actions=[aws.lb.ListenerRuleActionArgs(type="fixed-response", fixed_response=refusal)],
            conditions=[
                aws.lb.ListenerRuleConditionArgs(path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=chunk))
            ],
            tags=tags,
            opts=child,
        )
        for index, chunk in enumerate(path_chunks(paths))
    ]
