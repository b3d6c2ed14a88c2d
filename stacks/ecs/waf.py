"""An optional AWS WAF web ACL on the ECS load balancer with one rate-based rule (`diabetes-ecs:waf`).

A client address that sends more than `rateLimit` requests within `windowSeconds` is blocked (403) until its rate
falls below the limit again; everything else passes. One rule keeps the cost to the web ACL, one rule and the
requests (docs/deploy.md's cost table); AWS's managed rule groups are a step further, added here when needed.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stacks.config import WafSettings

RULE_NAME = "rate-limit-per-ip"


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgs:
    return aws.wafv2.WebAclVisibilityConfigArgs(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def rate_limited_acl(
    name: str,
    settings: WafSettings,
    load_balancer_arn: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.wafv2.WebAcl:
    """The web ACL (regional, default allow, one blocking rate-based rule per client IP) and its association."""
    acl = aws.wafv2.WebAcl(
        name,
        scope="REGIONAL",
        description="Blocks a client address above its request rate",
        default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
        rules=[
            aws.wafv2.WebAclRuleArgs(
                name=RULE_NAME,
                priority=0,
                action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                        limit=settings.rate_limit,
                        aggregate_key_type="IP",
                        evaluation_window_sec=settings.window_seconds,
                    )
                ),
                visibility_config=aws.wafv2.WebAclRuleVisibilityConfigArgs(
                    cloudwatch_metrics_enabled=True, metric_name=RULE_NAME, sampled_requests_enabled=True
                ),
            )
        ],
        visibility_config=_visibility(name),
        tags=tags,
        opts=opts,
    )
    aws.wafv2.WebAclAssociation(name, resource_arn=load_balancer_arn, web_acl_arn=acl.arn, opts=opts)
    return acl
