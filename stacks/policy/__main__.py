"""Policy pack entry point: serves the project's mandatory rules to the Pulumi engine."""

from pulumi_policy import PolicyPack

from stacks.policy.rules import policies

PolicyPack(name="diabetes-guardrails", policies=policies())
